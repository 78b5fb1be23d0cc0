"""Storage: the ingest, work and data buckets, and the bucket their access logs go to."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3
from constructs import Construct

from obsflow.settings import BUCKETS, Settings, TASK_OUTPUT_RETENTION_DAYS
from obsflow_infra.config import StageConfig
from obsflow_infra.nag import acknowledge


class Storage(Construct):
    def __init__(self, scope: Construct, id: str, *, config: StageConfig, settings: Settings) -> None:
        super().__init__(scope, id)
        self.access_logs = s3.Bucket(
            self, "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[s3.LifecycleRule(id="expire-access-logs", expiration=cdk.Duration.days(config.log_retention_days))],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        acknowledge(self.access_logs, "AwsSolutions-S1",
                    "This bucket receives the server access logs of the other buckets; logging it to itself would loop.")
        self.buckets: dict[str, s3.Bucket] = {}
        for bucket in BUCKETS:
            # Task outputs in the work bucket are kept for reuse by later runs, then expire.
            expiry = [s3.LifecycleRule(id="expire-task-outputs", prefix="task-outputs/",
                                       expiration=cdk.Duration.days(TASK_OUTPUT_RETENTION_DAYS))] if bucket == "work" else []
            self.buckets[bucket] = s3.Bucket(
                self, bucket.title(),
                bucket_name=settings.bucket_name(bucket),
                versioned=True,
                encryption=s3.BucketEncryption.S3_MANAGED,
                block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
                enforce_ssl=True,
                server_access_logs_bucket=self.access_logs,
                server_access_logs_prefix=f"{bucket}/",
                lifecycle_rules=[
                    *expiry,
                    s3.LifecycleRule(id="expire-old-versions",
                                     noncurrent_version_expiration=cdk.Duration.days(90 if bucket == "data" else 30)),
                ],
                # Kept when the stack goes: deleting a versioned bucket with objects fails anyway.
                removal_policy=cdk.RemovalPolicy.RETAIN,
            )
