"""Ingest Lambda: SQS batches of S3 notifications -> frame inventory, OP counts, candidates."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from obsflow.ingest.batch import build_service, process_batch
from obsflow.observability import logger, metrics, tracer

_service = None


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    global _service
    _service = _service or build_service()
    return process_batch(_service, event, context)
