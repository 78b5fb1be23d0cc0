"""Submission: start READY runs by priority within the run slots, the campaigns' limits and the global switch.

Slots are taken in one transaction with the run's start, so two submitters never start one run twice or
overfill a resource class; a manual-by-definition recipe's run waits for an operator instead.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

from obsflow.errors import TransientError
from obsflow.observability import logger
from obsflow.recipes.model import RESOURCE_CLASSES
from obsflow.runs.context import NotAllowed, Part, SubmitReport
from obsflow.runs.domain import (
    CAMPAIGN_RUNNING,
    READY,
    SKIPPED,
    SUBMITTED,
    Run,
    Ticket,
    campaign_slot,
    slot_wait,
)
from obsflow.runs.planning import Planning
from obsflow.runs.ports import RunStore
from obsflow.runs.ticketing import Tickets

PAUSED, ACTIVE_SUBMISSION = "paused", "active"
# Each set of resource classes a run may need: the READY queues
_CLASS_SETS = [classes for size in range(1, len(RESOURCE_CLASSES) + 1)
               for classes in itertools.combinations(RESOURCE_CLASSES, size)]


class CampaignGate:
    """Within one submitter pass: whether a campaign's run may start. Only a RUNNING campaign's may: one
    AWAITING_APPROVAL (or DRAFT, PAUSED, ...) holds its runs with its status and why. A campaign's concurrency is a
    slot taken with the run's resource-class slots in one transaction, so two submitters cannot both take its last
    one."""

    def __init__(self, store: RunStore):
        self.store, self.campaigns, self.active = store, {}, {}

    def holds(self, run: Run, fresh: bool = False) -> str | None:
        """Why the campaign's run may not start now; ``fresh``: read the campaign again (just before starting
        it, so a campaign paused meanwhile starts nothing more)."""
        if not run.campaign:
            return None
        name, slot = run.campaign, campaign_slot(run.campaign)
        if fresh or name not in self.campaigns:
            self.campaigns[name] = self.store.campaign(name)
            self.active[name] = len(self.store.slots_in_use([slot])[slot])
        campaign = self.campaigns[name]
        if campaign is None:
            return f"campaign {name} is not recorded"
        if campaign.status != CAMPAIGN_RUNNING:
            return f"campaign {name} is {campaign.status}" + (f": {campaign.status_reason}" if campaign.status_reason else "")
        if self.active[name] >= campaign.max_concurrent:
            return f"campaign {name} has {self.active[name]} of at most {campaign.max_concurrent} runs going"
        return None

    def limits(self, run: Run) -> dict[str, int]:
        return {campaign_slot(run.campaign): self.campaigns[run.campaign].max_concurrent} if run.campaign else {}

    def started(self, run: Run) -> None:
        if run.campaign:
            self.active[run.campaign] += 1


class Submission(Part):
    def __init__(self, ctx, planning: Planning, tickets: Tickets):
        super().__init__(ctx)
        self.planning, self.tickets = planning, tickets

    def submit(self) -> SubmitReport:
        """File the review tickets conflicts owe, plan READY candidates, then start READY runs by priority within
        the run slots."""
        report = SubmitReport()
        started, budget = self.elapsed(), self.settings.submit_pass_budget_s
        with self.recipes.one_pass():
            self.planning.file_conflict_reviews(report)
            self.planning.discover_ready_candidates(report, until=started + budget / 2)
            self.planning.plan_pending_instances(report, until=started + budget)
            if report.cut_short:  # the rest is the next pass's, at once (it stays READY or marked due meanwhile)
                self.notifier.nudge(f"the last pass reached its {budget:g} s budget in {' and '.join(report.cut_short)}")
            if self.switch.is_paused():
                report.paused = True
                return report
            self._resume_unlaunched(report)
            self._start_ready_runs(report)
        return report

    def _capacity(self) -> dict[str, int]:
        return {rc: self.settings.capacity(rc) for rc in RESOURCE_CLASSES}

    def _start_ready_runs(self, report: SubmitReport) -> None:
        in_use = self.store.slots_in_use(list(RESOURCE_CLASSES))
        campaigns = CampaignGate(self.store)
        windows, now, capacity = self.settings.processing_windows(), self.clock(), self._capacity()

        def full_slots(run: Run) -> str | None:
            return slot_wait(run.resource_classes, {rc: len(in_use[rc]) for rc in in_use}, capacity)

        for run in self._queued_runs(lambda classes: all(len(in_use[rc]) < capacity[rc] for rc in classes)):
            if not self.recipes.get(run.recipe, run.version).automated:
                self._hold_for_operator(run)
                report.manual.append(run.run_id)
                continue
            full = None  # _queued_runs yields a run only while its classes have free slots
            reason = (windows.closed_for([run.recipe, *run.resource_classes], now) or campaigns.holds(run)
                      or campaigns.holds(run, fresh=True))
            if reason is None and not self.store.take_slots(run, {**capacity, **campaigns.limits(run)}, self.clock()):
                in_use = self.store.slots_in_use(list(RESOURCE_CLASSES))  # someone else took a slot or the run
                full = full_slots(run)
                reason = full or campaigns.holds(run, fresh=True)
                if reason is None:
                    continue  # another submitter started it
            if reason is not None:
                report.waiting[run.run_id] = reason
                kept = None if reason == full else reason  # a slot wait is shown from the slots, not kept
                if run.waiting_reason != kept:
                    self.store.note_waiting(run.run_id, kept)
                continue
            for rc in run.resource_classes:
                in_use[rc].add(run.run_id)
            campaigns.started(run)
            self._launch(run, report)

    def _queued_runs(self, free: Callable[[tuple[str, ...]], bool]) -> Iterator[Run]:
        """The READY runs whose resource classes each have a free slot, in start order across their queues (one
        per set of classes). A queue is read only while its classes have a free slot, a page at a time: a pass
        reads what it may start, not all that waits (the rest keep their reasons; a slot wait shows from the
        slots)."""
        heads: dict[tuple[str, ...], tuple[Iterator[Run], Run]] = {}
        for classes in _CLASS_SETS:
            if free(classes):
                queue = self.store.ready_runs(classes)
                if (first := next(queue, None)) is not None:
                    heads[classes] = (queue, first)
        while heads := {classes: head for classes, head in heads.items() if free(classes)}:
            classes = min(heads, key=lambda c: heads[c][1].queue_key)
            queue, run = heads.pop(classes)
            yield run
            if free(classes) and (following := next(queue, None)) is not None:
                heads[classes] = (queue, following)

    def _launch(self, run: Run, report: SubmitReport) -> None:
        try:
            execution_arn = self.executions.start(run)
        except TransientError:
            # Undo, so the run is picked up again on the next call.
            self.move_run(run.run_id, "unlaunch", "execution could not be started")
            self.store.give_back_slots(run)
            raise
        self.store.update_run(run.run_id, execution_arn=execution_arn)
        self.planning.refresh_instance(run.instance_id)
        report.started.append(run.run_id)
        logger.info("run started", extra={"run_id": run.run_id, "execution_arn": execution_arn})

    def _resume_unlaunched(self, report: SubmitReport) -> None:
        """A submitter that stopped between taking slots and starting the execution left these."""
        for run in self.store.runs_with_status(SUBMITTED):
            if run.execution_arn is None:
                self._launch(run, report)

    def _hold_for_operator(self, run: Run) -> None:
        """READY -> MANUAL with one ticket that says how to run it (filed first, once: whoever sees the run
        MANUAL finds it)."""
        self.tickets.file(Ticket(
            f"TKT-{run.run_id}-manual", kind="manual", created_at=self.clock(),
            summary=f"run {run.run_id} of {run.recipe_key} is manual by definition",
            run_id=run.run_id, candidate_id=run.candidate_id, proposal_id=run.proposal_id, recipe=run.recipe_key,
            suggested_action=f"`obsflow runs execute {run.run_id} --manual --note TEXT` on an operator machine",
        ))
        if self.move_run(run.run_id, "hold", "manual by definition"):
            self.planning.refresh_instance(run.instance_id)

    def nudge(self, reason: str) -> None:
        """Ask the submitter to run soon (work has appeared)."""
        self.notifier.nudge(reason)

    def pause(self, reason: str = "") -> None:
        self.switch.set(PAUSED, reason)

    def resume(self, by: str = "", skip_backlog: str | None = None) -> list[str]:
        """Start runs again; ``skip_backlog`` (why): first mark the runs then queued SKIPPED, with one ticket that
        lists them. A campaign's runs are left queued: its own pause and cancel govern them. The runs skipped."""
        skipped = self._skip_backlog(by, skip_backlog) if skip_backlog is not None else []
        self.switch.set(ACTIVE_SUBMISSION)
        self.notifier.nudge("resumed")
        return skipped

    def _skip_backlog(self, by: str, why: str) -> list[str]:
        if not why.strip():
            raise ValueError("say why the backlog is skipped (--reason TEXT): it is kept with each run and on the ticket")
        if not self.switch.is_paused():  # running: what is queued is today's work, not a backlog (a repeated command)
            raise NotAllowed("submission is not paused, so nothing queued is a backlog: --skip-backlog skips what "
                             "queued while it was paused, and skipped nothing now. `obsflow runs list --status "
                             "READY` shows the queue; `obsflow runs cancel RUN --reason` stops one run")
        now, detail = self.clock(), f"skipped with the backlog by {by}: {why}"
        skipped = [run for run in self.store.runs_with_status(READY)
                   if not run.campaign and self.move_run(run.run_id, "skip", detail, waiting_reason=detail)]
        for run in skipped:
            self.planning.refresh_instance(run.instance_id)
        if skipped:
            self.tickets.file(Ticket(
                f"TKT-backlog-{now:%Y%m%dT%H%M%S}", kind="skipped-backlog", created_at=now,
                summary=f"{len(skipped)} queued run(s) skipped when submission resumed (by {by}: {why})",
                log_excerpt="\n".join(f"{r.run_id}  {r.recipe_key}  {r.proposal_id}  {r.candidate_id or '-'}"
                                       for r in skipped),
                suggested_action="`obsflow runs requeue --skipped --reason TEXT` queues them all again (or name runs: "
                                 "`obsflow runs requeue RUN... --reason TEXT`)"))
        logger.warning("backlog skipped", extra={"runs": len(skipped), "by": by, "reason": why})
        return [run.run_id for run in skipped]

    def requeue(self, run_ids: list[str] | None, by: str, why: str) -> list[str]:
        """SKIPPED runs back in the queue (``run_ids`` None: every SKIPPED run); the ones that moved."""
        if not (why or "").strip():
            raise ValueError("say why the runs are queued again (--reason TEXT): it is kept in their history")
        runs = self.store.runs_with_status(SKIPPED) if run_ids is None else [self.require_run(r) for r in run_ids]
        not_skipped = [f"{run.run_id} ({run.status})" for run in runs if run.status != SKIPPED]
        if not_skipped:
            raise NotAllowed(f"only a SKIPPED run is queued again: {', '.join(not_skipped[:5])}")
        moved = [run for run in runs if self.move_run(run.run_id, "requeue", f"queued again by {by}: {why}",
                                                      waiting_reason=None)]
        for run in moved:
            self.planning.refresh_instance(run.instance_id)
        if moved:
            self.notifier.nudge(f"{len(moved)} run(s) queued again")
        return [run.run_id for run in moved]
