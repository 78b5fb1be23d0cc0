"""Read models for the operator: records as plain dicts, joined the way people ask."""

from __future__ import annotations

from obsflow.errors import NotFound
from obsflow.ingest.readiness import missing
from obsflow.tables import candidates, frames, observing_programs, quarantine


def frame_rows(op_id: str | None = None) -> list[dict]:
    items = frames.frames_of_op(op_id) if op_id else sorted(frames.all_frames(), key=lambda f: (f.op_id, f.date_obs))
    return [item.attribute_values for item in items]


def quarantine_rows() -> list[dict]:
    return [item.attribute_values for item in quarantine.all_quarantined()]


def op_rows() -> list[dict]:
    return [
        {**op.attribute_values, "received": op.state.received, "complete": op.state.complete}
        for op in observing_programs.all_ops()
    ]


def candidate_rows() -> list[dict]:
    return [{**c.attribute_values, "ops": c.op_ids} for c in candidates.all_candidates()]


def candidate_detail(candidate_id: str) -> dict:
    candidate = candidates.get(candidate_id)
    if candidate is None:
        raise NotFound(f"no candidate {candidate_id!r}; `obsflow candidates list` shows the known ones")
    ops = observing_programs.get_many(candidate.op_ids)
    states = {op_id: op.state for op_id, op in ops.items()}
    lacking = missing(candidate.op_ids, states)
    return {
        **candidate.attribute_values,
        "ops": [
            {
                "op_id": op_id,
                "role": "observe" if op_id == candidate.observe_op else "calibration",
                "task_type": ops[op_id].task_type if op_id in ops else None,
                "expected": states[op_id].expected if op_id in states else None,
                "received": states[op_id].received if op_id in states else 0,
                "complete": op_id not in lacking,
                "missing": lacking.get(op_id),
            }
            for op_id in candidate.op_ids
        ],
    }
