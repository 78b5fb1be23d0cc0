"""The local stack's S3 and SQS patches answer as moto does at a cost that does not grow with history: a listing
with a prefix reads only the keys under it; a receive and a delete do not walk the backlog; a queue forgets the
oldest receipt handles it deleted. And an upload that fed a queue far behind is answered once the queue caught up."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core.base_backend import BackendDict
from moto.s3.models import S3Backend
from moto.s3.utils import _VersionedKeyStore
from moto.sqs.models import Message

from obsflow.local import moto_patches
from obsflow.local.moto_patches import notifications
from obsflow.local.moto_patches import sqs as sqs_patch
from obsflow.local.state import StateDirectory

BUCKET = "listed-bucket"


@pytest.fixture
def aws():
    moto_patches.apply()
    with mock_aws():
        yield boto3.Session(region_name="us-east-1")


def listed(s3, **asked) -> list[dict]:
    """Every page of a ListObjectsV2 (and its V1 answer), without request ids and dates."""
    pages = []
    while True:
        page = s3.list_objects_v2(Bucket=BUCKET, **asked)
        pages.append({k: page.get(k) for k in ("Contents", "CommonPrefixes", "KeyCount", "IsTruncated")})
        for item in page.get("Contents", []):
            item.pop("LastModified")
        if not page.get("NextContinuationToken"):
            break
        asked = {**asked, "ContinuationToken": page["NextContinuationToken"]}
    v1 = s3.list_objects(Bucket=BUCKET, **{k: v for k, v in asked.items() if k in ("Prefix", "Delimiter", "MaxKeys")})
    pages.append([(i["Key"], i["Size"]) for i in v1.get("Contents", [])] + [p["Prefix"] for p in v1.get("CommonPrefixes", [])])
    return pages


def as_moto_lists(s3, listings: list[dict]):
    patched = [listed(s3, **asked) for asked in listings]
    with pytest.MonkeyPatch.context() as restore:
        restore.setattr(S3Backend, "list_objects", S3Backend.list_objects.__wrapped__)
        unpatched = [listed(s3, **asked) for asked in listings]
    return patched, unpatched


def write_keys_at_random(s3, rng: random.Random, writes: int) -> None:
    for _ in range(writes):
        key = f"{rng.choice(['raw', 'raw2', 'scratch/run-1', 'scratch/run-12', 'x'])}/{rng.choice('ab')}/{rng.randrange(30):02d}"
        if rng.random() < 0.75:
            s3.put_object(Bucket=BUCKET, Key=key, Body=b"x" * rng.randrange(10))
        else:
            s3.delete_object(Bucket=BUCKET, Key=key)  # a delete marker, or gone from an unversioned bucket


@pytest.mark.parametrize("versioned", [True, False])
def test_a_listing_with_a_prefix_answers_as_moto_does_across_writes_deletes_and_a_restart(aws, tmp_path, versioned):
    s3, rng = aws.client("s3"), random.Random(7)
    s3.create_bucket(Bucket=BUCKET)
    if versioned:
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    listings = [{"Prefix": p, **extra} for p in ("raw", "raw/", "raw/a/0", "scratch/run-1", "scratch/run-1/", "y", "")
                for extra in ({}, {"Delimiter": "/"}, {"MaxKeys": 4}, {"StartAfter": "raw/b"})]
    # Given keys written and deleted at random, and listed once (the bucket's names are ordered at its first listing)
    write_keys_at_random(s3, rng, 100)
    patched, unpatched = as_moto_lists(s3, listings)
    assert patched == unpatched
    # When more are written and deleted, then the state saved and restored (as `local serve` restarts), and written
    for step in ("written", "restored", "written again"):
        if step == "restored":
            StateDirectory(tmp_path / "state").save()
            BackendDict.reset()
            StateDirectory(tmp_path / "state").restore()
        else:
            write_keys_at_random(s3, rng, 150)
        # Then every listing (prefixes, delimiters, pages, start after) answers as moto does
        patched, unpatched = as_moto_lists(s3, listings)
        assert patched == unpatched, step
    assert any(page[0]["Contents"] for page in patched)


def test_a_listing_with_a_prefix_reads_only_the_keys_under_it(aws, monkeypatch):
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    # Given a bucket of 3,000 frames and one run's 5 outputs
    for n in range(3000):
        s3.put_object(Bucket=BUCKET, Key=f"raw/op{n % 30}/{n:05d}.fits", Body=b"")
    for n in range(5):
        s3.put_object(Bucket=BUCKET, Key=f"scratch/run-1/{n}", Body=b"")
    s3.list_objects_v2(Bucket=BUCKET, Prefix="scratch/")  # the names are ordered at the first listing
    read: list[str] = []
    versions_of = _VersionedKeyStore.getlist

    def counted(self, key, default=None):
        read.append(key)
        return versions_of(self, key, default)

    monkeypatch.setattr(_VersionedKeyStore, "getlist", counted)
    # When the run's prefix is listed
    found = s3.list_objects_v2(Bucket=BUCKET, Prefix="scratch/run-1/")
    # Then it has the 5 outputs, and only their versions were read
    assert [i["Key"] for i in found["Contents"]] == [f"scratch/run-1/{n}" for n in range(5)]
    assert sorted(read) == [f"scratch/run-1/{n}" for n in range(5)]


@pytest.fixture
def backlog(aws):
    """Given a queue with a backlog of 2,000 messages."""
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="ingest")["QueueUrl"]
    for start in range(0, 2000, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(n), "MessageBody": f"m{start + n:04d}"}
                                                      for n in range(10)])
    return sqs, url


def receive(sqs, url, **asked) -> list[dict]:
    return sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, **asked).get("Messages", [])


def test_receiving_and_deleting_behind_a_backlog_reads_only_the_messages_in_flight(backlog, monkeypatch):
    sqs, url = backlog
    looked_at = []
    visible = Message.visible

    def counted(self):
        looked_at.append(self)
        return visible.fget(self)

    monkeypatch.setattr(Message, "visible", property(counted))
    handled = []
    # When 30 messages are received ten at a time, another ten left in flight, and the 30 deleted
    in_flight = receive(sqs, url)
    for _ in range(3):
        messages = receive(sqs, url)
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                                                         for n, m in enumerate(messages)])
        handled += [m["Body"] for m in messages]
    sqs.send_message(QueueUrl=url, MessageBody="late")
    # Then they came in order, each once, and the backlog was never walked: each receive looked at the ten in
    # flight and at the ten it took (twice: moto checks them again), no more
    assert [m["Body"] for m in in_flight] + handled == [f"m{n:04d}" for n in range(40)]
    assert len(looked_at) <= 4 * (10 + 2 * 10)
    # And the counts are right
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == str(2000 - 40 + 1)
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "10"
    # And a deleted message deleted again is no error; a message in flight is deleted once
    sqs.delete_message(QueueUrl=url, ReceiptHandle=messages[0]["ReceiptHandle"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=in_flight[0]["ReceiptHandle"])
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
    assert attributes["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "9"


def test_a_message_visible_again_is_received_and_deleted_with_its_new_handle(backlog):
    sqs, url = backlog
    # Given a message received and made visible again (its consumer gave it back)
    first = receive(sqs, url)[0]
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0)
    # When it is received again and deleted with its new handle, and then with its first one
    [again] = [m for m in receive(sqs, url) if m["Body"] == first["Body"]]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=again["ReceiptHandle"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    # Then it is gone, once, without error
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert int(counts["ApproximateNumberOfMessages"]) + int(counts["ApproximateNumberOfMessagesNotVisible"]) == 1999


def test_a_queue_remembers_only_its_most_recently_deleted_handles(backlog, monkeypatch):
    sqs, url = backlog
    monkeypatch.setattr(sqs_patch, "REMEMBERED_DELETED_HANDLES", 20)
    # Given 30 messages received and deleted
    deleted = []
    for _ in range(3):
        messages = receive(sqs, url)
        for m in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        deleted += messages
    # When the latest and the oldest are deleted again
    sqs.delete_message(QueueUrl=url, ReceiptHandle=deleted[-1]["ReceiptHandle"])
    # Then the latest is no error, and the oldest is refused as an invalid (expired) handle, as AWS does
    with pytest.raises(ClientError, match="ReceiptHandleIsInvalid"):
        sqs.delete_message(QueueUrl=url, ReceiptHandle=deleted[0]["ReceiptHandle"])


def test_a_fifo_queue_still_deduplicates_by_content_and_old_messages_expire(aws, monkeypatch):
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="once.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    # When the same body is sent twice
    for _ in range(2):
        sqs.send_message(QueueUrl=url, MessageBody="same", MessageGroupId="g")
    # Then one message is queued
    assert len(receive(sqs, url)) == 1
    # And a message older than its queue's retention period is not received
    short = sqs.create_queue(QueueName="short", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    sqs.send_message(QueueUrl=short, MessageBody="old")
    monkeypatch.setattr("moto.sqs.models.unix_time", lambda: time.time() + 120)
    monkeypatch.setattr(sqs_patch, "unix_time", lambda: time.time() + 120)
    assert receive(sqs, short) == []


def test_a_process_holding_objects_exits_without_a_traceback_per_object():
    # Given a program that holds S3 objects restored from saved state when it exits (as `local serve` at Ctrl-C)
    program = ("import io, pickle\nfrom moto.s3.models import s3_backends\nfrom obsflow.local import moto_patches\n"
               "from obsflow.local.state_pieces import _Pickler\nmoto_patches.apply()\n"
               "s3 = s3_backends['123456789012']['aws']\ns3.create_bucket('held-bucket', 'us-east-1')\n"
               "for n in range(20):\n    s3.put_object('held-bucket', f'k{n}', b'x')\n"
               "saved = io.BytesIO()\n_Pickler(saved).dump(s3)\nrestored = pickle.loads(saved.getvalue())\n")
    # When it exits
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    # Then it says nothing
    assert result.returncode == 0 and result.stderr == ""


@pytest.mark.parametrize("versioned", [True, False])
def test_a_version_a_request_still_reads_stays_readable_when_a_write_replaces_or_deletes_it(aws, versioned):
    import gc
    import weakref

    from moto.s3.models import s3_backends

    s3 = aws.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    if versioned:
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    backend = s3_backends["123456789012"]["aws"]
    # Given an object version a request in flight holds (a GET streaming it, a PUT working out its ETag)
    s3.put_object(Bucket=BUCKET, Key="frame.fits", Body=b"first")
    held = backend.get_object(BUCKET, "frame.fits")
    # When another request replaces the object, and another deletes it
    s3.put_object(Bucket=BUCKET, Key="frame.fits", Body=b"second")
    s3.delete_object(Bucket=BUCKET, Key="frame.fits")
    # Then the request holding it still reads it, and its ETag
    assert held.value == b"first" and held.etag
    # And once nothing holds it (unversioned: no bucket keeps it), it is gone, and its file with it
    gone = weakref.ref(held)
    del held
    gc.collect()
    assert (gone() is None) != versioned


# -- backpressure: an upload that fed a queue far behind is answered once the queue has caught up ----------------
@pytest.fixture
def notified_queue(aws):
    """A bucket whose every new object notifies a queue, as the ingest bucket does, the queue holding 6 messages and
    held to 3; (s3, sqs, queue url, what releases the queue)."""
    s3, sqs = aws.client("s3"), aws.client("sqs")
    s3.create_bucket(Bucket=BUCKET)
    url = sqs.create_queue(QueueName="frames-to-count")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
    for index in range(5):  # and S3's test event: 6 messages
        s3.put_object(Bucket=BUCKET, Key=f"raw/op/{index}.fits", Body=b"frame")
    assert waiting(sqs, url) == 6
    release = notifications.hold(arn, 3)
    yield s3, sqs, url, release
    release()


def waiting(sqs, url) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                                                       "ApproximateNumberOfMessagesNotVisible"])
    return sum(int(value) for value in attributes["Attributes"].values())


def upload_in_background(s3, key: str) -> threading.Event:
    """Set once the upload is answered."""
    answered = threading.Event()
    threading.Thread(target=lambda: (s3.put_object(Bucket=BUCKET, Key=key, Body=b"frame"), answered.set()),
                     daemon=True).start()
    return answered


def test_an_upload_to_a_queue_behind_its_bound_is_answered_once_the_queue_has_caught_up(notified_queue):
    s3, sqs, url, _ = notified_queue
    # Given a queue held to 3 messages that holds 6, and a consumer that starts deleting them once the next
    # upload's message has arrived, one at a time
    seen: list[tuple[str, int]] = []

    def consume() -> None:
        while waiting(sqs, url) < 7:  # the upload's message
            time.sleep(0.01)
        time.sleep(0.2)
        while (messages := sqs.receive_message(QueueUrl=url).get("Messages")):
            sqs.delete_message(QueueUrl=url, ReceiptHandle=messages[0]["ReceiptHandle"])
            seen.append(("deleted", waiting(sqs, url)))
            time.sleep(0.05)

    consumer = threading.Thread(target=consume)
    consumer.start()
    # When a sender uploads one more object
    s3.put_object(Bucket=BUCKET, Key="raw/op/5.fits", Body=b"frame")
    seen.append(("answered", waiting(sqs, url)))
    consumer.join(timeout=30)
    # Then it is answered only after the consumer brought the queue back to 3, with its object and message stored
    answered = seen.index(next(event for event in seen if event[0] == "answered"))
    assert seen[:answered] == [("deleted", left) for left in (6, 5, 4, 3)]
    assert seen[answered][1] <= 3
    assert s3.head_object(Bucket=BUCKET, Key="raw/op/5.fits")["ContentLength"] == 5
    assert waiting(sqs, url) == 0 and not consumer.is_alive()


def test_an_upload_to_a_queue_that_stopped_draining_or_was_released_is_answered(notified_queue, monkeypatch):
    s3, sqs, url, release = notified_queue
    monkeypatch.setattr(notifications, "STALLED_S", 0.2)
    monkeypatch.setattr(notifications, "MOST_HELD_S", 600.0)
    # Given a queue held to 3 that holds 6, and nothing draining it
    # When a sender uploads one more object
    # Then it is answered all the same, its message queued: a stalled consumer holds no one
    assert upload_in_background(s3, "raw/op/5.fits").wait(timeout=20)
    assert waiting(sqs, url) == 7
    # And an upload that would wait for as long as the queue is held is answered once it is released (the stack
    # stopping)
    monkeypatch.setattr(notifications, "STALLED_S", 600.0)
    answered = upload_in_background(s3, "raw/op/6.fits")
    assert not answered.wait(timeout=0.5)
    release()
    assert answered.wait(timeout=20)
    # And once the queue is released, an upload is answered without looking at the queue
    assert upload_in_background(s3, "raw/op/7.fits").wait(timeout=20)
    assert waiting(sqs, url) == 9


def test_an_upload_is_answered_after_the_longest_wait_however_the_queue_shrinks(notified_queue, monkeypatch):
    s3, sqs, url, _ = notified_queue
    monkeypatch.setattr(notifications, "MOST_HELD_S", 0.3)
    # Given a queue held to 3 that holds 106 messages, drained one at a time faster than a waiting upload looks
    for _ in range(10):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": "m"} for i in range(10)])
    drained = threading.Event()

    def drain() -> None:
        while not drained.is_set() and (messages := sqs.receive_message(QueueUrl=url).get("Messages")):
            sqs.delete_message(QueueUrl=url, ReceiptHandle=messages[0]["ReceiptHandle"])
            time.sleep(0.01)

    consumer = threading.Thread(target=drain)
    consumer.start()
    # When a sender uploads one more object
    s3.put_object(Bucket=BUCKET, Key="raw/op/5.fits", Body=b"frame")
    left = waiting(sqs, url)
    drained.set()
    consumer.join(timeout=30)
    # Then it is answered after the longest wait, the queue still far above its bound
    assert left > 50
