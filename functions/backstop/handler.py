"""Backstop Lambda (daily schedule): release candidates still incomplete after the backstop period, and sweep
developer datasets past their retention (one still in use is kept, its user named)."""

import datetime as dt

from aws_lambda_powertools.utilities.typing import LambdaContext

from obsflow.observability import logger, metrics, tracer
from obsflow.services import campaign_service, run_service


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    # A scheduled event carries its time; "now" lets an operator run the check as of a given time.
    now = dt.datetime.fromisoformat(event.get("now") or event.get("time") or dt.datetime.now(dt.timezone.utc).isoformat())
    now = now if now.tzinfo else now.replace(tzinfo=dt.timezone.utc)
    report = run_service().backstop(now)
    swept = campaign_service().sweep(now)
    metrics.add_metric(name="CandidatesReleasedByBackstop", unit="Count", value=len(report.released))
    metrics.add_metric(name="DeveloperDatasetsExpired", unit="Count", value=len(swept["deleted"]))
    return {**report.__dict__, "sweep": swept}
