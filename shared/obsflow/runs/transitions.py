"""The state machines of the runs layer, as tables: every move of a run, a candidate, a campaign and a master
calibration's certification, what makes it,
and from which statuses it is allowed. Runs and campaigns move only by a named move of their table
(Part.move_run, CampaignService._move); a candidate's moves are its store's conditional updates
(mark_candidate_ready, mark_candidate_planned, hold_candidate), listed here; a certification moves only by
Certification._move (obsflow.runs.certification). Every move is conditional on the
status it comes from, so a re-delivered event moves nothing twice.

Recipe instances have no moves of their own: their state is derived from their runs (domain.derive_instance_state).
"""

from __future__ import annotations

from dataclasses import dataclass

from obsflow.statuses import (
    ACCEPTED,
    AWAITING_APPROVAL,
    CAMPAIGN_PAUSED,
    CAMPAIGN_REJECTED,
    CAMPAIGN_RUNNING,
    CAMPAIGN_STATUSES,
    CANCELLED,
    CANDIDATE_STATUSES,
    CERTIFICATION_REJECTED,
    CERTIFICATION_STATUSES,
    CERTIFIED,
    COMPLETED,
    DRAFT,
    FAILED,
    HELD,
    MANUAL,
    PLANNED,
    READY,
    RUN_CANCELLED,
    RUN_STATUSES,
    RUNNING,
    SKIPPED,
    SUBMITTED,
    SUCCEEDED,
    UNCERTIFIED,
    WAITING,
)


@dataclass(frozen=True)
class Move:
    sources: tuple[str, ...]
    to: str
    by: str  # what makes it


RUN_MOVES = {
    "submit": Move((READY,), SUBMITTED, "the submitter, taking the run's slots in one transaction (tables.capacity)"),
    "unlaunch": Move((SUBMITTED,), READY, "the submitter, when the execution could not be started (slots given back)"),
    "start": Move((SUBMITTED,), RUNNING, "StartRun, the state machine's first step"),
    "finish": Move((RUNNING,), SUCCEEDED, "FinishRun, after Catalog (slots given back; its cost recorded)"),
    "fail": Move((SUBMITTED, RUNNING), FAILED, "FailRun, after a task failed and its ticket was opened"),
    "redrive": Move((FAILED,), READY, "`obsflow runs redrive`, for a failure of infrastructure; or FailRun itself, "
                                      "the first settings.auto_redrives times (its ticket resolved saying so)"),
    "hold": Move((READY,), MANUAL, "the submitter, for a manual-by-definition recipe (with a ticket)"),
    "execute": Move((MANUAL, FAILED), RUNNING, "`obsflow runs execute --manual`, on an operator's machine"),
    "prioritize": Move((READY,), READY, "`obsflow runs prioritize RUN N --reason`: its place in the queue changes"),
    "cancel": Move((READY, MANUAL, SUBMITTED, RUNNING, SKIPPED), RUN_CANCELLED,
                   "`obsflow runs cancel --reason`: its execution and Batch jobs are stopped, nothing is catalogued"),
    "withdraw": Move((READY, MANUAL), RUN_CANCELLED, "`obsflow campaigns cancel`, for its runs not yet started"),
    "skip": Move((READY,), SKIPPED, "`obsflow resume --skip-backlog --reason`, for a queued run of no campaign "
                                   "(one ticket lists them)"),
    "requeue": Move((SKIPPED,), READY, "`obsflow runs requeue --reason`: it waits its turn again"),
}

CANDIDATE_MOVES = {
    "ready": Move((WAITING,), READY, "ingest, once every OP is complete; or the backstop, days after its first frame"),
    "plan": Move((READY,), PLANNED, "the submitter, once its recipe instances exist"),
    "hold": Move((READY,), HELD, "the submitter, when nothing can be planned for it (with a reason; some with a "
                                 "ticket)"),
}

