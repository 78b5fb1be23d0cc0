from __future__ import annotations

from dataclasses import dataclass

import boto3
import pytest
from moto import mock_aws

from obsflow import tables
from obsflow.ingest.batch import build_service, process_batch
from obsflow.local import moto_patches
from obsflow.local.poller import QueuePoller
from obsflow.local.resources import create_resources
from obsflow.settings import Settings


@dataclass
class IngestStack:
    settings: Settings
    s3: object
    sqs: object
    queue_url: str
    dlq_url: str
    poller: QueuePoller

    @property
    def bucket(self) -> str:
        return self.settings.ingest_bucket_name

    def put(self, key: str, body: bytes) -> dict:
        return self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)

    def drain(self) -> int:
        return self.poller.drain()


@pytest.fixture
def stack():
    """Given a fresh stack on moto: bucket, queue + DLQ, notifications, tables and the ingest handler."""
    moto_patches.apply()
    with mock_aws():
        settings = Settings(stage="test")
        session = boto3.Session(region_name=settings.region)
        urls = create_resources(settings, session, processing=False)
        service = build_service(settings)
        sqs = session.client("sqs")
        poller = QueuePoller(sqs, urls["queue_url"], lambda event, context: process_batch(service, event, context)[0],
                             window_s=0.05, retry_after_s=0)
        yield IngestStack(settings, session.client("s3"), sqs, urls["queue_url"], urls["dlq_url"], poller)


@pytest.fixture
def catalog():
    """Given the stage's tables and its work and data buckets on moto (no queues, no functions): (settings, s3)."""
    moto_patches.apply()
    with mock_aws():
        settings = Settings(stage="catalog")
        tables.bind(settings)
        tables.create_tables()
        s3 = boto3.client("s3", region_name=settings.region)
        for bucket in ("work", "data"):
            s3.create_bucket(Bucket=settings.bucket_name(bucket))
        yield settings, s3
