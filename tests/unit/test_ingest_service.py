"""The ingest service's decisions, on in-memory fakes."""

from __future__ import annotations

import json

import pytest

from obsflow.ingest.readiness import OpState, completed_by_change, missing
from obsflow.ingest.service import BatchReport, ObjectRef, object_refs


def deliver(service, keys) -> BatchReport:
    """One batch of notifications: keys, or ObjectRefs (with a version and an ETag)."""
    report = BatchReport()
    refs = [ObjectRef("b", key) if isinstance(key, str) else key for key in keys]
    frames = [f for ref in refs if (f := service.stage(ref, report)) is not None]
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


def with_card(body: bytes, keyword: str, value: str | None) -> bytes:
    """The frame with one header card's value replaced verbatim (None: the card removed, END padded), as a hostile
    or broken writer would leave it: no FITS library would write these."""
    end = body.index(b"END" + b" " * 77)
    cards = [body[i:i + 80] for i in range(0, end, 80)]
    out = []
    for card in cards:
        if card[:8].decode().strip() == keyword:
            if value is None:
                continue
            card = f"{keyword:<8}= {value:>20}".ljust(80).encode()
        out.append(card)
    header = b"".join(out) + b"END" + b" " * 77
    header += b" " * (-len(header) % 2880)
    return header + body[(end // 2880 + 1) * 2880:]


@pytest.mark.parametrize("keyword, value, code", [
    ("ID___002", "''", "spec122"),              # an empty file id: DynamoDB refuses an empty key
    ("ID___002", "'    '", "spec122"),          # whitespace only
    ("ID___008", "''", "spec122"),              # an empty OP id
    ("BITPIX", None, "bad-structure"),          # no BITPIX: the data size cannot be known
    ("NAXIS", "'two'", "bad-structure"),        # a non-integer NAXIS
    ("NAXIS1", "-5", "bad-structure"),          # a negative axis
])
def test_a_frame_with_a_broken_header_is_quarantined_with_a_reason_and_its_neighbours_are_counted(
        world, keyword, value, code):
    candidate, bucket, store, service = world
    deliver(service, [candidate.manifest_object()[0], candidate.candidate_object()[0]])
    frame_keys = [key for key, _ in candidate.frame_objects()]
    # Given one frame of an OP broken in its header, among good ones in the same batch
    bucket.objects[frame_keys[0]] = with_card(bucket.objects[frame_keys[0]], keyword, value)
    # When the batch is delivered
    report = deliver(service, frame_keys)
    # Then the broken frame is quarantined with a specific reason, and every other frame is counted
    assert report.quarantined == 1 and [q["code"] for q in store.quarantined] == [code]
    assert keyword in store.quarantined[0]["reason"]
    assert sum(store.received.values()) == len(frame_keys) - 1


def test_an_object_the_parser_trips_on_is_quarantined_alone(world, monkeypatch):
    candidate, bucket, store, service = world
    frame_keys = [key for key, _ in candidate.frame_objects()]
    # Given a parser that crashes on one frame's content (as a library bug would)
    from obsflow.ingest import service as ingest_service

    real = ingest_service.frame_from_header

    def tripping(header, **kwargs):
        if kwargs["key"] == frame_keys[1]:
            raise ZeroDivisionError("float division by zero")
        return real(header, **kwargs)

    monkeypatch.setattr(ingest_service, "frame_from_header", tripping)
    # When its batch is delivered
    report = deliver(service, frame_keys)
    # Then that frame is quarantined as unparseable with the error, and the rest are counted
    assert [(q["key"], q["code"]) for q in store.quarantined] == [(frame_keys[1], "unparseable")]
    assert "ZeroDivisionError" in store.quarantined[0]["reason"]
    assert report.counted == len(frame_keys) - 1
