"""OpenTicket: one service-desk ticket per run failure, published to the operators' topic."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from obsflow.observability import logger, metrics, tracer
from obsflow.services import run_service
from obsflow.usage import metered


@metered("open-ticket")  # what it used, recorded with the run
@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    result = run_service().open_ticket_for_failure(event["run_id"], event.get("error") or {}, event.get("execution_arn"))
    metrics.add_metric(name="TicketsOpened", unit="Count", value=1)
    return result
