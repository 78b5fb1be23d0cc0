"""The ingest path's DynamoDB writes: exact counts through conditional transactions.

Per batch of frames: one consistent BatchGetItem of their OPs and one
TransactWriteItems that puts each new frame (only if its file id is new) and adds
to its OP's count. A frame is counted exactly once, however its notification is
delivered: a duplicate cancels the transaction, is dropped, and the rest is retried.

An OP's count decides two things: the batch that completes it re-evaluates its
candidates, and frames counted into a complete OP are late. Where the batch
cannot complete the OP (no expected count yet, or the count stays below it),
the add is conditioned on exactly that, so concurrent batches of one OP do not
cancel each other; only near completion is it conditioned on the OP being as it
was read, so that the counts before and after are exact there.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections import Counter
from dataclasses import dataclass, field

from pynamodb.connection import Connection
from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from obsflow.aws import AWS_ERRORS, transient
from obsflow.errors import TransientError
from obsflow.settings import Settings
from obsflow.ingest.documents import ProcessingCandidate, ProposalDocument, TransferManifest
from obsflow.ingest.frames import Frame
from obsflow.ingest.readiness import OpState
from obsflow.tables import candidates as candidates_table
from obsflow.tables import conflicts, observing_programs, proposals
from obsflow.tables.base import CONDITION_FAILED, LISTED, changes_to_actions, save_if_new, update_if
from obsflow.tables.candidates import WAITING, CandidateItem
from obsflow.tables.frames import FrameItem
from obsflow.tables.manifests import ManifestItem
from obsflow.tables.observing_programs import ObservingProgramItem as Op
from obsflow.tables.proposals import ProposalItem
from obsflow.tables.quarantine import NO_VERSION, QuarantineItem

MAX_TRANSACTION_ATTEMPTS = 8
RETRY_PAUSE_S = 0.02  # times 2**attempt at most, at random: concurrent batches of one OP fall apart
# What a re-uploaded candidate may not change: the first version is the one processed.
CANDIDATE_FIELDS = ("proposal_id", "instrument", "observe_op", "calibration_ops", "recipe", "priority")


@dataclass(frozen=True)
class RecordedFrame:
    """Where a file id was first received."""

    bucket: str
    key: str
    version_id: str | None
    etag: str | None

    @classmethod
    def of(cls, frame) -> "RecordedFrame":
        return cls(frame.bucket, frame.key, frame.version_id, frame.etag)


def op_state(item: Op) -> OpState:
    return OpState(item.expected, int(item.received or 0))


@dataclass
class FramesOutcome:
    counted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    # OP id -> (state before, state after, candidate ids) for every OP the batch touched
    ops: dict[str, tuple[OpState | None, OpState, set[str]]] = field(default_factory=dict)
    # each frame not counted because its file id was: (the frame, where that file id was recorded)
    repeated: list[tuple[Frame, RecordedFrame]] = field(default_factory=list)


@dataclass(frozen=True)
class CandidateOutcome:
    new: bool
    differences: list[str] = field(default_factory=list)  # what a re-upload changed: ignored, the first wins


class DynamoIngestStore:
    """IngestStore on DynamoDB through the pynamodb models."""

    def __init__(self, settings: Settings):
        self._connection = Connection(region=settings.region, host=settings.endpoint_url)

    # -- frames -------------------------------------------------------------
    def record_frames(self, frames: list[Frame], now: dt.datetime) -> FramesOutcome:
        outcome = FramesOutcome()
        unique: dict[str, Frame] = {}
        for frame in frames:
            if frame.file_id in unique:
                outcome.duplicates.append(frame.file_id)
                outcome.repeated.append((frame, RecordedFrame.of(unique[frame.file_id])))
            unique.setdefault(frame.file_id, frame)
        pending = list(unique.values())
        duplicate_ops: set[str] = set()
        attempts = 0
        while pending:
            if attempts == MAX_TRANSACTION_ATTEMPTS:
                raise TransientError(
                    f"could not record {len(pending)} frame(s) after {MAX_TRANSACTION_ATTEMPTS} attempts: their OPs "
                    "keep changing; the batch will be retried")
            if attempts:
                time.sleep(random.uniform(0, RETRY_PAUSE_S * 2 ** attempts))
            attempts += 1
            with transient("could not read the batch's OPs"):
                seen = observing_programs.get_many(frame.op_id for frame in pending)
            try:
                self._commit(pending, seen, now)
            except TransactWriteError as exc:
                reasons = exc.cancellation_reasons or []
                if not reasons:
                    raise TransientError(f"frame transaction failed: {exc}") from exc
                dropped = {
                    pending[i].file_id
                    for i, reason in enumerate(reasons[: len(pending)])
                    if reason is not None and reason.code == "ConditionalCheckFailed"
                }
                outcome.duplicates.extend(sorted(dropped))
                duplicate_ops.update(frame.op_id for frame in pending if frame.file_id in dropped)
                with transient("could not read the recorded frames"):
                    recorded = {item.file_id: item for item in FrameItem.batch_get(sorted(dropped), consistent_read=True)}
                outcome.repeated.extend((frame, RecordedFrame.of(recorded[frame.file_id])) for frame in pending
                                        if frame.file_id in dropped and frame.file_id in recorded)
                pending = [frame for frame in pending if frame.file_id not in dropped]
                continue
            except AWS_ERRORS as exc:
                raise TransientError(f"frame transaction failed: {exc}") from exc
            counts = Counter(frame.op_id for frame in pending)
            for op_id, added in counts.items():
                before = op_state(seen[op_id]) if op_id in seen else None
                after = OpState(before.expected if before else None, (before.received if before else 0) + added)
                outcome.ops[op_id] = (before, after, set(seen[op_id].candidate_ids or ()) if op_id in seen else set())
            outcome.counted.extend(frame.file_id for frame in pending)
            pending = []
        # OPs that only saw duplicates: report their current state, so a redelivery
        # after a crash still re-evaluates their candidates.
        only_duplicates = sorted(duplicate_ops - set(outcome.ops))
        if only_duplicates:
            with transient("could not read the batch's OPs"):
                current = observing_programs.get_many(only_duplicates)
            for op_id in only_duplicates:
                state = op_state(current[op_id]) if op_id in current else OpState(None, 0)
                ids = set(current[op_id].candidate_ids or ()) if op_id in current else set()
                outcome.ops[op_id] = (state, state, ids)
        return outcome

    def _commit(self, frames: list[Frame], seen: dict[str, Op], now: dt.datetime) -> None:
        with TransactWrite(connection=self._connection) as transaction:
            for frame in frames:
                transaction.save(FrameItem(**frame.as_dict(), received_at=now), condition=FrameItem.file_id.does_not_exist())
            for op_id, added in Counter(frame.op_id for frame in frames).items():
                first = next(frame for frame in frames if frame.op_id == op_id)
                current = seen.get(op_id)
                actions = [Op.received.add(added), Op.rev.add(1)]
                # The OP's description comes from its first frame; once set (seen at this rev), leave it be.
                if current is None or None in (current.first_frame_at, current.instrument, current.proposal_id,
                                               current.task_type):
                    actions += [
                        Op.first_frame_at.set(Op.first_frame_at | now),
                        Op.instrument.set(Op.instrument | first.instrument),
                        Op.proposal_id.set(Op.proposal_id | first.proposal_id),
                        Op.task_type.set(Op.task_type | first.task_type),
                        Op.listing.set(LISTED),
                    ]
                transaction.update(Op(op_id), actions=actions, condition=self._count_condition(current, added))

    @staticmethod
    def _count_condition(current: Op | None, added: int):
        """What must hold for the batch's counts before and after to be the decisions made from what was read."""
        if current is None:
            return Op.op_id.does_not_exist()
        if current.expected is None:  # cannot complete: an expected count comes with a manifest
            return Op.expected.does_not_exist() | (Op.rev == current.rev)
        if int(current.received or 0) + added < current.expected:  # stays below, whatever others added meanwhile
            return ((Op.expected == current.expected) & (Op.received < current.expected - added)) | (
                Op.rev == current.rev)
        return Op.rev == current.rev

    # -- manifests and candidates -------------------------------------------
    def record_manifest(
        self, manifest: TransferManifest, key: str, version_id: str | None, now: dt.datetime
    ) -> tuple[dict[str, tuple[OpState, set[str]]], dict[str, tuple[int, int]]]:
        """Record the manifest and each OP's expectation: each OP's new state and candidates, and the OPs whose
        expected count it changed (old, new), each with an ``expected-changed`` event in the same update."""
        with transient(f"could not record manifest {manifest.manifest_id}"):
            ManifestItem(
                manifest.manifest_id,
                key=key,
                version_id=version_id,
                document=manifest.model_dump(),
                received_at=now,
            ).save()
            states, changes = {}, {}
            for expectation in manifest.observing_programs:
                op, old = self._expect(expectation.op_id, expectation.expected_frames, manifest.manifest_id, key, now)
                states[op.op_id] = (op_state(op), set(op.candidate_ids or ()))
                if old is not None:
                    changes[op.op_id] = (old, expectation.expected_frames)
            return states, changes

    def _expect(self, op_id: str, expected: int, manifest_id: str, key: str, now: dt.datetime) -> tuple[Op, int | None]:
        """Set the OP's expected count (the latest manifest wins); the count it replaced, if it was another."""
        actions = (Op.expected.set(expected), Op.manifest_ids.add({manifest_id}), Op.rev.add(1))
        for _attempt in range(MAX_TRANSACTION_ATTEMPTS):
            op = Op(op_id)
            if update_if(op, list(actions), Op.expected.does_not_exist() | (Op.expected == expected)):
                return op, None
            old = observing_programs.get_many([op_id])[op_id].expected
            detail = f"manifest {manifest_id} ({key}) changed the expected frames from {old} to {expected}"
            try:
                conflicts.append(op, "expected-changed", detail, now, actions, condition=Op.expected == old)
                return op, old
            except UpdateError as exc:
                if exc.cause_response_code != CONDITION_FAILED:
                    raise  # else another manifest changed it meanwhile: read it again
        raise TransientError(f"could not set the expected frames of OP {op_id}: it keeps changing")

    def record_candidate(
        self, candidate: ProcessingCandidate, key: str, version_id: str | None, now: dt.datetime
    ) -> CandidateOutcome:
        """Record the candidate (first arrival wins) and its membership in each OP. A re-upload that differs is
        not recorded, and adds no membership: what differs is returned."""
        item = CandidateItem(
            candidate.candidate_id,
            proposal_id=candidate.proposal_id,
            instrument=candidate.instrument,
            observe_op=candidate.observe_op,
            calibration_ops=candidate.calibration_ops,
            recipe=candidate.recipe,
            priority=candidate.priority,
            key=key,
            version_id=version_id,
            status=WAITING,
            created_at=now,
        )
        with transient(f"could not record candidate {candidate.candidate_id}"):
            new = save_if_new(item)
            if not new:
                recorded = candidates_table.get(candidate.candidate_id)
                differences = [name for name in CANDIDATE_FIELDS if getattr(recorded, name) != getattr(item, name)]
                if differences:
                    return CandidateOutcome(False, differences)
            # Membership is written before readiness is evaluated, so a frame that
            # completes an OP afterwards finds this candidate on the OP.
            for op_id in candidate.op_ids:
                Op(op_id).update(actions=[Op.candidate_ids.add({candidate.candidate_id}), Op.rev.add(1)])
            return CandidateOutcome(new)

    def record_op_event(self, op_id: str, kind: str, detail: str, now: dt.datetime, late_frames: int = 0) -> None:
        with transient(f"could not record an event of OP {op_id}"):
            conflicts.append(Op(op_id), kind, detail, now, (Op.late_frames.add(late_frames),) if late_frames else ())

    def record_candidate_event(self, candidate_id: str, kind: str, detail: str, now: dt.datetime) -> None:
        """The event, and a review ticket owed (the submitter files it: tickets are the runs layer's)."""
        with transient(f"could not record an event of candidate {candidate_id}"):
            conflicts.append(CandidateItem(candidate_id), kind, detail, now,
                             (CandidateItem.review.set(candidates_table.PENDING),))

    def record_proposal(self, proposal: ProposalDocument, key: str, version_id: str | None,
                        modified_at: dt.datetime, now: dt.datetime) -> list[str] | None:
        """The proposal as this document says, if no document written later is in force: what it changed, each
        revision an event in the proposal's history ([] for a first document or the same again); None if a
        newer one is in force."""
        values = {"pi_name": proposal.pi.name, "pi_email": proposal.pi.email,
                  "release_date": proposal.release_date.isoformat() if proposal.release_date else None,
                  "embargo_days": proposal.embargo_days}
        where = {"key": key, "version_id": version_id, "modified_at": modified_at}
        for _attempt in range(MAX_TRANSACTION_ATTEMPTS):
            with transient(f"could not record proposal {proposal.proposal_id}"):
                current = proposals.get_item(proposal.proposal_id)
                if current is None:
                    if save_if_new(ProposalItem(proposal.proposal_id, **values, **where, received_at=now)):
                        return []
                    continue
                if modified_at < current.modified_at:
                    return None
                changes = [f"{name} from {getattr(current, name)} to {value}" for name, value in values.items()
                           if getattr(current, name) != value]
                if not changes:
                    return []
                try:
                    conflicts.append(ProposalItem(proposal.proposal_id), "revised",
                                     f"{key} (version {version_id}) changed {'; '.join(changes)}", now,
                                     tuple(changes_to_actions(ProposalItem, {**values, **where})),
                                     condition=ProposalItem.modified_at == current.modified_at)
                    return changes
                except UpdateError as exc:
                    if exc.cause_response_code != CONDITION_FAILED:
                        raise  # else another document was recorded meanwhile: read it again
        raise TransientError(f"could not record proposal {proposal.proposal_id}: it keeps changing")

    # -- readiness ------------------------------------------------------------
    def candidate(self, candidate_id: str) -> CandidateItem | None:
        with transient(f"could not read candidate {candidate_id}"):
            return candidates_table.get(candidate_id)

    def op_states(self, op_ids: list[str]) -> dict[str, OpState]:
        with transient(f"could not read OPs {', '.join(op_ids)}"):
            return {op_id: op_state(item) for op_id, item in observing_programs.get_many(op_ids).items()}

    def mark_ready(self, candidate_id: str, reason: str, detail: dict, now: dt.datetime) -> bool:
        """WAITING -> READY exactly once; False if another writer got there first."""
        with transient(f"could not mark candidate {candidate_id} ready"):
            return candidates_table.mark_ready(candidate_id, reason, detail, now)

    # -- quarantine -------------------------------------------------------------
    def quarantine(self, bucket, key, version_id, size, etag, code, reason, now) -> bool:
        """Keep the object's record (the first reason given for a version stays); True if it is new."""
        with transient(f"could not quarantine s3://{bucket}/{key}"):
            return save_if_new(QuarantineItem(
                f"{bucket}/{key}",
                version_id or NO_VERSION,
                bucket=bucket,
                key=key,
                code=code,
                reason=reason,
                size=size,
                etag=etag,
                quarantined_at=now,
            ))
