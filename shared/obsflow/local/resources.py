"""Create the stack's resources directly (moto cannot deploy the CDK template)."""

from __future__ import annotations

import json

from obsflow import tables
from obsflow.settings import Settings

MAX_RECEIVE_COUNT = 3
VISIBILITY_TIMEOUT_S = 30


def create_resources(settings: Settings, session) -> dict:
    """Buckets, ingest queue + dead-letter queue, S3 -> SQS notifications, tables. Idempotent."""
    s3 = session.client("s3", region_name=settings.region, endpoint_url=settings.endpoint_url)
    sqs = session.client("sqs", region_name=settings.region, endpoint_url=settings.endpoint_url)

    bucket = settings.ingest_bucket_name
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    dlq_url = sqs.create_queue(QueueName=settings.ingest_dlq_name)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(
        QueueName=settings.ingest_queue_name,
        Attributes={
            "VisibilityTimeout": str(VISIBILITY_TIMEOUT_S),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}),
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    # Every key, not just the known prefixes: an unexpected key must be quarantined, not missed.
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{"Id": "ingest", "QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    tables.bind(settings)
    tables.create_tables()
    return {"queue_url": queue_url, "dlq_url": dlq_url}
