"""Ingest Lambda: SQS batches of S3 notifications -> frame inventory, OP counts, candidates."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from obsflow.ingest.batch import process_batch
from obsflow.observability import logger, metrics, tracer
from obsflow.services import ingest_service, run_service


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    service = ingest_service()
    response, report = process_batch(service, event, context)
    metrics.add_metric(name="FramesCounted", unit="Count", value=report.counted)
    metrics.add_metric(name="FramesDuplicate", unit="Count", value=report.duplicates)
    metrics.add_metric(name="ObjectsQuarantined", unit="Count", value=report.quarantined)
    metrics.add_metric(name="CandidatesReady", unit="Count", value=len(report.ready))
    if report.ready:
        run_service().nudge(f"candidates ready: {', '.join(report.ready)}")
    return response
