"""Ingest domain logic: classify each S3 object, accept or quarantine it, count, decide readiness.

Dependencies come in (an object reader and a store), so unit tests run on fakes.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import unquote_plus

from obsflow.errors import Rejected
from obsflow.ingest.documents import (
    ProcessingCandidate,
    ProposalDocument,
    StoredDocument,
    TransferManifest,
    parse_document,
)
from obsflow.ingest.fits_header import RangeReader, read_header_values
from obsflow.ingest.frames import Frame, frame_from_header
from obsflow.ingest.readiness import OpState, completed_by_change, missing
from obsflow.observability import logger
from obsflow.settings import Settings
from obsflow.statuses import WAITING

MAX_DOCUMENT_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ObjectRef:
    """One S3 object named by a notification."""

    bucket: str
    key: str
    version_id: str | None = None
    size: int | None = None
    etag: str | None = None
    event_name: str = "ObjectCreated:Put"


class ObjectReader(RangeReader, Protocol):
    def read_document(self, bucket: str, key: str, version_id: str | None, limit: int) -> StoredDocument:
        """The whole object (the given version, else the current one); Rejected if larger than ``limit``."""

    def current_version(self, bucket: str, key: str) -> str | None:
        """The object's current version id."""


class IngestStore(Protocol):
    def record_frames(self, frames: list[Frame], now: dt.datetime): ...
    def record_manifest(self, manifest: TransferManifest, key: str, version_id: str | None, now: dt.datetime):
        """(each OP's state and candidates, the OPs whose expected count it changed: (old, new))"""
    def record_candidate(self, candidate: ProcessingCandidate, key: str, version_id: str | None, now: dt.datetime):
        """A CandidateOutcome: new, or what a differing re-upload changed (not recorded)."""
    def record_op_event(self, op_id: str, kind: str, detail: str, now: dt.datetime, late_frames: int = 0) -> None: ...
    def record_candidate_event(self, candidate_id: str, kind: str, detail: str, now: dt.datetime) -> None: ...
    def record_proposal(self, proposal: ProposalDocument, key: str, version_id: str | None, modified_at: dt.datetime,
                        now: dt.datetime) -> list[str] | None:
        """Record the document if none newer (by ``modified_at``) is in force: what it changed ([] for a first or
        the same again); None if a newer one is in force (this one is ignored)."""
    def candidate(self, candidate_id: str): ...
    def op_states(self, op_ids: list[str]) -> dict[str, OpState]: ...
    def mark_ready(self, candidate_id: str, reason: str, detail: dict, now: dt.datetime) -> bool: ...
    def quarantine(self, bucket, key, version_id, size, etag, code, reason, now) -> bool:
        """True if this object version was not quarantined before."""


REPLAN = ("what was processed may lack frames or hold more than expected; once the frames are in, reprocess "
          "(`obsflow reprocess plan --datasets ...`), or leave it")


def repeated_file_id(frame: Frame, recorded) -> tuple[str, str] | None:
    """A frame whose file id was received before: None for a redelivery (the same object, or the same bytes
    again); else a quarantine code and reason. The first object received stays the one counted and processed."""
    where = f"s3://{recorded.bucket}/{recorded.key}"
    if (recorded.bucket, recorded.key) != (frame.bucket, frame.key):
        return "duplicate-file-id", (f"file id {frame.file_id} (ID___002) was received before as {where}, which is "
                                     "counted and processed; if this is another frame, give it its own file id")
    # The bytes decide (S3 notifications carry the ETag): the same bytes again, as a new version or not, are no
    # conflict. Without ETags, the same version is a redelivery.
    if frame.etag and recorded.etag:
        if frame.etag == recorded.etag:
            return None
    elif frame.version_id == recorded.version_id:
        return None
    return "key-overwritten", (f"{where} was overwritten by another frame of file id {frame.file_id}; the version "
                               f"received first ({recorded.version_id}) stays the one counted and processed: to "
                               "process this one, reprocess with `obsflow reprocess plan --frame "
                               f"{frame.file_id}` after restoring it as the current version, or leave it")


