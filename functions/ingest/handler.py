"""Ingest Lambda: SQS batches of S3 notifications -> frame inventory, OP counts, candidates."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from obsflow.ingest.batch import build_service, process_batch
from obsflow.observability import logger, metrics, tracer
from obsflow.runs.submitter import nudge
from obsflow.settings import bound_settings

_service = None


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    global _service
    settings = bound_settings()
    if _service is None or _service.settings is not settings:  # once per container (and per local stack)
        _service = build_service(settings)
    response, report = process_batch(_service, event, context)
    metrics.add_metric(name="FramesCounted", unit="Count", value=report.counted)
    metrics.add_metric(name="FramesDuplicate", unit="Count", value=report.duplicates)
    metrics.add_metric(name="ObjectsQuarantined", unit="Count", value=report.quarantined)
    metrics.add_metric(name="CandidatesReady", unit="Count", value=len(report.ready))
    if report.ready:
        nudge(_service.settings, f"candidates ready: {', '.join(report.ready)}")
    return response
