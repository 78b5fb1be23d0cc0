"""Release Lambda (daily schedule): datasets whose embargo has ended are re-tagged public, and those still
under embargo are dated again from the proposal documents in force."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from obsflow.aws import scheduled_time
from obsflow.errors import TransientError
from obsflow.observability import logger, metrics, tracer
from obsflow.runs.releases import EarlyRelease
from obsflow.services import release_service


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    now = scheduled_time(event)  # an operator's "now" runs it as of that time: a dry run if still to come,
    early = event.get("release_early")  # unless {"by": ..., "reason": ...} releases early, recorded on each dataset
    report = release_service().release(now, EarlyRelease(early.get("by", ""), early.get("reason", "")) if early else None)
    metrics.add_metric(name="DatasetsReleased", unit="Count", value=len(report.released))
    metrics.add_metric(name="DatasetsUnderEmbargo", unit="Count", value=report.under_embargo)
    metrics.add_metric(name="DatasetReleasesFailed", unit="Count", value=len(report.failed))
    if report.failed:  # an invocation error: retried, and seen by the function's error alarm
        raise TransientError(f"{len(report.failed)} dataset(s) could not be released, the rest were: "
                             + "; ".join(f"{f['dataset_id']}: {f['error']}" for f in report.failed))
    return report.__dict__
