"""FailRun: FAILED with the error, run slots given back, task outputs kept for a redrive."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from obsflow.observability import logger, metrics, tracer
from obsflow.services import run_service
from obsflow.usage import metered


@metered("fail-run")  # what it used, recorded with the run
@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    result = run_service().fail_run(event["run_id"], event.get("error") or {})
    metrics.add_metric(name="RunsFailed", unit="Count", value=1)
    return result
