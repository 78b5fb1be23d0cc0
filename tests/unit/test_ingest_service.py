"""The ingest service's decisions, on in-memory fakes."""

from __future__ import annotations

import json

import pytest

from obsflow.ingest.readiness import OpState, completed_by_change, missing
from obsflow.ingest.service import BatchReport, IngestService, ObjectRef, object_refs
from obsflow.settings import Settings
from tests.unit.fakes import FakeBucket, FakeStore


@pytest.fixture
def world(small_candidate):
    objects = dict(small_candidate.frame_objects())
    objects.update([small_candidate.manifest_object(), small_candidate.candidate_object()])
    bucket, store = FakeBucket(objects), FakeStore()
    return small_candidate, bucket, store, IngestService(bucket, store, Settings(stage="test"))


def deliver(service, keys) -> BatchReport:
    report = BatchReport()
    frames = [f for key in keys if (f := service.stage(ObjectRef("b", key), report)) is not None]
    service.commit_frames(frames, report)
    return report


def test_documents_in_any_order_make_the_candidate_ready_exactly_once(world):
    candidate, bucket, store, service = world
    frame_keys = [key for key, _ in candidate.frame_objects()]
    # Given the manifest first, then half the frames, the candidate, the rest of the frames
    reports = [
        deliver(service, [candidate.manifest_object()[0]]),
        deliver(service, frame_keys[:4]),
        deliver(service, [candidate.candidate_object()[0]]),
        deliver(service, frame_keys[4:]),
        # and every notification once more
        deliver(service, frame_keys + [candidate.manifest_object()[0], candidate.candidate_object()[0]]),
    ]
    # Then each frame is counted once and the candidate became READY once, with the last frame
    assert store.received == {op.op_id: len(op.frames) for op in candidate.ops}
    assert [r.ready for r in reports] == [[], [], [], ["cand_small"], []]
    assert store.ready_marks == 1
    assert sum(r.duplicates for r in reports) == len(frame_keys)


def test_a_redelivery_after_a_crash_between_counting_and_evaluating_still_makes_the_candidate_ready(world):
    candidate, bucket, store, service = world
    deliver(service, [candidate.manifest_object()[0], candidate.candidate_object()[0]])
    frame_keys = [key for key, _ in candidate.frame_objects()]
    # Given the last frames counted, but the evaluation lost (the Lambda died)
    original = service._evaluate_all
    service._evaluate_all = lambda ids, report: None
    deliver(service, frame_keys)
    assert store.candidates["cand_small"].status == "WAITING"
    service._evaluate_all = original
    # When the same notification is delivered again
    report = deliver(service, frame_keys[-1:])
    # Then the duplicate on a complete OP re-evaluates and the candidate is READY
    assert report.ready == ["cand_small"]


@pytest.mark.parametrize(
    "key, code",
    [("notes/readme.txt", "unknown-prefix"), ("raw/orphan.fits", "unknown-prefix"), ("manifests/a/b.json", "unknown-prefix")],
)
def test_keys_outside_the_contract_are_quarantined(world, key, code):
    _, bucket, store, service = world
    bucket.objects[key] = b"whatever"
    report = deliver(service, [key])
    assert report.quarantined == 1
    assert store.quarantined[0]["code"] == code
    assert "raw/<op_id>/<name>.fits" in store.quarantined[0]["reason"]


def test_bytes_read_per_frame_stay_under_32_kib(world):
    candidate, bucket, store, service = world
    deliver(service, [key for key, _ in candidate.frame_objects()])
    assert bucket.bytes_read / len(candidate.frame_objects()) <= 32 * 1024


def test_s3_test_events_are_ignored_and_keys_are_url_decoded():
    assert object_refs(json.dumps({"Event": "s3:TestEvent", "Bucket": "b"})) == []
    body = json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {
        "bucket": {"name": "b"}, "object": {"key": "raw/op+1/a%3Db.fits", "size": 5, "versionId": "v"}}}]})
    assert object_refs(body) == [ObjectRef("b", "raw/op 1/a=b.fits", "v", 5, None, "ObjectCreated:Put")]


def test_missing_reports_what_each_op_lacks():
    states = {"a": OpState(3, 3), "b": OpState(4, 1), "c": OpState(None, 2)}
    assert missing(["a", "b", "c", "d"], states) == {
        "b": "1 of 4 frame(s) received",
        "c": "2 frame(s) received, no manifest yet",
        "d": "no manifest and no frames yet",
    }
    assert missing(["a"], states) == {}


def test_completion_is_detected_only_on_the_change_that_completes():
    assert completed_by_change(OpState(3, 2), OpState(3, 3))
    assert completed_by_change(None, OpState(1, 1))
    assert not completed_by_change(OpState(3, 3), OpState(3, 4))
    assert not completed_by_change(OpState(None, 2), OpState(None, 3))
