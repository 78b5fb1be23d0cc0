"""StartRun: the run is RUNNING under this execution."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from obsflow.observability import logger, metrics, tracer
from obsflow.runs.steps import start_run
from obsflow.settings import bound_settings


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    result = start_run(bound_settings(), event["run_id"], event["execution_arn"])
    metrics.add_metric(name="RunsRunning", unit="Count", value=1)
    return result
