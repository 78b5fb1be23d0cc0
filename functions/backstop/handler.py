"""Backstop Lambda (daily schedule): release candidates still incomplete after the backstop period, and sweep
developer datasets past their retention (one still in use is kept, its user named)."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from obsflow.aws import scheduled_time
from obsflow.observability import logger, metrics, tracer
from obsflow.services import campaign_service, run_service


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    now = scheduled_time(event)  # an operator's "now" runs it as of that time
    report = run_service().backstop(now)
    swept = campaign_service().sweep(now)
    metrics.add_metric(name="CandidatesReleasedByBackstop", unit="Count", value=len(report.released))
    metrics.add_metric(name="DeveloperDatasetsExpired", unit="Count", value=len(swept["deleted"]))
    return {**report.__dict__, "sweep": swept}
