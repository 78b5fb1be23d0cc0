"""In-memory fakes of the ingest service's dependencies (prefer fakes over mocks)."""

from __future__ import annotations

from dataclasses import dataclass, field

from obsflow.errors import Rejected
from obsflow.ingest.readiness import OpState
from obsflow.ingest.store import FramesOutcome


class FakeBucket:
    """ObjectReader over a dict of key -> bytes; counts the bytes handed out."""

    def __init__(self, objects: dict[str, bytes] | None = None):
        self.objects = dict(objects or {})
        self.bytes_read = 0
        self.requests = 0

    def read_range(self, bucket, key, version_id, start, length):
        self.requests += 1
        body = self.objects[key]
        chunk = body[start : start + length]
        self.bytes_read += len(chunk)
        return chunk, len(body), "v1"

    def current_version(self, bucket, key):
        return "v1" if key in self.objects else None

    def read_all(self, bucket, key, version_id, limit):
        self.requests += 1
        body = self.objects[key]
        if len(body) > limit:
            raise Rejected("too-large", "too large")
        self.bytes_read += len(body)
        return body


@dataclass
class FakeCandidate:
    candidate_id: str
    observe_op: str
    calibration_ops: list[str]
    status: str = "WAITING"
    ready_reason: str | None = None

    @property
    def op_ids(self):
        return [self.observe_op, *self.calibration_ops]


@dataclass
class FakeStore:
    """IngestStore semantics in memory: frames keyed by file id, counts per OP, conditional READY."""

    frames: dict = field(default_factory=dict)
    expected: dict = field(default_factory=dict)
    received: dict = field(default_factory=dict)
    members: dict = field(default_factory=dict)
    candidates: dict = field(default_factory=dict)
    quarantined: list = field(default_factory=list)
    ready_marks: int = 0

    def _state(self, op_id):
        if op_id not in self.expected and op_id not in self.received:
            return None
        return OpState(self.expected.get(op_id), self.received.get(op_id, 0))

    def record_frames(self, frames, now):
        outcome = FramesOutcome()
        before = {frame.op_id: self._state(frame.op_id) for frame in frames}
        for frame in frames:
            if frame.file_id in self.frames:
                outcome.duplicates.append(frame.file_id)
                continue
            self.frames[frame.file_id] = frame
            self.received[frame.op_id] = self.received.get(frame.op_id, 0) + 1
            outcome.counted.append(frame.file_id)
        for op_id, state in before.items():
            outcome.ops[op_id] = (state, self._state(op_id), set(self.members.get(op_id, ())))
        return outcome

    def record_manifest(self, manifest, key, version_id, now):
        states = {}
        for op in manifest.observing_programs:
            self.expected[op.op_id] = op.expected_frames
            states[op.op_id] = (self._state(op.op_id), set(self.members.get(op.op_id, ())))
        return states

    def record_candidate(self, candidate, key, version_id, now):
        new = candidate.candidate_id not in self.candidates
        self.candidates.setdefault(
            candidate.candidate_id,
            FakeCandidate(candidate.candidate_id, candidate.observe_op, list(candidate.calibration_ops)),
        )
        for op_id in candidate.op_ids:
            self.members.setdefault(op_id, set()).add(candidate.candidate_id)
        return new

    def candidate(self, candidate_id):
        return self.candidates.get(candidate_id)

    def op_states(self, op_ids):
        return {op_id: state for op_id in op_ids if (state := self._state(op_id)) is not None}

    def mark_ready(self, candidate_id, reason, detail, now):
        candidate = self.candidates[candidate_id]
        if candidate.status != "WAITING":
            return False
        candidate.status, candidate.ready_reason = "READY", reason
        self.ready_marks += 1
        return True

    def quarantine(self, bucket, key, version_id, size, etag, code, reason, now):
        self.quarantined.append({"key": key, "code": code, "reason": reason})
