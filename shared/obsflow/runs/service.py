"""The runs layer's face for the Lambda handlers, the CLI and campaigns: one part per state machine.

- planning (obsflow.runs.planning): candidates -> recipe instances -> runs;
- submission (obsflow.runs.submission): READY runs started within the slots;
- the run lifecycle (obsflow.runs.lifecycle): start, finish, fail; retry, redrive, manual execution;
- cataloguing (obsflow.runs.cataloguing): datasets and data-quality decisions;
- accounting (obsflow.runs.accounting): what each run used, and its cost;
- certification (obsflow.runs.certification): master calibrations certified by their QC gates or a person;
- tickets (obsflow.runs.ticketing) and the backstop (obsflow.runs.backstop).

Dependencies come in (a store and the platform's ports), so unit tests run on fakes. Every operation is
idempotent: ids derive from what they identify and every status change is conditional, so a re-delivered
event or a second submitter changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from obsflow.runs.accounting import Accounting
from obsflow.runs.backstop import Backstop, BackstopReport
from obsflow.runs.cataloguing import DECISIONS, Cataloguing
from obsflow.runs.certification import Certification
from obsflow.runs.context import ManualRunFailed, NotAllowed, Part, RunContext, SubmitReport
from obsflow.runs.domain import Candidate, Dataset, Instance, Run, Ticket, utcnow
from obsflow.runs.lifecycle import Lifecycle
from obsflow.runs.planning import ProposalMismatch, Planning
from obsflow.runs.ports import Documents, Executions, Notifier, RecipeBook, RunStore, ServiceDesk, SubmissionSwitch, TaskRunner
from obsflow.runs.submission import ACTIVE_SUBMISSION, PAUSED, Submission
from obsflow.runs.ticketing import Tickets, failure_ticket_id
from obsflow.settings import Settings

__all__ = ["ACTIVE_SUBMISSION", "BackstopReport", "DECISIONS", "ManualRunFailed", "NotAllowed", "PAUSED",
           "ProposalMismatch", "RunService", "SubmitReport", "failure_ticket_id"]


class RunService(Part):
    def __init__(
        self,
        store: RunStore,
        documents: Documents,
        executions: Executions,
        notifier: Notifier,
        switch: SubmissionSwitch,
        recipes: RecipeBook,
        settings: Settings,
        service_desk: Callable[[], ServiceDesk | None] = lambda: None,
        task_runner: TaskRunner | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        invocation_usage: Callable[[], dict | None] = lambda: None,
    ):
        super().__init__(RunContext(store, documents, executions, notifier, switch, recipes, settings, service_desk,
                                    task_runner, clock, invocation_usage))
        self.tickets = Tickets(self.ctx)
        self.planning = Planning(self.ctx, self.tickets)
        self.certification = Certification(self.ctx, self.tickets)
        self.cataloguing = Cataloguing(self.ctx, self.planning, self.tickets, self.certification)
        self.accounting = Accounting(self.ctx, self.cataloguing)
        self.lifecycle = Lifecycle(self.ctx, self.planning, self.cataloguing, self.tickets, self.accounting)
        self.submission = Submission(self.ctx, self.planning, self.tickets)
        self.backstops = Backstop(self.ctx, self.tickets)

    # -- planning
    def discover(self, candidate: Candidate) -> list[str]:
        return self.planning.discover(candidate)

    def plan_instance(self, instance: Instance) -> str | None:
        return self.planning.plan_instance(instance)

    def replan(self, instance_id: str) -> Instance:
        return self.planning.replan(instance_id)

    def mark_bad_frames(self, file_ids: list[str], by: str, reason: str) -> int:
        return self.planning.mark_bad_frames(file_ids, by, reason)

    def unmark_bad_frames(self, file_ids: list[str], by: str, reason: str) -> int:
        return self.planning.unmark_bad_frames(file_ids, by, reason)

    def refresh_instance(self, instance_id: str, waiting_for: str | None = None) -> str:
        return self.planning.refresh_instance(instance_id, waiting_for)

    def estimate(self, recipe, inputs: int) -> tuple[float, int]:
        return self.planning.estimate(recipe, inputs)

    # -- submission
    def submit(self) -> SubmitReport:
        return self.submission.submit()

    def nudge(self, reason: str) -> None:
        self.submission.nudge(reason)

    def pause(self, reason: str = "") -> None:
        self.submission.pause(reason)

    def resume(self, by: str = "", skip_backlog: str | None = None) -> list[str]:
        return self.submission.resume(by, skip_backlog)

    def requeue(self, run_ids: list[str] | None, by: str, reason: str) -> list[str]:
        return self.submission.requeue(run_ids, by, reason)

    # -- the run lifecycle
    def start_run(self, run_id: str, execution_arn: str) -> dict:
        return self.lifecycle.start_run(run_id, execution_arn)

    def finish_run(self, run_id: str) -> dict:
        return self.lifecycle.finish_run(run_id)

    def fail_run(self, run_id: str, error: dict) -> dict:
        return self.lifecycle.fail_run(run_id, error)

    def retry(self, run_id: str, overrides: dict[str, str]) -> Run:
        return self.lifecycle.retry(run_id, overrides)

    def redrive(self, run_id: str) -> Run:
        return self.lifecycle.redrive(run_id)

    def execute_manually(self, run_id: str, note: str, operator: str, echo: Callable[[str], None] = print) -> Run:
        return self.lifecycle.execute_manually(run_id, note, operator, echo)

    def cancel(self, run_id: str, by: str, reason: str) -> Run:
        return self.lifecycle.cancel(run_id, by, reason)

    def prioritize(self, run_id: str, priority: int, by: str, reason: str) -> Run:
        return self.lifecycle.prioritize(run_id, priority, by, reason)

    def inject_fault(self, run_id: str, task: str, kind: str, chunk: int | None = None) -> None:
        self.lifecycle.inject_fault(run_id, task, kind, chunk)

    def run_outputs(self, run_id: str) -> list[dict]:
        return self.lifecycle.run_outputs(run_id)

    def failure(self, run_id: str) -> dict | None:
        return self.lifecycle.failure(run_id)

    def finished_tasks(self, run_id: str) -> set[str]:
        return self.lifecycle.finished_tasks(run_id)

    # -- what runs used (runs.accounting)
    def record_usage(self, run_ids: list[str], entry: dict) -> None:
        self.accounting.record_usage(run_ids, entry)

    # -- cataloguing
    def catalog(self, run_id: str) -> dict:
        return self.cataloguing.catalog(run_id)

    def decide(self, dataset_id: str, action: str, reason: str, by: str, old_id: str | None = None) -> Dataset:
        return self.cataloguing.decide(dataset_id, action, reason, by, old_id)

    def reindex_qc(self) -> dict:
        return self.cataloguing.reindex_qc()

    # -- certification of master calibrations
    def certify(self, dataset_id: str, by: str, reason: str) -> Dataset:
        return self.certification.certify(dataset_id, by, reason)

    def reject_calibration(self, dataset_id: str, by: str, reason: str) -> Dataset:
        return self.certification.reject(dataset_id, by, reason)

    # -- tickets and the backstop
    def file_ticket(self, ticket: Ticket) -> bool:
        return self.tickets.file(ticket)

    def open_ticket_for_failure(self, run_id: str, error: dict, execution_arn: str | None) -> dict:
        return self.tickets.open_for_failure(run_id, error, execution_arn)

    def resolve_ticket(self, ticket_id: str, note: str, operator: str) -> Ticket:
        return self.tickets.resolve(ticket_id, note, operator)

    def backstop(self, now: dt.datetime) -> BackstopReport:
        return self.backstops.release_overdue(now)
