"""The run service: planning, submission, the run lifecycle, catalog, tickets and operator actions.

Dependencies come in (a store and the platform's ports), so unit tests run on fakes.
Every operation is idempotent: ids derive from what they identify and every status
change is conditional, so a re-delivered event or a second submitter changes nothing.

Run statuses: READY -> SUBMITTED (slots taken, execution started) -> RUNNING
-> SUCCEEDED | FAILED (slots given back); READY -> MANUAL for a manual-by-definition recipe.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from obsflow.errors import NotFound, ObsflowError, TransientError
from obsflow.ingest.readiness import OpState, missing
from obsflow.observability import logger
from obsflow.recipes.model import RESOURCE_CLASSES, Recipe
from obsflow.runs import layout, records
from obsflow.runs.domain import (
    ACTIVE,
    FAILED,
    MANUAL,
    READY,
    RUNNING,
    SUBMITTED,
    SUCCEEDED,
    WAITING,
    Candidate,
    Dataset,
    HistoryEntry,
    Instance,
    Run,
    Ticket,
    utcnow,
)
from obsflow.runs.ports import Documents, Executions, Notifier, RecipeBook, RunStore, ServiceDesk, SubmissionSwitch, TaskRunner
from obsflow.runs.tickets import ACTIONS, describe_failure
from obsflow.settings import Settings

PAUSED, ACTIVE_SUBMISSION = "paused", "active"


class NotAllowed(ObsflowError):
    """The run is not in a state that allows this operation."""


class ManualRunFailed(ObsflowError):
    pass


@dataclass(frozen=True)
class Plan:
    instance_id: str
    run_id: str
    recipe: Recipe
    created: bool


@dataclass
class SubmitReport:
    paused: bool = False
    planned: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    waiting: dict[str, str] = field(default_factory=dict)
    manual: list[str] = field(default_factory=list)


@dataclass
class BackstopReport:
    checked: int = 0
    released: list[str] = field(default_factory=list)


class RunService:
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
    ):
        self.store, self.documents, self.executions, self.notifier = store, documents, executions, notifier
        self.switch, self.recipes, self.settings, self.clock = switch, recipes, settings, clock
        self.service_desk, self.task_runner = service_desk, task_runner

    # -- lookups -----------------------------------------------------------------
    def require_run(self, run_id: str) -> Run:
        run = self.store.run(run_id)
        if run is None:
            raise NotFound(f"no run {run_id!r}; `obsflow runs list` shows the known ones")
        return run

    def _instance_of(self, run: Run) -> Instance:
        instance = self.store.instance(run.instance_id)
        if instance is None:
            raise NotFound(f"the recipe instance {run.instance_id} of run {run.run_id} is gone")
        return instance

    # -- planning --------------------------------------------------------------------
    def plan(self, candidate: Candidate) -> Plan:
        """The candidate's recipe instance and first run (created now, or found)."""
        recipe = self.recipes.select(candidate.instrument, candidate.recipe)
        at = self.clock()
        instance_id = layout.instance_id(candidate.candidate_id, recipe.name, recipe.version)
        dataset = records.input_dataset(candidate, recipe, self.store.frames_of_ops(candidate.op_ids))
        key = layout.input_dataset_key(instance_id)
        sha256 = self.documents.put_json("work", key, dataset)
        self.store.create_instance(Instance(
            instance_id, candidate_id=candidate.candidate_id, proposal_id=candidate.proposal_id, recipe=recipe.name,
            version=recipe.version, input_dataset_key=key, input_dataset_sha256=sha256,
            observed_on=dataset["observed_on"], created_at=at,
        ))
        instance = self.store.instance(instance_id)  # the first writer's, if another planned it too
        priority = candidate.priority if candidate.priority is not None else recipe.priority
        run = self._new_run(instance, recipe, priority, at)
        created = self._save_run(run, instance)
        self.store.mark_candidate_planned(candidate.candidate_id, instance_id)
        if created:
            logger.info("run planned", extra={"candidate_id": candidate.candidate_id, "run_id": run.run_id,
                                              "recipe": recipe.key})
        return Plan(instance_id, run.run_id, recipe, created)

    def _new_run(self, instance: Instance, recipe: Recipe, priority: int, at: dt.datetime,
                 overrides: dict | None = None, retry_of: str | None = None) -> Run:
        configuration = recipe.as_run_configuration(dt.date.fromisoformat(instance.observed_on), overrides)
        attempt = json.dumps(overrides, sort_keys=True) if retry_of else ""
        run_id = layout.run_id(instance.instance_id, retry_of, attempt)
        return Run(
            run_id, instance_id=instance.instance_id, candidate_id=instance.candidate_id,
            proposal_id=instance.proposal_id, recipe=recipe.name, version=recipe.version, priority=priority,
            resource_classes=recipe.resource_classes(), configuration=configuration, created_at=at,
            overrides=overrides, retry_of=retry_of,
            history=[HistoryEntry(READY, at, f"retry of {retry_of}" if retry_of else "planned")],
        )

    def _save_run(self, run: Run, instance: Instance) -> bool:
        """The run document first (tasks read it), then the run; True if the run is new."""
        self.documents.put_json("work", layout.run_document_key(run.run_id),
                                records.run_document(run, instance, self.documents.location("work")))
        created = self.store.create_run(run)
        self.store.add_run_to_instance(instance.instance_id, run.run_id)
        return created

    def plan_ready_candidates(self, report: SubmitReport) -> None:
        for candidate in self.store.candidates_with_status(READY):
            try:
                plan = self.plan(candidate)
            except (NotFound, ValueError) as exc:
                # No recipe, or nothing to process: a person has to decide; keep it visible.
                self.store.hold_candidate(candidate.candidate_id, str(exc))
                logger.warning("candidate held", extra={"candidate_id": candidate.candidate_id, "reason": str(exc)})
                report.held.append(candidate.candidate_id)
                continue
            if plan.created:
                report.planned.append(plan.run_id)

    # -- submission ---------------------------------------------------------------------
    def submit(self) -> SubmitReport:
        """Plan READY candidates, then start READY runs by priority within the run slots."""
        report = SubmitReport()
        self.plan_ready_candidates(report)
        if self.switch.is_paused():
            report.paused = True
            return report
        self._resume_unlaunched(report)
        self._start_ready_runs(report)
        return report

    def _capacity(self) -> dict[str, int]:
        return {rc: self.settings.capacity(rc) for rc in RESOURCE_CLASSES}

    def _waiting_reason(self, run: Run, in_use: dict[str, set[str]]) -> str | None:
        capacity = self._capacity()
        full = [f"{rc} {len(in_use[rc])}/{capacity[rc]}" for rc in run.resource_classes if len(in_use[rc]) >= capacity[rc]]
        return f"waiting for a run slot: {', '.join(full)} in use" if full else None

    def _start_ready_runs(self, report: SubmitReport) -> None:
        in_use = self.store.slots_in_use(list(RESOURCE_CLASSES))
        for run in self.store.runs_with_status(READY):
            if not self.recipes.get(run.recipe, run.version).automated:
                self._hold_for_operator(run)
                report.manual.append(run.run_id)
                continue
            reason = self._waiting_reason(run, in_use)
            if reason is None and not self.store.take_slots(run, self._capacity(), self.clock()):
                in_use = self.store.slots_in_use(list(RESOURCE_CLASSES))  # someone else took a slot or the run
                reason = self._waiting_reason(run, in_use)
                if reason is None:
                    continue  # another submitter started it
            if reason is not None:
                report.waiting[run.run_id] = reason
                if run.waiting_reason != reason:
                    self.store.note_waiting(run.run_id, reason)
                continue
            for rc in run.resource_classes:
                in_use[rc].add(run.run_id)
            self._launch(run, report)

    def _launch(self, run: Run, report: SubmitReport) -> None:
        try:
            execution_arn = self.executions.start(run)
        except TransientError:
            # Undo, so the run is picked up again on the next call.
            self.store.transition(run.run_id, READY, (SUBMITTED,), self.clock(), "execution could not be started")
            self.store.give_back_slots(run)
            raise
        self.store.update_run(run.run_id, execution_arn=execution_arn)
        report.started.append(run.run_id)
        logger.info("run started", extra={"run_id": run.run_id, "execution_arn": execution_arn})

    def _resume_unlaunched(self, report: SubmitReport) -> None:
        """A submitter that stopped between taking slots and starting the execution left these."""
        for run in self.store.runs_with_status(SUBMITTED):
            if run.execution_arn is None:
                self._launch(run, report)

    def pause(self, reason: str = "") -> None:
        self.switch.set(PAUSED, reason)

    def resume(self) -> None:
        self.switch.set(ACTIVE_SUBMISSION)
        self.notifier.nudge("resumed")

    # -- the state machine's steps ---------------------------------------------------------
    def start_run(self, run_id: str, execution_arn: str) -> dict:
        run = self.require_run(run_id)
        at = self.clock()
        self.store.transition(run_id, RUNNING, (SUBMITTED,), at, execution_arn,
                              started_at=at, execution_arn=execution_arn, error=None)
        return {"run_id": run_id, "recipe": run.recipe, "version": run.version, "proposal_id": run.proposal_id,
                "share_identifier": layout.share_identifier(run.proposal_id), "scheduling_priority": int(run.priority)}

    def task_records(self, run: Run) -> list[dict]:
        """The provenance record of every task of the run, in the order they finished."""
        found = []
        for task in self.recipes.get(run.recipe, run.version).tasks:
            try:
                found.append(self.documents.get_json("work", layout.task_record_key(run.run_id, task.name)))
            except NotFound:
                continue
        return sorted(found, key=lambda r: r.get("finished_at") or "")

    def catalog(self, run_id: str) -> dict:
        """Copy the run's products to <proposal>/<dataset id>/ in the data bucket and record the dataset."""
        run = self.require_run(run_id)
        recipe = self.recipes.get(run.recipe, run.version)
        dataset_id = layout.dataset_id(run_id)
        prefix = layout.dataset_prefix(run.proposal_id, dataset_id)
        task_records = self.task_records(run)
        input_dataset = self.documents.get_json("work", self._instance_of(run).input_dataset_key)
        product_id = layout.product_id(f["file_id"] for f in input_dataset["frames"] if f["role"] == "observe")
        files = []
        for record in task_records:
            for output in record.get("outputs", []):
                if "product" not in output["tags"]:
                    continue
                key = prefix + output["name"]
                self.documents.copy("work", output["key"], "data", key)
                files.append({"name": output["name"], "key": key, "sha256": output["sha256"], "size": output["size"],
                              "task": record["task"], "tags": output["tags"], "content_type": output.get("content_type")})
        self.documents.put_text("data", prefix + "SHA256SUMS",
                                "".join(f"{f['sha256']}  {f['name']}\n" for f in sorted(files, key=lambda f: f["name"])))
        provenance = records.provenance(run, input_dataset, task_records)
        self.documents.put_json("data", prefix + "provenance.json", provenance)
        key = records.version_key(input_dataset, run, task_records, recipe)
        self.store.create_dataset(Dataset(
            dataset_id, run_id=run_id, proposal_id=run.proposal_id, candidate_id=run.candidate_id,
            recipe=run.recipe_key, bucket=self.documents.location("data"), prefix=prefix, product_id=product_id,
            version_key=key, frame_count=sum("l1" in f["tags"] for f in files), files=files,
            provenance=provenance, created_at=self.clock(),
        ))
        for older in self.store.datasets_of_product(product_id):
            if older.dataset_id != dataset_id and older.status == ACTIVE:
                self.store.deprecate_dataset(older.dataset_id, dataset_id)
        self.store.update_run(run_id, dataset_id=dataset_id)
        location = f"s3://{self.documents.location('data')}/{prefix}"
        subject, message = records.availability_message(dataset_id, product_id, key, run, location, files)
        logger.info("dataset catalogued", extra={"run_id": run_id, "dataset_id": dataset_id, "files": len(files)})
        return {"dataset_id": dataset_id, "proposal_id": run.proposal_id, "subject": subject,
                "message": json.dumps(message, indent=2, sort_keys=True)}

    def finish_run(self, run_id: str) -> dict:
        run = self.require_run(run_id)
        # Scratch first: a run that reads SUCCEEDED has no scratch left (a retried call deletes nothing more).
        removed = self.documents.delete_prefix("work", layout.scratch_prefix(run_id))
        at = self.clock()
        self.store.transition(run_id, SUCCEEDED, (RUNNING,), at, finished_at=at)
        self.store.give_back_slots(run)
        logger.info("run succeeded", extra={"run_id": run_id, "scratch_objects_removed": removed})
        self.notifier.nudge(f"run {run_id} finished")
        return {"run_id": run_id, "status": SUCCEEDED, "scratch_objects_removed": removed}

    def fail_run(self, run_id: str, error: dict) -> dict:
        run = self.require_run(run_id)
        at = self.clock()
        self.store.transition(run_id, FAILED, (SUBMITTED, RUNNING), at, error.get("Error"), finished_at=at, error=error)
        self.store.give_back_slots(run)
        logger.warning("run failed", extra={"run_id": run_id, "error": error.get("Error")})
        self.notifier.nudge(f"run {run_id} failed")
        return {"run_id": run_id, "status": FAILED}

    # -- tickets -----------------------------------------------------------------------------
    def file_ticket(self, ticket: Ticket) -> bool:
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

    def open_ticket_for_failure(self, run_id: str, error: dict, execution_arn: str | None) -> dict:
        """One ticket per attempt (a redrive starts a new one); a re-delivered failure maps to the same."""
        run = self.require_run(run_id)
        ticket_id = f"TKT-{run_id}-{run.attempt}"
        if self.store.ticket(ticket_id) is not None:
            return {"ticket_id": ticket_id, "created": False}
        facts = describe_failure(error)
        ticket = Ticket(
            ticket_id, kind=f"failure:{facts['kind']}", created_at=self.clock(),
            summary=f"run {run_id} ({run.recipe_key}) failed"
            + (f" in task {facts['failed_task']}" if facts["failed_task"] else "") + f": {facts['error_type']}",
            run_id=run_id, candidate_id=run.candidate_id, proposal_id=run.proposal_id, recipe=run.recipe_key,
            failed_task=facts["failed_task"], error_type=facts["error_type"], error_message=facts["error_message"],
            exit_code=facts["exit_code"], log_excerpt=self.executions.log_excerpt(facts["log_stream"]),
            links=self.executions.links(execution_arn, facts["log_stream"]),
            suggested_action=ACTIONS[facts["kind"]].format(run_id=run_id),
        )
        return {"ticket_id": ticket_id, "created": self.file_ticket(ticket)}

    def resolve_ticket(self, ticket_id: str, note: str, operator: str) -> Ticket:
        if self.store.ticket(ticket_id) is None:
            raise NotFound(f"no ticket {ticket_id!r}; `obsflow tickets list` shows the open ones")
        self.store.update_ticket(ticket_id, status="RESOLVED", resolution=note, resolved_by=operator,
                                 resolved_at=self.clock())
        return self.store.ticket(ticket_id)

    # -- manual by exception: retry, redrive -----------------------------------------------------
    def _ended(self, run_id: str, allowed: tuple[str, ...], verb: str) -> Run:
        run = self.require_run(run_id)
        if run.status not in allowed:
            raise NotAllowed(f"run {run_id} is {run.status}; only a {' or '.join(allowed)} run can be {verb}")
        return run

    def retry(self, run_id: str, overrides: dict[str, str]) -> Run:
        """A new run of the same recipe instance, its configuration adjusted, linked to the earlier run.

        Retrying a SUCCEEDED run reprocesses it: a new dataset of the same product, the old one
        DEPRECATED. The same retry asked twice names the same new run (its id derives from the overrides).
        """
        earlier = self._ended(run_id, (FAILED, SUCCEEDED), "retried")
        recipe = self.recipes.get(earlier.recipe, earlier.version)
        instance = self._instance_of(earlier)
        merged = {**(earlier.overrides or {}), **overrides}
        run = self._new_run(instance, recipe, int(earlier.priority), self.clock(), overrides=merged, retry_of=run_id)
        existing = self.store.run(run.run_id)
        if existing is not None:
            return existing
        self._save_run(run, instance)
        self.notifier.nudge(f"retry of {run_id}")
        return self.store.run(run.run_id)

    def redrive(self, run_id: str) -> Run:
        """Resume the failed run: a new execution of the same run; tasks that succeeded reuse their outputs."""
        run = self._ended(run_id, (FAILED,), "redriven")
        self.store.transition(run_id, READY, (FAILED,), self.clock(), "redrive",
                              redrives=run.redrives + 1, execution_arn=None, finished_at=None)
        self.notifier.nudge(f"redrive of {run_id}")
        return self.store.run(run_id)

    # -- manual processing ---------------------------------------------------------------------
    def _hold_for_operator(self, run: Run) -> None:
        """READY -> MANUAL with one ticket that says how to run it."""
        if not self.store.transition(run.run_id, MANUAL, (READY,), self.clock(), "manual by definition"):
            return
        self.file_ticket(Ticket(
            f"TKT-{run.run_id}-manual", kind="manual", created_at=self.clock(),
            summary=f"run {run.run_id} of {run.recipe_key} is manual by definition",
            run_id=run.run_id, candidate_id=run.candidate_id, proposal_id=run.proposal_id, recipe=run.recipe_key,
            suggested_action=f"`obsflow runs execute {run.run_id} --manual --note TEXT` on an operator machine",
        ))

    def execute_manually(self, run_id: str, note: str, operator: str, echo: Callable[[str], None] = print) -> Run:
        """Run a MANUAL or FAILED run's tasks here, then catalogue, notify and finish it."""
        if self.task_runner is None:
            raise ManualRunFailed("manual execution needs a machine that can run the task entrypoint")
        run = self.require_run(run_id)
        recipe = self.recipes.get(run.recipe, run.version)
        if not self.store.transition(run_id, RUNNING, (MANUAL, FAILED), self.clock(),
                                     f"manual execution by {operator}: {note}", started_at=self.clock(), error=None):
            raise ManualRunFailed(f"run {run_id} is {run.status}; only a MANUAL or FAILED run can be executed by hand")
        for level in recipe.levels():
            for task in level:
                echo(f"  {task.name}: running on this machine ...")
                exit_code, stdout, stderr = self.task_runner.run(recipe, task.name, run_id, operator, note)
                if exit_code != 0:
                    cause = {"task": task.name, "exit_code": exit_code, "stderr": stderr[-2000:]}
                    error = {"Error": "ManualTaskFailed", "Cause": json.dumps(cause)}
                    self.fail_run(run_id, error)
                    self.open_ticket_for_failure(run_id, error, None)
                    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
                    raise ManualRunFailed(f"task {task.name} failed (exit code {exit_code}): {last}")
                echo(f"  {task.name}: {stdout.strip().splitlines()[-1] if stdout.strip() else 'done'}")
        result = self.catalog(run_id)
        self.notifier.notify_pi(result["proposal_id"], result["dataset_id"], result["subject"], result["message"])
        self.finish_run(run_id)
        return self.store.run(run_id)

    # -- the backstop ------------------------------------------------------------------------------
    def backstop(self, now: dt.datetime) -> BackstopReport:
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
            self.file_ticket(Ticket(
                f"TKT-{candidate.candidate_id}-backstop", kind="backstop", created_at=now,
                summary=f"candidate {candidate.candidate_id} was processed by the {self.settings.backstop_days:g}-day "
                        f"backstop while incomplete ({what})",
                candidate_id=candidate.candidate_id, proposal_id=candidate.proposal_id,
                suggested_action="review the dataset; if the missing frames arrive later, reprocess the candidate",
            ))
        if report.released:
            self.notifier.nudge(f"backstop released {', '.join(report.released)}")
        return report
