"""Ingest: S3 notifications -> SQS (with a dead-letter queue) -> the ingest Lambda, in batches."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from obsflow.settings import MAX_RECEIVE_COUNT, Settings
from obsflow_infra.catalog import CatalogTables
from obsflow_infra.config import StageConfig
from obsflow_infra.functions import SIZES, ObsflowFunction

BATCH_SIZE = 10
# Lambda waits up to this long after a batch's first frame for the rest of it: at a summit's pace (a few frames a
# second) it is most of a candidate's READY lag, which is to stay under 2 s. 5 s made it 3-5 s.
BATCHING_WINDOW_S = 1
# AWS advises a visibility timeout of six times the function's timeout for SQS event sources.
VISIBILITY_TIMEOUT_S = 6 * SIZES["ingest"][0]


class Ingest(Construct):
    def __init__(self, scope: Construct, id: str, *, config: StageConfig, settings: Settings,
                 bucket: s3.Bucket, catalog: CatalogTables) -> None:
        super().__init__(scope, id)
        self.dead_letter_queue = sqs.Queue(
            self, "DeadLetterQueue", queue_name=settings.ingest_dlq_name,
            encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
        )
        self.queue = sqs.Queue(
            self, "Queue", queue_name=settings.ingest_queue_name,
            encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
            visibility_timeout=cdk.Duration.seconds(VISIBILITY_TIMEOUT_S),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letter_queue, max_receive_count=MAX_RECEIVE_COUNT),
        )
        self._notify_queue_of_uploads(bucket, settings)

        self.handler = ObsflowFunction(
            self, "Handler", function="ingest", config=config, settings=settings,
            description="Counts raw frames and manifests against their OPs; marks candidates READY; records proposals",
        )
        self.handler.function.add_event_source(sources.SqsEventSource(
            self.queue, batch_size=BATCH_SIZE, max_batching_window=cdk.Duration.seconds(BATCHING_WINDOW_S),
            report_batch_item_failures=True,
        ))
        self.handler.allow_objects(bucket, ["s3:GetObject", "s3:GetObjectVersion"])  # any key: unknown ones are quarantined
        self.handler.allow(["s3:ListBucket"], [bucket.bucket_arn])  # a missing key reads as 404, not 403
        self.handler.allow_tables(
            catalog.arns("frames", "observing-programs", "manifests", "candidates", "quarantine", "proposals"),
            write=True)

    def _notify_queue_of_uploads(self, bucket: s3.Bucket, settings: Settings) -> None:
        """Every created object, not only known prefixes: an unexpected key must be quarantined, not missed.

        Set on the bucket itself (no custom resource): the queue policy names the bucket by
        its ARN, and the bucket waits for that policy, as S3 checks it when the bucket is saved.
        """
        self.queue.add_to_resource_policy(iam.PolicyStatement(
            principals=[iam.ServicePrincipal("s3.amazonaws.com")],
            actions=["sqs:SendMessage"],
            resources=[self.queue.queue_arn],
            # By name, not by reference: the bucket depends on this policy.
            conditions={"ArnEquals": {"aws:SourceArn": f"arn:{cdk.Aws.PARTITION}:s3:::{settings.ingest_bucket_name}"},
                        "StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID}},
        ))
        cfn_bucket: s3.CfnBucket = bucket.node.default_child
        cfn_bucket.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
            queue_configurations=[s3.CfnBucket.QueueConfigurationProperty(
                event="s3:ObjectCreated:*", queue=self.queue.queue_arn)],
        )
        cfn_bucket.node.add_dependency(self.queue.node.find_child("Policy"))
