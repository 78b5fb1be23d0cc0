"""The 13-day backstop: a candidate still incomplete long after its first frame is processed anyway.

It becomes READY with reason ``backstop`` and what was missing, and a ticket asks a
person to review the result. Only WAITING candidates are read (an index query).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from obsflow.ingest.readiness import missing
from obsflow.ingest.store import DynamoIngestStore, transient
from obsflow.observability import logger
from obsflow.runs.service_desk import file_ticket
from obsflow.settings import Settings
from obsflow.tables import candidates, observing_programs
from obsflow.tables.tickets import TicketItem


@dataclass
class BackstopReport:
    checked: int = 0
    released: list[str] = field(default_factory=list)


def first_frame_at(op_items: dict) -> dt.datetime | None:
    times = [op.first_frame_at for op in op_items.values() if op.first_frame_at is not None]
    return min(times) if times else None


def run_backstop(settings: Settings, now: dt.datetime) -> BackstopReport:
    report = BackstopReport()
    cutoff = now - dt.timedelta(days=settings.backstop_days)
    store = DynamoIngestStore(settings)
    for candidate in candidates.with_status(candidates.WAITING):
        report.checked += 1
        with transient(f"could not read the OPs of candidate {candidate.candidate_id}"):
            ops = observing_programs.get_many(candidate.op_ids)
        first = first_frame_at(ops)
        if first is None or first > cutoff:
            continue
        lacking = missing(candidate.op_ids, {op_id: op.state for op_id, op in ops.items()})
        detail = {"first_frame_at": first.isoformat(), "as_of": now.isoformat(), "missing": lacking}
        if store.mark_ready(candidate.candidate_id, "backstop", detail, now):
            report.released.append(candidate.candidate_id)
            open_review_ticket(settings, candidate, detail, now)
            logger.warning("candidate released by the backstop", extra={"candidate_id": candidate.candidate_id, **detail})
    return report


def open_review_ticket(settings: Settings, candidate, detail: dict, now: dt.datetime) -> None:
    lacking = "; ".join(f"{op}: {why}" for op, why in detail["missing"].items()) or "nothing"
    ticket = TicketItem(
        f"TKT-{candidate.candidate_id}-backstop",
        kind="backstop",
        summary=f"candidate {candidate.candidate_id} was processed by the {settings.backstop_days}-day backstop "
                f"while incomplete ({lacking})",
        candidate_id=candidate.candidate_id,
        proposal_id=candidate.proposal_id,
        suggested_action="review the dataset; if the missing frames arrive later, reprocess the candidate",
        created_at=now,
    )
    file_ticket(settings, ticket)
