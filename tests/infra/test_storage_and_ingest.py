"""Storage buckets and the ingest path: S3 -> SQS (+ dead-letter queue) -> the ingest Lambda."""

from __future__ import annotations

import pytest

from obsflow.settings import BUCKETS, MAX_RECEIVE_COUNT, TASK_OUTPUT_RETENTION_DAYS
from obsflow_infra.functions import SIZES
from obsflow_infra.ingest import BATCH_SIZE, BATCHING_WINDOW_S

pytestmark = pytest.mark.infra


def test_every_bucket_is_versioned_encrypted_private_tls_only_and_logged(dev):
    # Given the dev stack
    storage = dev.stack.storage
    for name in BUCKETS:
        # When reading each bucket and its policy
        bucket = dev.resource(storage.buckets[name])["Properties"]
        policy = next(p["Properties"]["PolicyDocument"] for p in dev.resources("AWS::S3::BucketPolicy").values()
                      if p["Properties"]["Bucket"] == {"Ref": dev.logical_id(storage.buckets[name])})
        # Then it is versioned, encrypted, closed to the public, TLS only, with access logs
        assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
        assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
            "SSEAlgorithm": "AES256"}
        assert bucket["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
        assert bucket["LoggingConfiguration"] == {
            "DestinationBucketName": {"Ref": dev.logical_id(storage.access_logs)}, "LogFilePrefix": f"{name}/"}
        deny = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
        assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # And the access-log bucket is private and encrypted too
    logs_bucket = dev.resource(storage.access_logs)["Properties"]
    assert logs_bucket["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True


def test_task_outputs_in_the_work_bucket_expire(dev):
    rules = dev.resource(dev.stack.storage.buckets["work"])["Properties"]["LifecycleConfiguration"]["Rules"]
    outputs = next(rule for rule in rules if rule.get("Prefix") == "task-outputs/")
    assert outputs["ExpirationInDays"] == TASK_OUTPUT_RETENTION_DAYS and outputs["Status"] == "Enabled"


def test_bucket_names_are_per_stage_account_and_region(dev, prod):
    for synthesized, stage in ((dev, "dev"), (prod, "prod")):
        name = synthesized.resource(synthesized.stack.storage.buckets["data"])["Properties"]["BucketName"]
        assert name == {"Fn::Join": ["", [f"obsflow-{stage}-data-", {"Ref": "AWS::AccountId"}, "-",
                                          {"Ref": "AWS::Region"}]]}


def test_every_created_object_is_queued_and_failures_go_to_the_dead_letter_queue(dev):
    ingest = dev.stack.ingest
    bucket = dev.resource(dev.stack.storage.buckets["ingest"])
    queue = dev.resource(ingest.queue)["Properties"]
    # Every key, not just known prefixes, reaches the queue (set on the bucket, no custom resource)
    assert bucket["Properties"]["NotificationConfiguration"] == {"QueueConfigurations": [
        {"Event": "s3:ObjectCreated:*", "Queue": {"Fn::GetAtt": [dev.logical_id(ingest.queue), "Arn"]}}]}
    assert dev.logical_id(ingest.queue.node.find_child("Policy")) in bucket["DependsOn"]
    assert dev.resources("Custom::S3BucketNotifications") == {}
    # and the queue only takes S3's messages from that bucket
    policy = dev.resource(ingest.queue.node.find_child("Policy"))["Properties"]["PolicyDocument"]
    allow = next(s for s in policy["Statement"] if s["Effect"] == "Allow")
    assert allow["Principal"] == {"Service": "s3.amazonaws.com"} and allow["Action"] == "sqs:SendMessage"
    # A message failing MAX_RECEIVE_COUNT times goes to the dead-letter queue
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dev.logical_id(ingest.dead_letter_queue), "Arn"]},
        "maxReceiveCount": MAX_RECEIVE_COUNT}
    assert queue["VisibilityTimeout"] >= 6 * SIZES["ingest"][0]
    assert queue["SqsManagedSseEnabled"] is True


def test_the_ingest_lambda_takes_batches_with_partial_batch_responses(dev):
    dev.assertions.resource_count_is("AWS::Lambda::EventSourceMapping", 1)
    mapping = next(iter(dev.resources("AWS::Lambda::EventSourceMapping").values()))["Properties"]
    assert mapping["BatchSize"] == BATCH_SIZE
    # a trickle of frames waits at most 1 s of the 2 s a candidate may take to be READY
    assert mapping["MaximumBatchingWindowInSeconds"] == BATCHING_WINDOW_S <= 1
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["FunctionName"] == {"Ref": dev.logical_id(dev.stack.ingest.handler.function)}
