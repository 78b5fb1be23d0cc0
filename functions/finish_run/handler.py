"""FinishRun: SUCCEEDED, run slots given back, scratch removed."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from obsflow.observability import logger, metrics, tracer
from obsflow.runs.steps import finish_run
from obsflow.settings import bound_settings


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    result = finish_run(bound_settings(), event["run_id"])
    metrics.add_metric(name="RunsSucceeded", unit="Count", value=1)
    return result
