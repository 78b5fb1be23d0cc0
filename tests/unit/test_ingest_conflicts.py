"""Conflicts are never silent: each rule, on the ingest service over fakes.

The first of two contradicting documents or frames stays the one processed, except a manifest's
expected count, where the latest manifest wins; either way the OP or candidate records an event,
and what is not processed is kept in quarantine with the reason.
"""

from __future__ import annotations

import json

from obsflow.ingest.service import ObjectRef
from tests.unit.test_ingest_service import deliver, with_card


def everything(candidate) -> list[str]:
    return [candidate.manifest_object()[0], candidate.candidate_object()[0], *(k for k, _ in candidate.frame_objects())]


def events(store, kind: str, id_: str) -> list[str]:
    return [k for k, _ in store.events.get((kind, id_), [])]


def test_a_manifest_revision_changing_an_expected_count_applies_and_is_recorded(world):
    candidate, bucket, store, service = world
    observe = candidate.ops[-1].op_id
    deliver(service, [candidate.candidate_object()[0], candidate.manifest_object()[0]])
    # When a second manifest says the observe OP has 6 frames instead of 4
    revised = {"manifest_id": "second", "observing_programs": [{"op_id": observe, "expected_frames": 6}]}
    bucket.objects["manifests/second.json"] = json.dumps(revised).encode()
    deliver(service, ["manifests/second.json"])
    # Then the latest count applies, the OP records the change, and the candidate (still waiting) needs no event
    assert store.expected[observe] == 6 and events(store, "op", observe) == ["expected-changed"]
    assert events(store, "candidate", "cand_small") == []
    # And the same manifest again changes nothing and records nothing
    deliver(service, ["manifests/second.json"])
    assert events(store, "op", observe) == ["expected-changed"]


def test_a_revision_after_the_candidate_was_released_is_recorded_on_the_candidate_too(world):
    candidate, bucket, store, service = world
    deliver(service, everything(candidate))
    assert store.candidates["cand_small"].status == "READY"
    observe = candidate.ops[-1].op_id
    revised = {"manifest_id": "later", "observing_programs": [{"op_id": observe, "expected_frames": 9}]}
    bucket.objects["manifests/later.json"] = json.dumps(revised).encode()
    deliver(service, ["manifests/later.json"])
    [(kind, detail)] = store.events[("candidate", "cand_small")]
    assert kind == "expected-changed" and "from 4 to 9 after the candidate was released" in detail
    assert "obsflow reprocess plan" in detail


def test_a_re_uploaded_candidate_with_other_ops_is_quarantined_and_changes_nothing(world):
    candidate, bucket, store, service = world
    deliver(service, [candidate.candidate_object()[0]])
    # When the same candidate id comes again with another proposal and another observe OP
    changed = {**candidate.candidate, "proposal_id": "pid_9_9", "observe_op": "someone_elses_op"}
    bucket.objects[candidate.candidate_object()[0]] = json.dumps(changed).encode()
    report = deliver(service, [ObjectRef("b", candidate.candidate_object()[0], version_id="v2")])
    # Then it is quarantined naming what differs, recorded on the candidate, and the other OP does not list it
    assert report.quarantined == 1 and store.quarantined[-1]["code"] == "candidate-conflict"
    assert "another proposal_id, observe_op" in store.quarantined[-1]["reason"]
    assert events(store, "candidate", "cand_small") == ["document-conflict"]
    assert "cand_small" not in store.members.get("someone_elses_op", set())
    assert store.candidates["cand_small"].observe_op == candidate.candidate["observe_op"]
    # And the identical document again is an ordinary redelivery
    bucket.objects[candidate.candidate_object()[0]] = candidate.candidate_object()[1]
    assert deliver(service, [candidate.candidate_object()[0]]).quarantined == 0


def test_frames_after_the_candidate_was_released_are_counted_and_recorded(world):
    candidate, bucket, store, service = world
    deliver(service, everything(candidate))
    observe = candidate.ops[-1]
    # When two more frames of the observe OP arrive after the candidate became READY
    extra = [f"raw/{observe.op_id}/late_{i}.fits" for i in range(2)]
    for i, key in enumerate(extra):
        bucket.objects[key] = with_card(observe.frames[i][1], "ID___002", f"'late_frame_{i}'")
    deliver(service, extra)
    # Then they are counted, and the OP and the candidate say frames came after it was released
    assert store.received[observe.op_id] == len(observe.frames) + 2 and store.late_frames[observe.op_id] == 2
    assert events(store, "op", observe.op_id) == ["late-frames"]
    [(kind, detail)] = store.events[("candidate", "cand_small")]
    assert kind == "late-frames" and "2 frame(s) arrived after candidate(s) cand_small were released" in detail


