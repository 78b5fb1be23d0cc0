"""Backstop Lambda (daily schedule): release candidates still incomplete after the backstop period."""

import datetime as dt

from aws_lambda_powertools.utilities.typing import LambdaContext

from obsflow.observability import logger, metrics, tracer
from obsflow.services import run_service


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    # A scheduled event carries its time; "now" lets an operator run the check as of a given time.
    now = dt.datetime.fromisoformat(event.get("now") or event.get("time") or dt.datetime.now(dt.timezone.utc).isoformat())
    report = run_service().backstop(now if now.tzinfo else now.replace(tzinfo=dt.timezone.utc))
    metrics.add_metric(name="CandidatesReleasedByBackstop", unit="Count", value=len(report.released))
    return report.__dict__
