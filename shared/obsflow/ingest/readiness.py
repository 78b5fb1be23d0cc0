"""When is a processing candidate ready? Pure functions over OP states."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OpState:
    expected: int | None
    received: int

    @property
    def complete(self) -> bool:
        return self.expected is not None and self.received >= self.expected


def missing(op_ids: list[str], states: dict[str, OpState]) -> dict[str, str]:
    """What each incomplete OP still lacks, in words; empty when the candidate is ready."""
    lacking = {}
    for op_id in op_ids:
        state = states.get(op_id)
        if state is None:
            lacking[op_id] = "no manifest and no frames yet"
        elif state.expected is None:
            lacking[op_id] = f"{state.received} frame(s) received, no manifest yet"
        elif not state.complete:
            lacking[op_id] = f"{state.received} of {state.expected} frame(s) received"
    return lacking


def completed_by_change(before: OpState | None, after: OpState) -> bool:
    """True when a change made the OP complete (it was not complete before)."""
    return after.complete and not (before is not None and before.complete)
