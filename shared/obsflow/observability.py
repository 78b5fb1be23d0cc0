"""Logger, Tracer and Metrics: created once, shared by every handler.

Metrics count per invocation: a step that Step Functions retries counts again (the
state machines' own metrics, which the alarms use, count each run once).
Outside Lambda the Tracer disables itself. The local runtime keeps a terminal readable: it
sets POWERTOOLS_LOG_LEVEL, and OBSFLOW_METRICS_FILE, where the metrics go as EMF lines instead
of stdout.
"""

import json
import os
import sys
import threading

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

SERVICE = "obsflow"


class _EmfProvider(AmazonCloudWatchEMFProvider):
    """CloudWatch EMF on stdout, as on Lambda; to OBSFLOW_METRICS_FILE where it is set. With metrics disabled
    each flush drops them (powertools would keep them and print them once a metric holds 100 values).

    The metric set is shared by every thread of a process: on Lambda one invocation runs at a time, locally
    several do, so adding and flushing take turns, and an empty set is nothing to flush, never an error."""

    _turns = threading.RLock()

    def add_metric(self, *args, **kwargs) -> None:
        with self._turns:
            super().add_metric(*args, **kwargs)

    def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None:
        path = os.environ.get("OBSFLOW_METRICS_FILE")
        with self._turns:
            if not self.metric_set:
                if raise_on_empty_metrics:
                    super().flush_metrics(raise_on_empty_metrics)
                return
            if is_metrics_disabled() or not path:
                super().flush_metrics(raise_on_empty_metrics)
                self.clear_metrics()
                return
            line = json.dumps(self.serialize_metric_set(), separators=(",", ":"))
            self.clear_metrics()
        with open(path, "a", encoding="utf-8") as sink:
            sink.write(line + "\n")


# stderr: a command's stdout is its answer (a table, JSON), never a log line; on Lambda both reach CloudWatch.
logger = Logger(service=SERVICE, stream=sys.stderr)
tracer = Tracer(service=SERVICE)
metrics = Metrics(provider=_EmfProvider(namespace="obsflow", service=SERVICE))
