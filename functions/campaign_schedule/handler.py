"""Campaign schedule Lambda (every 5 minutes): each recurring campaign whose next occurrence is due runs it."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from obsflow.aws import scheduled_time
from obsflow.observability import logger, metrics, tracer
from obsflow.services import campaign_service


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    occurred = campaign_service().run_due_occurrences(scheduled_time(event))
    metrics.add_metric(name="CampaignOccurrences", unit="Count", value=len(occurred))
    return {"occurred": occurred}
