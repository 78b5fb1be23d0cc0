"""The run lifecycle: the state machine's steps (start, finish, fail), and by exception retry, redrive and
manual execution.

Run statuses: READY -> SUBMITTED (slots taken, execution started) -> RUNNING -> SUCCEEDED | FAILED (slots
given back); READY -> MANUAL for a manual-by-definition recipe; READY | MANUAL -> CANCELLED with its campaign.
Every step is conditional, so a re-delivered event changes nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable

from obsflow.observability import logger
from obsflow.recipes.jobs import job_definitions
from obsflow.runs import layout
from obsflow.runs.accounting import Accounting
from obsflow.runs.cataloguing import Cataloguing
from obsflow.runs.context import ManualRunFailed, NotAllowed, Part
from obsflow.runs.domain import (
    CAMPAIGN_PAUSED,
    CAMPAIGN_RUNNING,
    ERROR,
    FAILED,
    INSTANCE_SUCCEEDED,
    NEVER_EXECUTED,
    READY,
    MAX_PRIORITY,
    RUN_CANCELLED,
    RUNNING,
    SUBMITTED,
    SUCCEEDED,
    Run,
    Ticket,
)
from obsflow.runs.planning import Planning
from obsflow.runs.reuse import StartReuse
from obsflow.runs.ticketing import Tickets
from obsflow.runs.failures import ACTIONS, describe_failure
from obsflow.runs.transitions import CAMPAIGN_MOVES, RUN_MOVES

FAILURE_LOG_LINES = 12  # of the failed task's own log, in `runs show`


class Lifecycle(Part):
    def __init__(self, ctx, planning: Planning, cataloguing: Cataloguing, tickets: Tickets, accounting: Accounting):
        super().__init__(ctx)
        self.planning, self.cataloguing, self.tickets, self.accounting = planning, cataloguing, tickets, accounting

    def start_run(self, run_id: str, execution_arn: str) -> dict:
        run = self.require_run(run_id)
        at = self.clock()
        if not self.move_run(run_id, "start", execution_arn, started_at=at, execution_arn=execution_arn, error=None):
            run = self.require_run(run_id)
            if run.status == RUN_CANCELLED:  # cancelled while the submitter launched it: its tasks must not run
                raise NotAllowed(f"run {run_id} was cancelled before its execution started ({run.waiting_reason}): "
                                 "none of its tasks runs")
        self.planning.refresh_instance(run.instance_id)
        campaign = self.store.campaign(run.campaign) if run.campaign else None
        developer_images = (campaign.job_definitions if campaign else None) or {}
        recipe = self.recipes.get(run.recipe, run.version)
        document = self.documents.get_json("work", layout.run_document_key(run_id))
        return {"run_id": run_id, "recipe": run.recipe, "version": run.version, "proposal_id": run.proposal_id,
                "chunks": document.get("chunks", {}),
                "reused": StartReuse(self.documents, self.clock).record(document, recipe),
                "share_identifier": layout.share_identifier(run.proposal_id), "scheduling_priority": int(run.priority),
                "job_definitions": job_definitions(self.settings, recipe, developer_images)}

    def finish_run(self, run_id: str) -> dict:
        run = self.require_run(run_id)
        at = self.clock()
        if run.status in RUN_MOVES["finish"].sources:  # not again for a re-delivered event
            # its cost first, on its dataset and with the move: a SUCCEEDED run is never seen without it
            document = self.documents.get_json("work", run.input_dataset_key) if run.input_dataset_key else {}
            cost = self.accounting.cost_of(run, succeeded=True, input_dataset=document)
            if run.dataset_id:
                self.store.update_dataset(run.dataset_id, cost=cost)
            if self.move_run(run_id, "finish", finished_at=at, cost=cost):
                self._record_measurement(run, document)
        self.store.give_back_slots(run)
        self.planning.refresh_instance(run.instance_id)
        self.complete_campaign_if_done(run.campaign)
        logger.info("run succeeded", extra={"run_id": run_id})
        self.notifier.nudge(f"run {run_id} finished")
        return {"run_id": run_id, "status": SUCCEEDED}

    def fail_run(self, run_id: str, error: dict) -> dict:
        run = self.require_run(run_id)
        at = self.clock()
        cost = self.accounting.cost_of(run, succeeded=False)
        if run.campaign and run.status in (SUBMITTED, RUNNING):
            # Before the run ends: a submitter then never sees the campaign's slot free while it should pause.
            self._pause_campaign_after_failures(run.campaign, run.instance_id)
        failed = self.move_run(run_id, "fail", error.get("Error"), finished_at=at, error=error, cost=cost)
        self.store.give_back_slots(run)
        logger.warning("run failed", extra={"run_id": run_id, "error": error.get("Error")})
        if failed and self._redrive_by_itself(run, error):
            return {"run_id": run_id, "status": READY}
        self.planning.refresh_instance(run.instance_id)
        self.complete_campaign_if_done(run.campaign)
        self.notifier.nudge(f"run {run_id} failed")
        return {"run_id": run_id, "status": FAILED}

    def _redrive_by_itself(self, run: Run, error: dict) -> bool:
        """A failure of infrastructure is expected not to persist: redrive it (settings.auto_redrives times per
        run), resolving its ticket with a note; the same cause again reopens that ticket (Tickets)."""
        ticket = self.tickets.of_attempt(run.run_id, run.attempt)
        kind = ticket.kind.split(":")[-1] if ticket is not None else describe_failure(error)["kind"]
        if kind != "infrastructure" or run.redrives >= self.settings.auto_redrives:
            return False
        note = f"redriven by obsflow ({run.redrives + 1} of {self.settings.auto_redrives}): a failure of infrastructure"
        self.redrive(run.run_id)
        if ticket is not None:
            self.tickets.resolve(ticket.ticket_id, note, "obsflow")
        logger.info("run redriven by itself", extra={"run_id": run.run_id, "redrives": run.redrives + 1})
        return True

    def complete_campaign_if_done(self, name: str | None) -> None:
        """A RUNNING campaign whose instances have all ended (succeeded, failed for good, or cancelled) is
        COMPLETED: data quality then accepts or rejects it."""
        campaign = self.store.campaign(name) if name else None
        if campaign is None or campaign.status != CAMPAIGN_RUNNING or campaign.schedule:  # a recurring one goes on
            return
        outcome = Counter()
        for instance_id in campaign.instance_ids or ():  # every run's end asks: stop at the first still going
            instance = self.store.instance(instance_id)
            if instance is None or not self._ended_for_good(instance):
                return
            outcome[instance.state] += 1
        if not outcome:
            return
        step = CAMPAIGN_MOVES["complete"]
        why = "every instance ended: " + ", ".join(f"{n} {state}" for state, n in sorted(outcome.items()))
        self.store.update_campaign(name, status=step.to, status_reason=why, history=[
            *campaign.history, {"at": self.clock().isoformat(), "status": step.to, "by": "obsflow", "why": why}])
        logger.info("campaign completed", extra={"campaign": name, "instances": dict(outcome)})

    def _ended_for_good(self, instance) -> bool:
        """Nothing more runs for it: its latest run succeeded, was cancelled, or failed with the instance in ERROR."""
        if instance.state not in (INSTANCE_SUCCEEDED, ERROR, NEVER_EXECUTED):  # queued or running: no need to read
            return False
        runs = self.store.runs_of(instance)
        if not runs:
            return False
        latest = max(runs, key=lambda r: r.created_at).status
        return latest in (SUCCEEDED, RUN_CANCELLED) or (latest == FAILED and instance.state in (ERROR,
                                                                                              INSTANCE_SUCCEEDED))

    def _pause_campaign_after_failures(self, name: str, failing_instance: str) -> None:
        """The blast radius: a campaign whose instances failed ``pause_after_failures`` times pauses itself,
        with a ticket; runs already started finish, the others wait for `obsflow campaigns resume`."""
        campaign = self.store.campaign(name)
        if campaign is None or campaign.status != CAMPAIGN_RUNNING:
            return
        failed = sorted({failing_instance, *(i for i in campaign.instance_ids
                                             if (instance := self.store.instance(i)) and instance.state == ERROR)})
        if len(failed) < campaign.pause_after_failures:
            return
        reason = f"paused itself after {len(failed)} failed instance(s) (limit {campaign.pause_after_failures})"
        self.tickets.file(Ticket(  # first: whoever sees the campaign PAUSED finds it
            f"TKT-campaign-{name}-paused-{len(campaign.history)}", kind="review:campaign", created_at=self.clock(),
            summary=f"campaign {name} {reason}: {', '.join(failed[:5])}",
            suggested_action=f"read the failed runs' tickets (`obsflow campaigns show {name}`), fix the cause, then "
                             f"`obsflow campaigns resume {name}` (or `cancel`)",
        ))
        self.store.update_campaign(name, status=CAMPAIGN_PAUSED, status_reason=reason, history=[
            *campaign.history, {"at": self.clock().isoformat(), "status": CAMPAIGN_PAUSED, "by": "obsflow", "why": reason}])
        logger.warning("campaign paused", extra={"campaign": name, "failed": len(failed)})

    def _record_measurement(self, run: Run, document: dict) -> None:
        """Once per successful run: what it took, so later estimates of its recipe version are measured ones."""
        if run.measured_cpu_s is None:
            return
        inputs = len(document.get("frames", [])) + len(document.get("upstream", []))
        self.store.record_measurement(run.recipe_key, inputs, run.measured_cpu_s, run.output_bytes or 0)

    def run_outputs(self, run_id: str) -> list[dict]:
        """What each task of the run wrote (or reused): name, tags, size, SHA-256, where it is, and where its
        dataset keeps it (products; every intermediate too for a run that keeps them)."""
        run = self.require_run(run_id)
        dataset = self.store.dataset(run.dataset_id) if run.dataset_id else None
        kept = {(f["task"], f["sha256"], f["name"]): f"s3://{dataset.bucket}/{f['key']}" for f in dataset.files} \
            if dataset else {}
        work = self.documents.location("work")
        return [{"task": record["task"], "name": output["name"], "tags": output["tags"], "size": output["size"],
                 "sha256": output["sha256"], "reused_from": (record.get("reused_from") or {}).get("run_id"),
                 "work": f"s3://{work}/{output['key']}", "kept": kept.get((record["task"], output["sha256"], output["name"]))}
                for record in self.cataloguing.task_records(run) for output in record.get("outputs", [])]

    def failure(self, run_id: str) -> dict | None:
        """Why a FAILED run failed, as its operator needs it: the failing task, its own last log lines (from
        the ticket) and what to do; None for a run that has not failed."""
        run = self.require_run(run_id)
        if run.status != FAILED:
            return None
        ticket = self.tickets.of_attempt(run.run_id, run.attempt)
        if ticket is None:  # the ticket could not be opened: what the error itself says
            facts = describe_failure(run.error or {})
            return {"failed_task": facts["failed_task"], "error": facts["error_message"],
                    "suggested_action": ACTIONS[facts["kind"]].format(run_id=run_id)}
        log_lines = [line for line in (ticket.log_excerpt or "").splitlines() if line.strip()]
        return {"ticket_id": ticket.ticket_id, "kind": ticket.kind, "failed_task": ticket.failed_task,
                "exit_code": ticket.exit_code, "error": ticket.error_message, "task_log": log_lines[-FAILURE_LOG_LINES:],
                "suggested_action": ticket.suggested_action}

    def finished_tasks(self, run_id: str) -> set[str]:
        """The tasks of the run that succeeded (wrote a succeeded record), whatever the execution saw: a job that
        failed after its branch was aborted wrote a record too."""
        return {record["task"] for record in self.cataloguing.task_records(self.require_run(run_id))
                if record.get("status") == "succeeded"}

    def _ended(self, run_id: str, allowed: tuple[str, ...], verb: str) -> Run:
        run = self.require_run(run_id)
        if run.status not in allowed:
            raise NotAllowed(f"run {run_id} is {run.status}; only a {' or '.join(allowed)} run can be {verb}")
        return run

    def retry(self, run_id: str, overrides: dict[str, str]) -> Run:
        """A new run of the same recipe instance, its configuration adjusted, linked to the earlier run.

        Retrying a SUCCEEDED run reprocesses it: a new dataset of the same product; both stay ACTIVE until
        a data-quality decision. The same retry asked twice names the same new run (its id derives from
        the overrides).
        """
        earlier = self._ended(run_id, (FAILED, SUCCEEDED), "retried")
        recipe = self.recipes.get(earlier.recipe, earlier.version)
        instance = self.instance_of(earlier)
        merged = {**(earlier.overrides or {}), **overrides}
        run = self.planning.new_run(instance, recipe, int(earlier.priority), self.clock(), overrides=merged, retry_of=run_id)
        run.input_dataset_key = earlier.input_dataset_key or instance.input_dataset_key
        run.input_dataset_sha256 = earlier.input_dataset_sha256 or instance.input_dataset_sha256
        existing = self.store.run(run.run_id)
        if existing is not None:
            return existing
        self.planning.save_run(run, instance, recipe)
        self.planning.refresh_instance(instance.instance_id)
        self.notifier.nudge(f"retry of {run_id}")
        return self.store.run(run.run_id)

    def redrive(self, run_id: str) -> Run:
        """Resume the failed run: a new execution of the same run; tasks that succeeded reuse their outputs.
        Refused for a failure of the run's configuration or science, which the same run would meet again."""
        run = self._ended(run_id, (FAILED,), "redriven")
        ticket = self.tickets.of_attempt(run.run_id, run.attempt)
        if ticket is not None and ticket.kind in ("failure:configuration", "failure:science"):
            kind = ticket.kind.split(":")[1]
            raise NotAllowed(f"run {run_id} failed on its {kind} (task {ticket.failed_task}: {ticket.error_message}); "
                             f"a redrive would run it the same way again. Instead: {ticket.suggested_action}")
        self.move_run(run_id, "redrive", "redrive", redrives=run.redrives + 1, execution_arn=None, finished_at=None)
        self.planning.refresh_instance(run.instance_id)
        self.notifier.nudge(f"redrive of {run_id}")
        return self.store.run(run_id)

    def execute_manually(self, run_id: str, note: str, operator: str, echo: Callable[[str], None] = print) -> Run:
        """Run a MANUAL or FAILED run's tasks here, then catalogue, notify and finish it."""
        if self.task_runner is None:
            raise ManualRunFailed("manual execution needs a machine that can run the task entrypoint")
        run = self.require_run(run_id)
        recipe = self.recipes.get(run.recipe, run.version)
        if not self.move_run(run_id, "execute", f"manual execution by {operator}: {note}", started_at=self.clock(),
                             error=None):
            raise ManualRunFailed(f"run {run_id} is {run.status}; only a MANUAL or FAILED run can be executed by hand")
        for level in recipe.levels():
            for task in level:
                echo(f"  {task.name}: running on this machine ...")
                exit_code, stdout, stderr = self.task_runner.run(recipe, task.name, run_id, operator, note)
                if exit_code != 0:
                    cause = {"task": task.name, "exit_code": exit_code, "stderr": stderr[-2000:]}
                    error = {"Error": "ManualTaskFailed", "Cause": json.dumps(cause)}
                    self.fail_run(run_id, error)
                    self.tickets.open_for_failure(run_id, error, None)
                    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
                    raise ManualRunFailed(f"task {task.name} failed (exit code {exit_code}): {last}")
                echo(f"  {task.name}: {stdout.strip().splitlines()[-1] if stdout.strip() else 'done'}")
        result = self.cataloguing.catalog(run_id)
        if result["notify_pi"]:
            self.notifier.notify_pi(result["proposal_id"], result["dataset_id"], result["subject"], result["message"])
        self.finish_run(run_id)
        return self.store.run(run_id)

    def cancel(self, run_id: str, by: str, reason: str) -> Run:
        """Stop the run for good, with who and why: its execution and Batch jobs are stopped, its slots given back,
        and nothing of it is catalogued. Cancelling it again stops what may still be going, and changes nothing else."""
        if not (reason or "").strip():
            raise ValueError("say why the run is cancelled (--reason TEXT): it is kept in its history")
        run = self.require_run(run_id)
        why = f"cancelled by {by}: {reason}"
        if run.status != RUN_CANCELLED and not self.move_run(run_id, "cancel", why, waiting_reason=why,
                                                             finished_at=self.clock()):
            raise NotAllowed(f"run {run_id} is {run.status}; only a {' or '.join(RUN_MOVES['cancel'].sources)} run "
                             "can be cancelled")
        if run.execution_arn or run.status in (SUBMITTED, RUNNING):
            self.executions.stop(run, why)
            self.store.give_back_slots(run)
        self.planning.refresh_instance(run.instance_id)
        logger.warning("run cancelled", extra={"run_id": run_id, "by": by, "reason": reason})
        self.notifier.nudge(f"run {run_id} cancelled")
        return self.require_run(run_id)

    def prioritize(self, run_id: str, priority: int, by: str, reason: str) -> Run:
        """Move a queued run in the submitter's order (higher starts first), with who and why."""
        if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= MAX_PRIORITY:
            raise ValueError(f"a priority is a whole number 0-{MAX_PRIORITY}, not {priority!r}")
        if not (reason or "").strip():
            raise ValueError("say why the run's priority changes (--reason TEXT): it is kept in its history")
        run = self.require_run(run_id)
        if not self.move_run(run_id, "prioritize", f"priority {run.priority} -> {priority} by {by}: {reason}",
                             priority=priority):
            raise NotAllowed(f"run {run_id} is {run.status}; only a queued (READY) run is re-prioritized")
        self.notifier.nudge(f"run {run_id} re-prioritized")
        return self.require_run(run_id)

    def inject_fault(self, run_id: str, task: str, kind: str, chunk: int | None = None) -> None:
        """Make ``task`` of the run fail: ``configuration`` (exit 2, every time) or ``outage`` (exit 3, once), or
        ``hang`` (wait ten minutes, then go on); ``chunk``: only that chunk of a data-parallel task."""
        run = self.require_run(run_id)
        self.recipes.get(run.recipe, run.version).task(task)  # RecipeError for an unknown task
        if kind not in ("configuration", "outage", "hang"):
            raise ValueError(f"unknown fault kind {kind!r}: configuration, outage or hang")
        self.documents.put_json("work", layout.fault_key(run_id, task), {"kind": kind, "task": task, "chunk": chunk})
