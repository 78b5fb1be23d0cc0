"""Ingest on moto: duplicates, out-of-order documents, concurrent batches, bad input."""

from __future__ import annotations

import datetime as dt
import io
import json
import threading

from astropy.io import fits

from obsflow.ingest import store as store_module
from obsflow.ingest.batch import build_service, process_batch
from obsflow.ingest.frames import Frame
from obsflow.ingest.readiness import OpState, completed_by_change
from obsflow.ingest.store import DynamoIngestStore
from obsflow.tables import candidates, frames, observing_programs, quarantine
from obsflow.tables.frames import FrameItem


def op_counts(candidate):
    ops = observing_programs.get_many(op.op_id for op in candidate.ops)
    return {op_id: (op.received, op.expected) for op_id, op in ops.items()}


def receive_all(stack) -> list[dict]:
    messages = []
    while batch := stack.sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10).get("Messages"):
        messages.extend(batch)
    return messages


def as_event(messages) -> dict:
    return {"Records": [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                         "attributes": {}, "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                         "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"}
                        for m in messages]}


def test_documents_first_frames_last_and_every_notification_twice(stack, small_candidate):
    # Given the manifest and candidate before any frame
    stack.put(*small_candidate.manifest_object())
    stack.put(*small_candidate.candidate_object())
    for key, body in small_candidate.frame_objects():
        stack.put(key, body)
    # When every notification is delivered twice, in separate batches
    messages = receive_all(stack)
    service = build_service(stack.settings)
    for delivery in (messages, list(reversed(messages))):
        for start in range(0, len(delivery), 3):
            response, _ = process_batch(service, as_event(delivery[start:start + 3]))
            assert response["batchItemFailures"] == []
    # Then counts are exact and the candidate is READY
    assert op_counts(small_candidate) == {op.op_id: (len(op.frames), len(op.frames)) for op in small_candidate.ops}
    assert candidates.get("cand_small").status == "READY"


def test_re_uploaded_frames_are_counted_once(stack, small_candidate):
    # Given every frame uploaded twice (two S3 versions, the same file ids)
    for _ in range(2):
        for key, body in small_candidate.frame_objects():
            stack.put(key, body)
    # When ingested
    stack.drain()
    # Then each OP counts each frame once
    assert {op_id: received for op_id, (received, _) in op_counts(small_candidate).items()} == {
        op.op_id: len(op.frames) for op in small_candidate.ops}
    assert len(frames.all_frames()) == 8


def test_concurrent_batches_for_the_same_op_count_exactly(stack):
    from obsflow.simulate import simulate_op

    # Given 40 frames of one OP, each notified twice, split across 4 concurrent handlers
    op = simulate_op("op_busy", "observe", 40, proposal_id="p", experiment_id="e", shape=(16, 16),
                     start=dt.datetime(2026, 1, 1), seed=3)
    for key, body in zip(op.keys(), (b for _, b in op.frames)):
        stack.put(key, body)
        stack.put(key, body)
    messages = receive_all(stack)
    service = build_service(stack.settings)
    failures = []

    def worker(chunk):
        for start in range(0, len(chunk), 10):
            failures.extend(process_batch(service, as_event(chunk[start:start + 10]))[0]["batchItemFailures"])

    threads = [threading.Thread(target=worker, args=(messages[i::4],)) for i in range(4)]
    # When they run at the same time
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then the count is exact
    assert failures == []
    assert observing_programs.get_many(["op_busy"])["op_busy"].received == 40
    assert len(list(FrameItem.by_op.query("op_busy"))) == 40


def _frames_of(op_id: str, count: int, start: int = 0) -> list[Frame]:
    return [Frame(file_id=f"{op_id}_{i:03d}", op_id=op_id, experiment_id="e", proposal_id="p", instrument="VBI",
                  task_type="observe", date_obs="2026-01-01T00:00:00", bucket="b", key=f"raw/{op_id}/{i}.fits",
                  version_id=None, etag=None, size=1, header_bytes=1, fried_parameter=None, ao_locked=None)
            for i in range(start, start + count)]


class StaleReads:
    """The store's OP reads, the first of them replaced by an older read: another batch committed in between."""

    def __init__(self, monkeypatch, stale):
        self.stale, self.commits = stale, 0
        real_get_many, real_commit = store_module.observing_programs.get_many, DynamoIngestStore._commit

        def get_many(op_ids):
            if self.stale is not None:
                stale, self.stale = self.stale, None
                return stale
            return real_get_many(op_ids)

        def commit(store, *args):
            self.commits += 1
            return real_commit(store, *args)

        monkeypatch.setattr(store_module.observing_programs, "get_many", get_many)
        monkeypatch.setattr(DynamoIngestStore, "_commit", commit)


