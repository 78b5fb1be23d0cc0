"""Wiring of the ingest Lambda: SQS batch -> IngestService, with partial batch failures."""

from __future__ import annotations

import boto3
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from obsflow import tables
from obsflow.errors import Rejected
from obsflow.ingest.frames import Frame
from obsflow.ingest.objects import PrefetchingReader, S3ObjectReader
from obsflow.ingest.service import BatchReport, IngestService, ObjectRef, object_refs
from obsflow.ingest.store import DynamoIngestStore
from obsflow.observability import logger
from obsflow.settings import Settings, get_settings


def build_service(settings: Settings | None = None) -> IngestService:
    settings = settings or get_settings()
    tables.bind(settings)
    s3 = boto3.client("s3", region_name=settings.region, endpoint_url=settings.endpoint_url)
    reader = PrefetchingReader(S3ObjectReader(s3), settings.header_read_concurrency)
    return IngestService(reader, DynamoIngestStore(settings), settings)


def _refs_or_rejection(body: str) -> list[ObjectRef] | Rejected:
    try:
        return object_refs(body)
    except Rejected as rejection:  # reported when its record is staged
        return rejection


def process_batch(service: IngestService, event: dict, context=None) -> tuple[dict, BatchReport]:
    """Stage every record, commit the batch's frames together; the partial-failure response and a report."""
    processor = BatchProcessor(event_type=EventType.SQS)
    report = BatchReport()
    staged: dict[str, list[Frame]] = {}

    # Each body is read once: the batch's frame headers are fetched together before staging.
    refs_by_message = {record["messageId"]: _refs_or_rejection(record["body"]) for record in event["Records"]}
    service.prefetch([ref for refs in refs_by_message.values() if isinstance(refs, list) for ref in refs])

    def stage_record(record: SQSRecord) -> None:
        refs = refs_by_message[record.message_id]
        if isinstance(refs, Rejected):
            # Not an S3 notification at all: nothing to quarantine but the message itself.
            logger.error("unreadable notification", extra={"message_id": record.message_id, "reason": refs.reason})
            raise refs
        frames = [frame for ref in refs if (frame := service.stage(ref, report)) is not None]
        staged[record.message_id] = frames

    with processor(records=event["Records"], handler=stage_record, lambda_context=context):
        processor.process()
    response = processor.response()

    frames = [frame for batch in staged.values() for frame in batch]
    try:
        service.commit_frames(frames, report)
    except Exception:
        logger.exception("frame commit failed; the batch's frame messages will be retried")
        failed = [message_id for message_id, batch in staged.items() if batch]
        response["batchItemFailures"].extend({"itemIdentifier": message_id} for message_id in failed)

    logger.info("batch ingested", extra={"report": report.__dict__, "failures": len(response["batchItemFailures"])})
    return response, report