CAMPAIGN_MOVES = {
    "start": Move((DRAFT,), CAMPAIGN_RUNNING, "`obsflow campaigns start` (or `reprocess start`), its instances inserted"),
    "await_approval": Move((DRAFT, CAMPAIGN_RUNNING), AWAITING_APPROVAL,
                           "`obsflow campaigns start` (or a recurring campaign's occurrence, until one is approved), "
                           "for a campaign estimated above the stage's approval size (campaign_approval_cpu_hours, "
                           "campaign_approval_output_bytes): its instances are inserted and the submitter holds their "
                           "runs, saying why"),
    "approve": Move((AWAITING_APPROVAL,), CAMPAIGN_RUNNING,
                    "`obsflow campaigns approve --reason` by the data-quality or operator role (who and when kept)"),
    "pause": Move((CAMPAIGN_RUNNING,), CAMPAIGN_PAUSED, "`obsflow campaigns pause`, or itself after too many failures"),
    "resume": Move((CAMPAIGN_PAUSED,), CAMPAIGN_RUNNING, "`obsflow campaigns resume`"),
    "complete": Move((CAMPAIGN_RUNNING,), COMPLETED, "the run lifecycle, when the last of its instances has ended"),
    "accept": Move((COMPLETED,), ACCEPTED, "`obsflow campaigns accept --reason`: data quality keeps what it made"),
    "reject": Move((COMPLETED,), CAMPAIGN_REJECTED, "`obsflow campaigns reject --reason`: data quality does not"),
    "cancel": Move((DRAFT, AWAITING_APPROVAL, CAMPAIGN_RUNNING, CAMPAIGN_PAUSED), CANCELLED,
                   "`obsflow campaigns cancel` (its unstarted runs are cancelled)"),
}

CERTIFICATION_MOVES = {
    "pass_gates": Move((UNCERTIFIED,), CERTIFIED, "cataloguing, when every QC gate of its recipe passed (each gate, "
                                                  "value and result recorded)"),
    "certify": Move((UNCERTIFIED, CERTIFICATION_REJECTED), CERTIFIED,
                    "`obsflow calibrations certify DATASET --reason` by data quality (who, when, why kept): the science "
                    "waiting for it is planned at the next submitter pass"),
    "reject": Move((UNCERTIFIED, CERTIFIED), CERTIFICATION_REJECTED,
                   "`obsflow calibrations reject DATASET --reason` by data quality: science not yet planned on it "
                   "waits, with a ticket"),
}

MACHINES = {"run": (RUN_MOVES, RUN_STATUSES), "candidate": (CANDIDATE_MOVES, CANDIDATE_STATUSES),
            "campaign": (CAMPAIGN_MOVES, CAMPAIGN_STATUSES),
            "certification": (CERTIFICATION_MOVES, CERTIFICATION_STATUSES)}


def markdown(entity: str) -> str:
    """The entity's state machine as the README's table: each status, the moves into it and the moves out."""
    moves, statuses = MACHINES[entity]
    rows = [f"| {entity} status | moved in by | moves out |", "| --- | --- | --- |"]
    for status in statuses:
        into = [f"`{name}` from {' or '.join(m.sources)}: {m.by}" for name, m in moves.items() if m.to == status]
        out = [f"`{name}` -> {m.to}" for name, m in moves.items() if status in m.sources]
        rows.append(f"| {status} | {'; '.join(into) or 'created so'} | {', '.join(out) or 'final'} |")
    return "\n".join(rows)


def document(entity: str) -> list[str]:
    """The entity's state machine, node by node: for each status, the moves into it and out of it."""
    moves, statuses = MACHINES[entity]
    lines = []
    for status in statuses:
        into = [f"{name} (from {' | '.join(m.sources)}): {m.by}" for name, m in moves.items() if m.to == status]
        out = [f"{name} -> {m.to}" for name, m in moves.items() if status in m.sources]
        lines.append(f"{status}: in by {'; '.join(into) or 'creation'}; out by {', '.join(out) or 'nothing (final)'}")
    return lines