def test_a_batch_far_from_completing_its_op_is_not_cancelled_by_another_but_one_completing_it_reads_again(
        stack, monkeypatch):
    # Given an OP expecting 40 frames with 10 counted, read by a batch just before another batch counted 10 more
    store, now = DynamoIngestStore(stack.settings), dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    observing_programs.ObservingProgramItem("op_far", expected=40).save()
    store.record_frames(_frames_of("op_far", 10), now)
    stale = observing_programs.get_many(["op_far"])
    store.record_frames(_frames_of("op_far", 10, start=10), now)
    reads = StaleReads(monkeypatch, stale)
    # When the batch that read early commits 10 frames (30 of 40: it cannot complete the OP)
    outcome = store.record_frames(_frames_of("op_far", 10, start=20), now)
    # Then it commits at once, and the count is exact
    assert reads.commits == 1
    assert observing_programs.get_many(["op_far"])["op_far"].received == 30
    assert not outcome.ops["op_far"][1].complete

    # Given a batch of the last 10 frames that read the OP when 20 were counted
    reads = StaleReads(monkeypatch, stale)
    # When it commits
    outcome = store.record_frames(_frames_of("op_far", 10, start=30), now)
    # Then it reads again (it may complete the OP), and the counts before and after are exact: it completed it
    assert reads.commits == 2
    before, after, _ = outcome.ops["op_far"]
    assert (before, after) == (OpState(40, 30), OpState(40, 40))
    assert completed_by_change(before, after)


def fits_with(header_edit, body: bytes) -> bytes:
    hdul = fits.open(io.BytesIO(body))
    header = hdul[0].header.copy()
    header_edit(header)
    buffer = io.BytesIO()
    fits.PrimaryHDU(hdul[0].data, header=header).writeto(buffer)
    return buffer.getvalue()


