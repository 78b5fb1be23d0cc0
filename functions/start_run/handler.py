"""StartRun: the run is RUNNING under this execution."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from obsflow.observability import logger, metrics, tracer
from obsflow.services import run_service
from obsflow.usage import metered


@metered("start-run")  # what it used, recorded with the run
@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    result = run_service().start_run(event["run_id"], event["execution_arn"])
    metrics.add_metric(name="RunsRunning", unit="Count", value=1)
    return result
