"""The backstop: a candidate still incomplete days after its first frame is processed as it is, with a ticket."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from obsflow.ingest.readiness import OpState, missing
from obsflow.observability import logger
from obsflow.runs.context import Part
from obsflow.runs.domain import WAITING, Ticket
from obsflow.runs.ticketing import Tickets


@dataclass
class BackstopReport:
    checked: int = 0
    released: list[str] = field(default_factory=list)


class Backstop(Part):
    def __init__(self, ctx, tickets: Tickets):
        super().__init__(ctx)
        self.tickets = tickets

    def release_overdue(self, now: dt.datetime) -> BackstopReport:
        """Release candidates still incomplete ``backstop_days`` after their first frame, with a review ticket."""
        report = BackstopReport()
        cutoff = now - dt.timedelta(days=self.settings.backstop_days)
        for candidate in self.store.candidates_with_status(WAITING):
            report.checked += 1
            progress = self.store.op_progress(candidate.op_ids)
            times = [op.first_frame_at for op in progress.values() if op.first_frame_at is not None]
            if not times or min(times) > cutoff:
                continue
            states = {op_id: OpState(op.expected, op.received) for op_id, op in progress.items()}
            lacking = missing(candidate.op_ids, states)
            detail = {"first_frame_at": min(times).isoformat(), "as_of": now.isoformat(), "missing": lacking}
            if not self.store.mark_candidate_ready(candidate.candidate_id, "backstop", detail, now):
                continue
            report.released.append(candidate.candidate_id)
            logger.warning("candidate released by the backstop", extra={"candidate_id": candidate.candidate_id, **detail})
            what = "; ".join(f"{op}: {why}" for op, why in lacking.items()) or "nothing"
            self.tickets.file(Ticket(
                f"TKT-{candidate.candidate_id}-backstop", kind="backstop", created_at=now,
                summary=f"candidate {candidate.candidate_id} was processed by the {self.settings.backstop_days:g}-day "
                        f"backstop while incomplete ({what})",
                candidate_id=candidate.candidate_id, proposal_id=candidate.proposal_id,
                suggested_action="review the dataset; if the missing frames arrive later, reprocess the candidate",
            ))
        if report.released:
            self.notifier.nudge(f"backstop released {', '.join(report.released)}")
        return report