def test_every_kind_of_bad_input_is_quarantined_and_good_input_keeps_flowing(stack, small_candidate):
    good_key, good = small_candidate.frame_objects()[0]
    op_id = small_candidate.ops[0].op_id
    bad = {
        f"raw/{op_id}/not_fits.fits": b"this is not a FITS file at all" * 200,
        f"raw/{op_id}/truncated.fits": good[: len(good) // 2],
        f"raw/{op_id}/no_proposal.fits": fits_with(lambda h: h.remove("ID___013"), good),
        f"raw/{op_id}/bad_type.fits": fits_with(lambda h: h.set("ID___012", 12), good),
        f"raw/{op_id}/other_op.fits": fits_with(lambda h: h.set("ID___008", "someone_else"), good),
        "manifests/broken.json": b"{ not json",
        "candidates/c9.json": json.dumps({"candidate_id": "c9", "instrument": "VBI"}).encode(),
        "summit/stray.txt": b"hello",
    }
    expected_codes = ["not-fits", "truncated", "missing-keywords", "spec122", "op-mismatch", "malformed-json",
                      "schema", "unknown-prefix"]
    # Given a mix of bad objects and good frames in the same batches
    for key, body in bad.items():
        stack.put(key, body)
    for key, body in small_candidate.frame_objects():
        stack.put(key, body)
    # When ingested
    stack.drain()
    # Then each bad object is quarantined with its key, version and a specific reason
    records = {q.key: q for q in quarantine.all_quarantined()}
    assert {key: records[key].code for key in bad} == dict(zip(bad, expected_codes))
    assert all(q.version_id != "null" and q.reason for q in records.values())
    assert "ID___013" in records[f"raw/{op_id}/no_proposal.fits"].reason
    # and every good frame was still counted, nothing went to the dead-letter queue
    assert len(frames.all_frames()) == len(small_candidate.frame_objects())
    dlq = stack.sqs.get_queue_attributes(QueueUrl=stack.dlq_url, AttributeNames=["ApproximateNumberOfMessages"])
    assert dlq["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_an_unreadable_message_fails_alone_and_ends_in_the_dead_letter_queue(stack, small_candidate):
    # Given a message that is not an S3 notification, beside good frame notifications
    stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody="garbage")
    for key, body in small_candidate.frame_objects()[:3]:
        stack.put(key, body)
    # When the queue is drained (the poller retries failures, SQS redrives after 3 receives)
    stack.drain()
    # Then the good frames are in, and the bad message is kept in the DLQ
    assert len(frames.all_frames()) == 3
    dead = stack.sqs.receive_message(QueueUrl=stack.dlq_url, MaxNumberOfMessages=10).get("Messages", [])
    assert [m["Body"] for m in dead] == ["garbage"]


def test_the_s3_test_event_is_ignored(stack):
    body = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": stack.bucket})
    response, _ = process_batch(build_service(stack.settings), as_event([{"MessageId": "m1", "ReceiptHandle": "r", "Body": body}]))
    assert response == {"batchItemFailures": []}
    assert quarantine.all_quarantined() == []


def test_readiness_is_signalled_once_even_when_evaluated_repeatedly(stack, small_candidate):
    # Given a complete candidate
    for key, body in [*small_candidate.frame_objects(), small_candidate.candidate_object(), small_candidate.manifest_object()]:
        stack.put(key, body)
    stack.drain()
    service = build_service(stack.settings)
    first_ready = candidates.get("cand_small").ready_at
    # When readiness is evaluated again, concurrently
    results = []
    threads = [threading.Thread(target=lambda: results.append(service.evaluate("cand_small"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then nothing changes: it was already READY, and stays READY from the first time
    assert results == [False] * 4
    assert candidates.get("cand_small").ready_at == first_ready


def test_frames_in_dkist_s_tile_compressed_layout_are_counted_and_gzip_files_get_their_own_reason(stack, small_candidate):
    import gzip

    # Given the candidate's frames as DKIST stores them (an empty primary HDU, header and data in a RICE
    # CompImageHDU), and one more frame of its OP sent gzipped
    dkist = []
    for key, body in small_candidate.frame_objects():
        with fits.open(io.BytesIO(body)) as hdul:
            buffer = io.BytesIO()
            fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(hdul[0].data, header=hdul[0].header,
                                                               compression_type="RICE_1")]).writeto(buffer)
        dkist.append((key, buffer.getvalue()))
    key, body = small_candidate.frame_objects()[0]
    gzipped = key.replace(".fits", "_again.fits.gz")
    # When they and the documents are ingested
    for key, body in [*dkist, (gzipped, gzip.compress(body)), small_candidate.candidate_object(),
                      small_candidate.manifest_object()]:
        stack.put(key, body)
    stack.drain()
    # Then every compressed frame is counted like any frame, and the candidate is READY
    assert op_counts(small_candidate) == {op.op_id: (len(op.frames), len(op.frames)) for op in small_candidate.ops}
    assert candidates.get(small_candidate.candidate_id).status == "READY"
    # And the gzipped file is quarantined saying what to send instead
    [record] = [q for q in quarantine.all_quarantined() if q.key == gzipped]
    assert record.code == "compressed-container" and "CompImageHDU" in record.reason


def test_conflicting_frames_are_quarantined_with_their_reason_and_recorded_on_their_op(stack, small_candidate):
    # Given the small candidate ingested
    for key, body in [small_candidate.manifest_object(), small_candidate.candidate_object(), *small_candidate.frame_objects()]:
        stack.put(key, body)
    stack.drain()
    dark = small_candidate.ops[0]
    first_key, body = f"raw/{dark.op_id}/{dark.frames[0][0]}", dark.frames[0][1]
    # When the same bytes are uploaded again (a new version, the same ETag), the same frame under a second key,
    # and other bytes (another version) under the first key with the same file id
    stack.put(first_key, body)
    stack.put(first_key.replace(".fits", "_again.fits"), body)
    altered = fits_with(lambda h: h.set("CAM__005", 99.0), body)
    stack.put(first_key, altered)
    stack.drain()
    # Then the counts are unchanged, the identical upload is silent, and the other two are quarantined with reasons
    assert {op_id: received for op_id, (received, _) in op_counts(small_candidate).items()} == {
        op.op_id: len(op.frames) for op in small_candidate.ops}
    codes = sorted(q.code for q in quarantine.all_quarantined())
    assert codes == ["duplicate-file-id", "key-overwritten"]
    # And the OP's history says what happened, first to last
    op = observing_programs.get_many([dark.op_id])[dark.op_id]
    assert sorted(e.kind for e in op.events) == ["duplicate-file-id", "key-overwritten"]
