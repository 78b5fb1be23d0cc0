"""Backstop Lambda (daily schedule): release candidates still incomplete after the backstop period."""

import datetime as dt

from aws_lambda_powertools.utilities.typing import LambdaContext

from obsflow.observability import logger, metrics, tracer
from obsflow.runs.backstop import run_backstop
from obsflow.runs.submitter import nudge
from obsflow.settings import bound_settings


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    settings = bound_settings()
    # A scheduled event carries its time; "now" lets an operator run the check as of a given time.
    now = dt.datetime.fromisoformat(event.get("now") or event.get("time") or dt.datetime.now(dt.timezone.utc).isoformat())
    report = run_backstop(settings, now if now.tzinfo else now.replace(tzinfo=dt.timezone.utc))
    metrics.add_metric(name="CandidatesReleasedByBackstop", unit="Count", value=len(report.released))
    if report.released:
        nudge(settings, f"backstop released {', '.join(report.released)}")
    return report.__dict__