@dataclass
class BatchReport:
    counted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    documents: int = 0
    ignored: int = 0
    ready: list[str] = field(default_factory=list)


def object_refs(body: str) -> list[ObjectRef]:
    """The objects an SQS message body (an S3 event notification) names; [] for s3:TestEvent."""
    try:
        payload = json.loads(body)
    except json.JSONDecodeError as exc:
        raise Rejected("malformed-notification", f"SQS message is not JSON: {exc}") from exc
    if payload.get("Event") == "s3:TestEvent":
        return []
    refs = []
    for record in payload.get("Records", []):
        s3 = record["s3"]
        refs.append(
            ObjectRef(
                bucket=s3["bucket"]["name"],
                key=unquote_plus(s3["object"]["key"]),
                version_id=s3["object"].get("versionId") or None,
                size=s3["object"].get("size"),
                etag=s3["object"].get("eTag"),
                event_name=record.get("eventName", ""),
            )
        )
    return refs


# Errors an object's content can raise in the parsers (never a transient AWS failure: those are TransientError).
CONTENT_ERRORS = (ValueError, KeyError, IndexError, TypeError, ArithmeticError, UnicodeError)


COMPRESSED_CONTAINERS = (".gz", ".fz", ".bz2", ".xz", ".zip", ".zst")


