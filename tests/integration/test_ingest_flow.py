"""Ingest on moto: real S3 notifications through SQS into the handler."""

from __future__ import annotations

from obsflow.tables import candidates, frames, observing_programs, quarantine


def upload_all(stack, candidate, *, manifest_last=True):
    for key, body in candidate.frame_objects():
        stack.put(key, body)
    stack.put(*candidate.candidate_object())
    stack.put(*candidate.manifest_object())


def test_candidate_becomes_ready_once_all_frames_and_manifest_arrive(stack, small_candidate):
    # Given every frame, the candidate and (last) the manifest uploaded
    upload_all(stack, small_candidate)
    # When the queue is drained through the ingest handler
    stack.drain()
    # Then every OP is complete and the candidate is READY because it is complete
    ops = observing_programs.get_many(op.op_id for op in small_candidate.ops)
    assert {op_id: (op.received, op.expected) for op_id, op in ops.items()} == {
        op.op_id: (len(op.frames), len(op.frames)) for op in small_candidate.ops
    }
    candidate = candidates.get("cand_small")
    assert candidate.status == "READY"
    assert candidate.ready_reason == "complete"
    assert len(frames.all_frames()) == 8
    assert quarantine.all_quarantined() == []