def test_one_file_id_under_two_keys_counts_once_and_keeps_the_second_in_quarantine(world):
    candidate, bucket, store, service = world
    first_key, body = candidate.frame_objects()[0]
    deliver(service, [first_key])
    # When the same frame (the same file id) arrives under another key of its OP
    other = first_key.replace(".fits", "_copy.fits")
    bucket.objects[other] = body
    report = deliver(service, [other])
    # Then it is not counted again; it is quarantined naming the key counted; the OP records it
    assert report.counted == 0 and report.quarantined == 1
    assert store.quarantined[-1]["code"] == "duplicate-file-id" and first_key in store.quarantined[-1]["reason"]
    assert events(store, "op", candidate.ops[0].op_id) == ["duplicate-file-id"]


def test_a_key_overwritten_with_other_bytes_keeps_the_first_version_and_a_redelivery_stays_silent(world):
    candidate, bucket, store, service = world
    key, _ = candidate.frame_objects()[0]
    deliver(service, [ObjectRef("b", key, version_id="v1", etag="e1")])
    # When the same notification comes again, and when the key is overwritten (a new version, other bytes)
    again = deliver(service, [ObjectRef("b", key, version_id="v1", etag="e1")])
    overwritten = deliver(service, [ObjectRef("b", key, version_id="v2", etag="e2")])
    # Then the redelivery is an ordinary duplicate, and the overwrite is quarantined with what to do
    assert (again.duplicates, again.quarantined) == (1, 0)
    assert (overwritten.duplicates, overwritten.quarantined) == (0, 1)
    assert store.quarantined[-1]["code"] == "key-overwritten"
    assert "received first (v1) stays the one counted and processed" in store.quarantined[-1]["reason"]
    assert next(f for f in store.frames.values() if f.key == key).version_id == "v1"
    assert events(store, "op", candidate.ops[0].op_id) == ["key-overwritten"]


def test_conflicts_owe_one_review_ticket_each_round_with_what_to_do():
    import datetime as dt

    from obsflow.runs.domain import Conflict
    from tests.unit.test_run_service import add_candidate, make_service

    # Given a candidate with two conflicts recorded by ingest
    service = make_service()
    add_candidate(service, "c1")
    at = dt.datetime(2026, 11, 21, tzinfo=dt.timezone.utc)
    service.store.conflicts["c1"] = [Conflict(at, "late-frames", "2 frame(s) arrived after c1 was released"),
                                     Conflict(at, "key-overwritten", "raw/op/x.fits was overwritten")]
    # When the submitter runs, twice
    first, second = service.submit(), service.submit()
    # Then one ticket covers both, saying what to do for each, and the second round files nothing
    assert first.reviews == ["c1"] and second.reviews == []
    [ticket] = [t for t in service.store.tickets.values() if t.kind == "review:conflict"]
    assert ticket.ticket_id == "TKT-c1-conflicts-2" and "key-overwritten, late-frames" in ticket.summary
    assert "obsflow reprocess plan --frame" in ticket.suggested_action and "--datasets" in ticket.suggested_action
    assert "2 frame(s) arrived" in ticket.error_message
    # And a later conflict gets a ticket of its own, covering only it
    service.store.conflicts["c1"].append(Conflict(at, "document-conflict", "came again with another observe_op"))
    assert service.submit().reviews == ["c1"]
    assert service.store.tickets["TKT-c1-conflicts-3"].summary == "candidate c1: document-conflict (1 event(s))"


def test_a_conflict_delivered_again_is_recorded_once(world):
    candidate, bucket, store, service = world
    key, _ = candidate.frame_objects()[0]
    deliver(service, [ObjectRef("b", key, version_id="v1", etag="e1")])
    deliver(service, [candidate.candidate_object()[0]])
    changed = {**candidate.candidate, "priority": 99}
    bucket.objects[candidate.candidate_object()[0]] = json.dumps(changed).encode()
    # When an overwrite and a differing candidate are each delivered three times (at-least-once delivery)
    for _ in range(3):
        deliver(service, [ObjectRef("b", key, version_id="v2", etag="e2"),
                          ObjectRef("b", candidate.candidate_object()[0], version_id="v2")])
    # Then each is quarantined once and recorded once on the OP and the candidate
    assert sorted(q["code"] for q in store.quarantined) == ["candidate-conflict", "key-overwritten"]
    assert events(store, "op", candidate.ops[0].op_id) == ["key-overwritten"]
    assert sorted(events(store, "candidate", "cand_small")) == ["document-conflict", "key-overwritten"]