class IngestService:
    def __init__(
        self,
        reader: ObjectReader,
        store: IngestStore,
        settings: Settings,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc),
    ):
        self.reader, self.store, self.settings, self.clock = reader, store, settings, clock

    # -- one object ---------------------------------------------------------
    def stage(self, ref: ObjectRef, report: BatchReport) -> Frame | None:
        """Accept a document now, return a frame for the batch commit, quarantine the rest.

        Transient failures (S3 or DynamoDB unavailable) propagate so the message is retried.
        """
        if not ref.event_name.startswith("ObjectCreated"):
            report.ignored += 1
            logger.info("ignoring non-creation event", extra={"key": ref.key, "event": ref.event_name})
            return None
        try:
            try:
                return self._accept(ref, report)
            except CONTENT_ERRORS as exc:  # a parser or a library tripped on this object's content: its alone
                raise Rejected("unparseable", f"obsflow could not read this object ({type(exc).__name__}: "
                                              f"{str(exc)[:300]}); check the writer, re-transfer it") from exc
        except Rejected as rejection:
            # Real S3 notifications carry the version; where one does not (moto), ask S3.
            version_id = ref.version_id or self.reader.current_version(ref.bucket, ref.key)
            self.store.quarantine(
                ref.bucket, ref.key, version_id, ref.size, ref.etag, rejection.code, rejection.reason, self.clock()
            )
            report.quarantined += 1
            logger.warning(
                "quarantined", extra={"key": ref.key, "version_id": version_id, "code": rejection.code, "reason": rejection.reason}
            )
            return None

    @staticmethod
    def _is_frame(ref: ObjectRef) -> bool:
        parts = ref.key.split("/")
        return parts[0] == "raw" and len(parts) >= 3 and ref.key.lower().endswith(".fits") and bool(parts[1])

    def prefetch(self, refs: list[ObjectRef]) -> None:
        """Start reading the headers of the batch's frames together, where the reader can."""
        if hasattr(self.reader, "prefetch"):
            frames = [(r.bucket, r.key, r.version_id) for r in refs if r.event_name.startswith("ObjectCreated") and self._is_frame(r)]
            self.reader.prefetch(frames, self.settings.header_read_bytes)

    def _accept(self, ref: ObjectRef, report: BatchReport) -> Frame | None:
        parts = ref.key.split("/")
        prefix = parts[0]
        if self._is_frame(ref):
            header, size, read, version_id = read_header_values(
                self.reader,
                ref.bucket,
                ref.key,
                ref.version_id,
                first_read=self.settings.header_read_bytes,
                max_header=self.settings.header_max_bytes,
            )
            return frame_from_header(
                header,
                op_in_key=parts[1],
                bucket=ref.bucket,
                key=ref.key,
                version_id=ref.version_id or version_id,
                etag=ref.etag,
                size=size,
                header_bytes=read,
            )
        if prefix in ("manifests", "candidates", "proposals") and len(parts) == 2 and ref.key.endswith(".json"):
            stored = self.reader.read_document(ref.bucket, ref.key, ref.version_id, MAX_DOCUMENT_BYTES)
            if prefix == "manifests":
                self._accept_manifest(parse_document(TransferManifest, stored.body, ref.key, "manifest_id"), ref, report)
            elif prefix == "candidates":
                self._accept_candidate(parse_document(ProcessingCandidate, stored.body, ref.key, "candidate_id"), ref,
                                       stored, report)
            else:
                self._accept_proposal(parse_document(ProposalDocument, stored.body, ref.key, "proposal_id"), ref,
                                      stored)
            report.documents += 1
            return None
        if prefix == "raw" and ref.key.lower().endswith(COMPRESSED_CONTAINERS):
            raise Rejected("compressed-container", f"a compressed file ({ref.key.rsplit('.', 1)[-1]}): its header "
                                                   "cannot be read without fetching all of it; send the frame as "
                                                   ".fits, uncompressed or tile-compressed in a CompImageHDU as "
                                                   "DKIST stores frames")
        raise Rejected(
            "unknown-prefix",
            "unexpected key: obsflow accepts raw/<op_id>/<name>.fits, manifests/<manifest_id>.json, "
            "candidates/<candidate_id>.json and proposals/<proposal_id>.json",
        )

    def _accept_manifest(self, manifest: TransferManifest, ref: ObjectRef, report: BatchReport) -> None:
        states, changes = self.store.record_manifest(manifest, ref.key, ref.version_id, self.clock())
        for op_id, (old, new) in sorted(changes.items()):  # the OP has its event; its released candidates too
            for candidate_id in self._released(states[op_id][1]):
                self.store.record_candidate_event(
                    candidate_id, "expected-changed",
                    f"manifest {manifest.manifest_id} changed OP {op_id}'s expected frames from {old} to {new} after "
                    f"the candidate was released: {REPLAN}", self.clock())
        for op_id, (state, candidate_ids) in sorted(states.items()):
            if state.complete:
                self._evaluate_all(candidate_ids, report)

    def _accept_candidate(self, candidate: ProcessingCandidate, ref: ObjectRef, stored: StoredDocument,
                          report: BatchReport) -> None:
        outcome = self.store.record_candidate(candidate, ref.key, ref.version_id, self.clock())
        if outcome.differences:
            what = ", ".join(outcome.differences)
            version_id = ref.version_id or stored.version_id
            reason = (f"candidate {candidate.candidate_id} was received before with another {what}; the first "
                      "version stays the one processed. To process this one, upload it under a new candidate id")
            report.quarantined += 1
            if self.store.quarantine(ref.bucket, ref.key, version_id, ref.size, ref.etag, "candidate-conflict",
                                     reason, self.clock()):  # a redelivery records nothing twice
                self.store.record_candidate_event(
                    candidate.candidate_id, "document-conflict",
                    f"{ref.key} (version {version_id}) came again with another {what}: kept in quarantine, the first "
                    "version stays the one processed", self.clock())
            return
        self._evaluate_all({candidate.candidate_id}, report)

    def _accept_proposal(self, proposal: ProposalDocument, ref: ObjectRef, stored: StoredDocument) -> None:
        """The document written last to S3 is in force, whatever order its notifications come in."""
        changes = self.store.record_proposal(proposal, ref.key, stored.version_id, stored.modified_at, self.clock())
        if changes is None:
            logger.info("older proposal document ignored: a newer one is in force",
                        extra={"key": ref.key, "version_id": stored.version_id,
                               "modified_at": stored.modified_at.isoformat()})
        elif changes:
            logger.info("proposal revised", extra={"proposal_id": proposal.proposal_id, "changes": changes})

    def _released(self, candidate_ids: set[str]) -> list[str]:
        """The candidates past WAITING: what they were processed with is settled."""
        return [cid for cid in sorted(candidate_ids)
                if (candidate := self.store.candidate(cid)) is not None and candidate.status != WAITING]

    # -- the batch ----------------------------------------------------------
    def commit_frames(self, frames: list[Frame], report: BatchReport) -> None:
        """Count the batch's frames exactly once and re-evaluate candidates of OPs they completed."""
        if not frames:
            return
        outcome = self.store.record_frames(frames, self.clock())
        report.counted += len(outcome.counted)
        report.duplicates += len(outcome.duplicates)
        for frame, recorded in outcome.repeated:
            conflict = repeated_file_id(frame, recorded)
            if conflict is not None:  # not a redelivery: kept in quarantine, its OP and candidates told once
                code, reason = conflict
                report.duplicates -= 1
                report.quarantined += 1
                logger.warning("quarantined", extra={"key": frame.key, "code": code, "reason": reason})
                if not self.store.quarantine(frame.bucket, frame.key, frame.version_id, frame.size, frame.etag, code,
                                             reason, self.clock()):
                    continue
                self.store.record_op_event(frame.op_id, code, reason, self.clock())
                for candidate_id in sorted(outcome.ops.get(frame.op_id, (None, None, set()))[2]):
                    self.store.record_candidate_event(candidate_id, code, f"OP {frame.op_id}: {reason}", self.clock())
        for op_id, (before, after, candidate_ids) in sorted(outcome.ops.items()):
            self._late_frames(op_id, before, after, candidate_ids)
            # Re-evaluate on completion, and whenever a complete OP sees a re-delivery:
            # an earlier delivery may have stopped between counting and evaluating.
            if completed_by_change(before, after) or (after.complete and before == after):
                self._evaluate_all(candidate_ids, report)

    def _late_frames(self, op_id: str, before: OpState | None, after: OpState, candidate_ids: set[str]) -> None:
        """Frames counted into an OP that was complete already: its released candidates were processed without
        them. (An OP released incomplete by the backstop has its ticket saying to reprocess when frames come.)"""
        added = after.received - (before.received if before else 0)
        if not (added > 0 and before is not None and before.complete):
            return
        released = self._released(candidate_ids)
        if released:
            detail = (f"{added} frame(s) arrived after candidate(s) {', '.join(released)} were released, beyond the "
                      f"{before.expected} expected: {REPLAN}")
            self.store.record_op_event(op_id, "late-frames", detail, self.clock(), late_frames=added)
            for candidate_id in released:
                self.store.record_candidate_event(candidate_id, "late-frames", f"OP {op_id}: {detail}", self.clock())

    # -- readiness ------------------------------------------------------------
    def _evaluate_all(self, candidate_ids: set[str], report: BatchReport) -> None:
        for candidate_id in sorted(candidate_ids):
            if self.evaluate(candidate_id):
                report.ready.append(candidate_id)

    def evaluate(self, candidate_id: str) -> bool:
        """Make the candidate READY if all its OPs are complete; True only for the call that did."""
        candidate = self.store.candidate(candidate_id)
        if candidate is None or candidate.status != WAITING:
            return False
        states = self.store.op_states(candidate.op_ids)
        if missing(candidate.op_ids, states):
            return False
        detail = {op_id: {"expected": states[op_id].expected, "received": states[op_id].received} for op_id in candidate.op_ids}
        became_ready = self.store.mark_ready(candidate_id, "complete", detail, self.clock())
        if became_ready:
            logger.info("candidate ready", extra={"candidate_id": candidate_id, "ops": detail})
        return became_ready
