"""Tickets: one per cause, stored, published to the operators and posted to the service desk.

A failure's ticket is its attempt's: a re-delivered failure finds it, and a redriven attempt that fails of the
same cause is added to it (reopened) instead of opening a second one.
"""

from __future__ import annotations

from obsflow.errors import NotFound
from obsflow.observability import logger
from obsflow.runs.context import Part
from obsflow.runs.domain import OPEN, RESOLVED, RUN_CANCELLED, Run, Ticket
from obsflow.runs.failures import ACTIONS, describe_failure, with_failed_chunk


def failure_ticket_id(run: Run) -> str:
    """The ticket a failure of the run's current attempt opens (a redrive failing of another cause gets its own)."""
    return f"TKT-{run.run_id}-{run.attempt}"


class Tickets(Part):
    def file(self, ticket: Ticket) -> bool:
        """Store, publish and post the ticket; False (and nothing sent) if it was filed before."""
        if not self.store.create_ticket(ticket):
            return False
        self.notifier.notify_operators(ticket)
        try:
            desk = self.service_desk()
            if desk is not None:
                self.store.update_ticket(ticket.ticket_id, external_key=desk.create_request(ticket))
        except (OSError, ValueError, KeyError) as exc:  # URLError is an OSError
            # The ticket is stored and published; the service desk can be told later.
            self.store.update_ticket(ticket.ticket_id, external_error=f"{type(exc).__name__}: {exc}")
            logger.error("could not post the ticket to the service desk",
                         extra={"ticket_id": ticket.ticket_id, "error": str(exc)})
        logger.warning("ticket filed", extra={"ticket_id": ticket.ticket_id, "kind": ticket.kind})
        return True

    def open_for_failure(self, run_id: str, error: dict, execution_arn: str | None) -> dict:
        """One ticket per cause: a re-delivered failure maps to its attempt's ticket, and a redriven attempt that
        fails of the same cause (task, error, exit code) as the attempt before is added to that ticket, which is
        reopened, instead of opening a second one."""
        run = self.require_run(run_id)
        if run.status == RUN_CANCELLED:  # an execution stopped by a cancel fails on its way out: no ticket
            return {"ticket_id": None, "created": False}
        current = self.of_attempt(run_id, run.attempt)
        if current is not None:
            return {"ticket_id": current.ticket_id, "created": False}
        facts = describe_failure(error)
        if facts.get("array_job_id"):
            facts = with_failed_chunk(facts, self.executions.failed_chunk(facts["array_job_id"]))
        earlier = self.of_attempt(run_id, run.attempt - 1)
        cause = (facts["failed_task"], facts["error_type"], facts["error_message"], facts["exit_code"])
        if earlier is not None and (earlier.failed_task, earlier.error_type, earlier.error_message,
                                    earlier.exit_code) == cause:
            attempts = [*(earlier.attempts or [run.attempt - 1]), run.attempt]
            self.store.update_ticket(earlier.ticket_id, attempts=attempts, status=OPEN, resolved_at=None,
                                     resolution=None, resolved_by=None)
            logger.warning("the same failure again: no second ticket",
                           extra={"ticket_id": earlier.ticket_id, "run_id": run_id, "attempts": attempts})
            return {"ticket_id": earlier.ticket_id, "created": False}
        ticket_id = failure_ticket_id(run)
        ticket = Ticket(
            ticket_id, kind=f"failure:{facts['kind']}", created_at=self.clock(),
            summary=f"run {run_id} ({run.recipe_key}) failed"
            + (f" in task {facts['failed_task']}" if facts["failed_task"] else "") + f": {facts['error_type']}",
            run_id=run_id, candidate_id=run.candidate_id, proposal_id=run.proposal_id, recipe=run.recipe_key,
            failed_task=facts["failed_task"], error_type=facts["error_type"], error_message=facts["error_message"],
            exit_code=facts["exit_code"], log_excerpt=self.executions.log_excerpt(facts["log_stream"]),
            links=self.executions.links(execution_arn, facts["log_stream"]),
            suggested_action=ACTIONS[facts["kind"]].format(run_id=run_id), attempts=[run.attempt],
        )
        return {"ticket_id": ticket_id, "created": self.file(ticket)}

    def of_attempt(self, run_id: str, attempt: int) -> Ticket | None:
        """The ticket of an attempt's failure: its own, or an earlier attempt's whose cause it repeated."""
        for earlier in range(attempt, 0, -1):
            ticket = self.store.ticket(f"TKT-{run_id}-{earlier}")
            if ticket is not None:
                return ticket if earlier == attempt or attempt in (ticket.attempts or ()) else None
        return None

    def resolve(self, ticket_id: str, note: str, operator: str) -> Ticket:
        if self.store.ticket(ticket_id) is None:
            raise NotFound(f"no ticket {ticket_id!r}; `obsflow tickets list` shows the open ones")
        self.store.update_ticket(ticket_id, status=RESOLVED, resolution=note, resolved_by=operator,
                                 resolved_at=self.clock())
        return self.store.ticket(ticket_id)
