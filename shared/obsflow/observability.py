"""Logger, Tracer and Metrics: created once, shared by every handler.

Metrics count per invocation: a step that Step Functions retries counts again (the
state machines' own metrics, which the alarms use, count each run once).
Outside Lambda the Tracer disables itself; the local runtime sets
POWERTOOLS_METRICS_DISABLED and POWERTOOLS_LOG_LEVEL to keep a terminal readable.
"""

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "obsflow"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace="obsflow", service=SERVICE)
