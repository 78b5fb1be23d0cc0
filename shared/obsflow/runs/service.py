"""The run service: planning, submission, the run lifecycle, catalog, tickets and operator actions.

Dependencies come in (a store and the platform's ports), so unit tests run on fakes.
Every operation is idempotent: ids derive from what they identify and every status
change is conditional, so a re-delivered event or a second submitter changes nothing.

Run statuses: READY -> SUBMITTED (slots taken, execution started) -> RUNNING
-> SUCCEEDED | FAILED (slots given back); READY -> MANUAL for a manual-by-definition recipe.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from obsflow import embargo
from obsflow.embargo import EMBARGOED, Proposal
from obsflow.errors import NotFound, ObsflowError, TransientError
from obsflow.ingest.readiness import OpState, missing
from obsflow.observability import logger
from obsflow.recipes.jobs import job_definitions
from obsflow.recipes.model import RESOURCE_CLASSES, Recipe
from obsflow.runs import layout, records
from obsflow.runs.costs import run_cost
from obsflow.runs.domain import (
    ACTIVE,
    CAMPAIGN_PAUSED,
    CAMPAIGN_RUNNING,
    DEPRECATED,
    DEVELOPMENT,
    ERROR,
    REJECTED,
    INSTANCE_SUCCEEDED,
    NEVER_EXECUTED,
    QUEUED_FOR_REEXECUTION,
    WAITING_FOR_INPUT,
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
    InstanceInput,
    Run,
    Ticket,
    campaign_slot,
    derive_instance_state,
    utcnow,
)
from obsflow.runs.ports import Documents, Executions, Notifier, RecipeBook, RunStore, ServiceDesk, SubmissionSwitch, TaskRunner
from obsflow.runs.tickets import ACTIONS, describe_failure, with_failed_chunk
from obsflow.settings import Settings

PAUSED, ACTIVE_SUBMISSION = "paused", "active"
DECISIONS = ("keep-both", "deprecate", "reject")
FAILURE_LOG_LINES = 12  # of the failed task's own log, in `runs show`


def failure_ticket_id(run: Run) -> str:
    """The ticket a failure of the run's current attempt opens (a redrive failing of another cause gets its own)."""
    return f"TKT-{run.run_id}-{run.attempt}"


class NotAllowed(ObsflowError):
    """The run is not in a state that allows this operation."""


class ManualRunFailed(ObsflowError):
    pass


class ProposalMismatch(ObsflowError):
    """A candidate's proposal is not its observe frames' (ID___013): processing it would file one proposal's
    data under another and tell the wrong PI."""


@dataclass
class SubmitReport:
    paused: bool = False
    discovered: list[str] = field(default_factory=list)
    planned: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    waiting: dict[str, str] = field(default_factory=dict)
    manual: list[str] = field(default_factory=list)
    reviews: list[str] = field(default_factory=list)  # candidates whose conflicts got a review ticket


# What a review ticket suggests for each kind of conflict (ingest's rules, README "Quarantine").
REVIEW_ACTIONS = {
    "expected-changed": "once the frames are in, reprocess its dataset (`obsflow reprocess plan --datasets "
                        "DATASET`), or resolve this ticket to leave it",
    "late-frames": "reprocess its dataset with them (`obsflow reprocess plan --datasets DATASET`), or resolve this "
                   "ticket to leave them out",
    "document-conflict": "the first version is the one processed: to process the other, upload it under a new "
                         "candidate id; or resolve this ticket",
    "duplicate-file-id": "if the quarantined object is another frame, give it its own file id (ID___002) and "
                         "upload it again; else resolve this ticket",
    "key-overwritten": "the first version is the one processed: to process the new one, reprocess with "
                       "`obsflow reprocess plan --frame FILE_ID`; or resolve this ticket",
}


@dataclass
class BackstopReport:
    checked: int = 0
    released: list[str] = field(default_factory=list)


class CampaignGate:
    """Within one submitter pass: whether a campaign's run may start. A campaign's concurrency is a slot taken
    with the run's resource-class slots in one transaction, so two submitters cannot both take its last one."""

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

    # -- discovery: READY candidates -> recipe instances ----------------------------------
    def file_conflict_reviews(self, report: SubmitReport) -> None:
        """One review ticket for each candidate's conflicts that no ticket covers yet (ingest records them)."""
        for candidate, events, covered in self.store.candidates_pending_review():
            new = events[covered:]
            if new:
                kinds = sorted({event.kind for event in new})
                self.file_ticket(Ticket(
                    f"TKT-{candidate.candidate_id}-conflicts-{len(events)}", kind="review:conflict",
                    created_at=self.clock(), candidate_id=candidate.candidate_id, proposal_id=candidate.proposal_id,
                    summary=f"candidate {candidate.candidate_id}: {', '.join(kinds)} ({len(new)} event(s))",
                    error_message="\n".join(f"{e.at.isoformat()} {e.kind}: {e.detail}" for e in new)[:4000],
                    suggested_action=" | ".join(REVIEW_ACTIONS[kind] for kind in kinds)
                    + f" (`obsflow candidates show {candidate.candidate_id}` has the history)",
                ))
                report.reviews.append(candidate.candidate_id)
            self.store.mark_reviewed(candidate.candidate_id, len(events))

    def discover_ready_candidates(self, report: SubmitReport) -> None:
        for candidate in self.store.candidates_with_status(READY):
            try:
                report.discovered.extend(self.discover(candidate))
            except ProposalMismatch as exc:  # the ticket first: whoever sees the candidate HELD finds it
                self.file_ticket(Ticket(
                    f"TKT-{candidate.candidate_id}-proposal", kind="review:proposal", created_at=self.clock(),
                    summary=str(exc), candidate_id=candidate.candidate_id, proposal_id=candidate.proposal_id,
                    suggested_action="ask the summit which proposal the observation belongs to; send the candidate "
                                     "again, with that proposal, under a new candidate id",
                ))
                self.store.hold_candidate(candidate.candidate_id, str(exc))
                logger.warning("candidate held", extra={"candidate_id": candidate.candidate_id, "reason": str(exc)})
                report.held.append(candidate.candidate_id)
            except (NotFound, ValueError) as exc:
                # No recipe or rule applies, or nothing to process: a person has to decide; keep it visible.
                self.store.hold_candidate(candidate.candidate_id, str(exc))
                logger.warning("candidate held", extra={"candidate_id": candidate.candidate_id, "reason": str(exc)})
                report.held.append(candidate.candidate_id)

    def discover(self, candidate: Candidate) -> list[str]:
        """Insert every instance that applies to the candidate, once; returns those it inserted.

        A candidate that names a recipe gets one instance of it over all its frames;
        otherwise every discovery rule of its instrument is evaluated, upstream rules first.
        """
        observe = self.store.op_progress([candidate.observe_op]).get(candidate.observe_op)
        if observe is not None and observe.proposal_id and observe.proposal_id != candidate.proposal_id:
            raise ProposalMismatch(
                f"candidate {candidate.candidate_id} names proposal {candidate.proposal_id}, but the frames of its "
                f"observe OP {candidate.observe_op} belong to {observe.proposal_id} (ID___013): nothing is "
                "processed, catalogued or sent to either PI until someone decides")
        night = self.store.observed_on(candidate.observe_op)
        if night is None:
            raise ValueError(f"candidate {candidate.candidate_id} has no frames of its observe OP {candidate.observe_op}")
        inserted, ids, kinds = [], {}, {}
        if candidate.recipe:
            recipe = self.recipes.select(candidate.instrument, candidate.recipe)
            inputs = [InstanceInput("observe", "op", candidate.observe_op),
                      *(InstanceInput("calibration", "op", op) for op in candidate.calibration_ops)]
            instance_id = layout.instance_id(candidate.candidate_id, recipe.name, recipe.version)
            ids["named"] = self._insert(instance_id, recipe, candidate, inputs, night, None, inserted)
            kinds["named"] = recipe.kind
        else:
            progress = self.store.op_progress(candidate.op_ids)
            task_types = {(op.task_type or "").lower() for op in progress.values()}
            for rule in self.recipes.rules():
                if not rule.applies(candidate.instrument, candidate.observe_op, task_types):
                    continue
                inputs = self._rule_inputs(rule, candidate, progress, ids)
                if inputs is None:
                    continue  # an upstream rule did not apply
                recipe = self.recipes.get(rule.recipe)
                group = {"candidate": [candidate.candidate_id],
                         "calibration_ops": [candidate.proposal_id, *sorted(candidate.calibration_ops)],
                         "night": [candidate.proposal_id, candidate.instrument.upper(), night]}[rule.group_by]
                instance_id = layout.group_instance_id(rule.name, recipe.name, recipe.version, *group)
                ids[rule.name] = self._insert(instance_id, recipe, candidate, inputs, night, rule.name, inserted)
                kinds[rule.name] = recipe.kind
            if not ids:
                raise NotFound(f"no discovery rule applies to candidate {candidate.candidate_id} "
                               f"({candidate.instrument}, OPs of task types {', '.join(sorted(task_types))}); "
                               "name a recipe in the candidate's 'recipe' field, or add a rule")
        main = next((ids[name] for name, kind in kinds.items() if kind == "science"), list(ids.values())[-1])
        self.store.mark_candidate_planned(candidate.candidate_id, main, list(ids.values()))
        return inserted

    @staticmethod
    def _rule_inputs(rule, candidate: Candidate, progress: dict, ids: dict[str, str]) -> list[InstanceInput] | None:
        inputs = []
        for source in rule.inputs:
            if source.source == "observe_op":
                inputs.append(InstanceInput(source.role, "op", candidate.observe_op))
            elif source.source == "calibration_ops":
                for op_id in candidate.calibration_ops:
                    task_type = progress[op_id].task_type if op_id in progress else None
                    inputs.append(InstanceInput(source.role or (task_type or "calibration").lower(), "op", op_id))
            elif source.rule in ids:
                inputs.append(InstanceInput(source.role, "instance", ids[source.rule]))
            else:
                return None
        return inputs

    def _insert(self, instance_id: str, recipe: Recipe, candidate: Candidate, inputs: list[InstanceInput],
                night: str, rule: str | None, inserted: list[str]) -> str:
        """Create the instance, or add the candidate and any new inputs to it (never a second instance)."""
        existing = self.store.instance(instance_id)
        if existing is None:
            instance = Instance(
                instance_id, candidate_id=candidate.candidate_id, proposal_id=candidate.proposal_id,
                recipe=recipe.name, version=recipe.version, observed_on=night, created_at=self.clock(),
                inputs=inputs, reference=f"{night}/{candidate.proposal_id}", rule=rule,
                candidate_ids={candidate.candidate_id},
                priority=candidate.priority if candidate.priority is not None else recipe.priority,
            )
            if self.store.create_instance(instance):
                inserted.append(instance_id)
                logger.info("instance inserted", extra={"instance_id": instance_id, "recipe": recipe.key, "rule": rule,
                                                        "candidate_id": candidate.candidate_id})
                self.refresh_instance(instance_id)
                return instance_id
            existing = self.store.instance(instance_id)  # another submitter inserted it meanwhile
        self.store.add_candidate_to_instance(instance_id, candidate.candidate_id)
        new = [i for i in inputs if i not in existing.inputs]
        if new:
            self.store.add_inputs(instance_id, new)
            self._inputs_changed(existing, "new input(s): " + ", ".join(f"{i.role} {i.key}" for i in new))
        return instance_id

    def _inputs_changed(self, instance: Instance, why: str) -> None:
        """An instance already planned has new or changed inputs: it runs again (never a silent second instance)."""
        if instance.input_dataset_key is None:
            return  # not planned yet: its plan will include them
        self.store.update_instance(instance.instance_id, inputs_changed=why)
        logger.info("instance inputs changed", extra={"instance_id": instance.instance_id, "why": why})
        self.refresh_instance(instance.instance_id)

    # -- planning: instances whose inputs are all there -> runs -----------------------------
    def plan_pending_instances(self, report: SubmitReport) -> None:
        for state in (NEVER_EXECUTED, WAITING_FOR_INPUT, QUEUED_FOR_REEXECUTION):
            for instance in self.store.instances_with_state(state):
                if not instance.needs_plan:
                    continue
                try:
                    run_id = self.plan_instance(instance)
                except (NotFound, ValueError) as exc:
                    # This instance needs a person, who is told; the others keep flowing.
                    self._cannot_plan(instance, exc)
                    continue
                if run_id:
                    report.planned.append(run_id)

    def _cannot_plan(self, instance: Instance, exc: Exception) -> None:
        self.store.update_instance(instance.instance_id, state=ERROR, state_reason=f"cannot plan: {exc}")
        logger.error("instance cannot be planned", extra={"instance_id": instance.instance_id, "reason": str(exc)})
        self.file_ticket(Ticket(
            f"TKT-{instance.instance_id}-plan", kind="planning", created_at=self.clock(),
            summary=f"{instance.recipe} {instance.version} for {instance.reference} cannot be planned: {exc}",
            candidate_id=min(instance.candidate_ids, default=None), proposal_id=instance.proposal_id,
            recipe=f"{instance.recipe}@{instance.version}", error_message=str(exc),
            suggested_action=("fix what the message names (a parameter without a value effective on "
                              f"{instance.observed_on}: `obsflow recipes set-value {instance.recipe} PARAMETER VALUE "
                              f"--effective-from DATE --reason TEXT`), then `obsflow catalogue replan "
                              f"{instance.instance_id}`")))

    def replan(self, instance_id: str) -> Instance:
        """Plan an instance that could not be planned again, at the next submitter pass."""
        instance = self.store.instance(instance_id)
        if instance is None:
            raise NotFound(f"no recipe instance {instance_id!r}; `obsflow catalogue list --state ERROR` lists them")
        if instance.state != ERROR or instance.input_dataset_key is not None:
            raise NotAllowed(f"instance {instance_id} is {instance.state}"
                             + (" and planned" if instance.input_dataset_key else "")
                             + "; only one that could not be planned is planned again")
        self.store.update_instance(instance_id, state=NEVER_EXECUTED, state_reason="re-planned by an operator")
        self.refresh_instance(instance_id)
        self.notifier.nudge(f"re-plan of {instance_id}")
        return self.store.instance(instance_id)

    def _waiting_for(self, instance: Instance) -> str | None:
        """Why the instance cannot be planned yet: the upstream instances that have not succeeded."""
        reasons = []
        for upstream_id in instance.upstream_ids():
            upstream = self.store.instance(upstream_id)
            if upstream is None:
                reasons.append(f"{upstream_id} (not recorded)")
            elif upstream.state != INSTANCE_SUCCEEDED or upstream.dataset_id is None:
                reasons.append(f"{upstream_id} ({upstream.recipe}: {upstream.state}"
                               + (f", {upstream.state_reason}" if upstream.state_reason else "") + ")")
        return f"waiting for {'; '.join(reasons)}" if reasons else None

    def plan_instance(self, instance: Instance) -> str | None:
        """Write the input dataset and a READY run once every upstream instance has succeeded; the run id."""
        instance = self.store.instance(instance.instance_id)  # a listing may lag behind another submitter
        if not instance.needs_plan:
            return None
        waiting = self._waiting_for(instance)
        if waiting:
            if instance.state_reason != waiting:
                self.refresh_instance(instance.instance_id, waiting)
            return None
        recipe = self.recipes.get(instance.recipe, instance.version)
        upstream, planned_upstream = [], {}
        op_roles = {i.ref: i.role for i in instance.inputs if i.kind == "op"}
        frame_roles = {i.ref: i.role for i in instance.inputs if i.kind == "frame"}
        frames = [(frame, op_roles[frame.op_id]) for frame in self.store.frames_of_ops(sorted(op_roles))]
        chosen = self.store.frames_by_id(sorted(frame_roles))
        if len(chosen) != len(frame_roles):
            unknown = sorted(set(frame_roles) - {f.file_id for f in chosen})
            raise NotFound(f"instance {instance.instance_id} names frame(s) not in the inventory: {', '.join(unknown[:5])}")
        frames += [(frame, frame_roles[frame.file_id]) for frame in chosen if frame.op_id not in op_roles]
        for edge in instance.inputs:
            if edge.kind in ("instance", "dataset"):
                dataset_id = self.store.instance(edge.ref).dataset_id if edge.kind == "instance" else edge.ref
                dataset = self.store.dataset(dataset_id)
                if dataset is None:
                    raise NotFound(f"dataset {dataset_id} of input {edge.key} of instance {instance.instance_id} is gone")
                upstream.append(records.upstream_entry(edge.role, dataset))
                if edge.kind == "instance":
                    planned_upstream[edge.ref] = dataset_id
        if not frames and not upstream:
            raise ValueError(f"instance {instance.instance_id} has no input frames and no upstream datasets")
        document = records.input_dataset(instance, recipe, frames, upstream, recipe.instrument)
        digest = layout.digest_of(document)
        key = layout.input_dataset_key(instance.instance_id, digest if instance.run_ids else None)
        sha256 = self.documents.put_json("work", key, document)
        estimated_cpu_s, estimated_bytes = self.estimate(recipe, len(frames) + len(upstream))
        _, release, _ = self._release(instance.proposal_id, instance.observed_on, document)
        plan = dict(input_dataset_key=key, input_dataset_sha256=sha256, planned_upstream=planned_upstream,
                    estimated_cpu_s=estimated_cpu_s, estimated_bytes=estimated_bytes, release_date=release.isoformat())
        self.store.update_instance(instance.instance_id, inputs_changed=None, **plan)
        reexecution = digest if instance.run_ids else ""
        instance = dataclasses.replace(instance, **plan)
        run = self._new_run(instance, recipe, instance.priority, self.clock(), attempt=reexecution)
        if reexecution:
            run.history = [HistoryEntry(READY, run.created_at, f"re-execution: {instance.inputs_changed or 'inputs changed'}")]
        created = self._save_run(run, instance, recipe, observe_frames=sum(role == "observe" for _, role in frames))
        self.refresh_instance(instance.instance_id)
        if created:
            logger.info("run planned", extra={"instance_id": instance.instance_id, "run_id": run.run_id,
                                              "recipe": recipe.key})
        return run.run_id if created else None

    def estimate(self, recipe: Recipe, inputs: int) -> tuple[float, int]:
        """CPU-seconds and output bytes: measured per input over earlier runs of the version, else the recipe's."""
        measured = self.store.measurement(recipe.key)
        if measured and measured["frames"]:
            per_input = inputs / measured["frames"]
            return round(measured["cpu_seconds"] * per_input, 1), int(measured["output_bytes"] * per_input)
        return recipe.estimates.workload(inputs)

    def _new_run(self, instance: Instance, recipe: Recipe, priority: int, at: dt.datetime,
                 overrides: dict | None = None, retry_of: str | None = None, attempt: str = "") -> Run:
        if overrides is None:
            overrides = instance.overrides
        configuration = recipe.as_run_configuration(dt.date.fromisoformat(instance.observed_on), overrides)
        if retry_of:
            attempt = json.dumps(overrides, sort_keys=True)
        run_id = layout.run_id(instance.instance_id, retry_of or ("reexecution" if attempt else None), attempt)
        return Run(
            run_id, instance_id=instance.instance_id, candidate_id=instance.candidate_id,
            proposal_id=instance.proposal_id, recipe=recipe.name, version=recipe.version, priority=priority,
            resource_classes=recipe.resource_classes(), configuration=configuration, created_at=at,
            overrides=overrides, retry_of=retry_of, input_dataset_key=instance.input_dataset_key,
            input_dataset_sha256=instance.input_dataset_sha256, estimated_cpu_s=instance.estimated_cpu_s or 0.0,
            campaign=instance.campaign,
            history=[HistoryEntry(READY, at, f"retry of {retry_of}" if retry_of else "planned")],
        )

    def _save_run(self, run: Run, instance: Instance, recipe: Recipe, observe_frames: int | None = None) -> bool:
        """The run document first (tasks read it), then the run; True if the run is new. ``observe_frames``: how
        many the input dataset has (else it is read, for a data-parallel recipe's chunk counts)."""
        campaign = self.store.campaign(instance.campaign) if instance.campaign else None
        chunks = {}
        if any(task.data_parallel for task in recipe.tasks):
            if observe_frames is None:
                frames = self.documents.get_json("work", run.input_dataset_key or instance.input_dataset_key)["frames"]
                observe_frames = sum(f["role"] == "observe" for f in frames)
            chunks = recipe.chunks(run.configuration, observe_frames)
        self.documents.put_json("work", layout.run_document_key(run.run_id), records.run_document(
            run, instance, self.documents.location("work"), recipe, campaign, chunks=chunks))
        created = self.store.create_run(run)
        self.store.add_run_to_instance(instance.instance_id, run.run_id)
        return created

    def refresh_instance(self, instance_id: str, waiting_for: str | None = None) -> str:
        """Derive the instance's state from its runs (and what it waits for) and record it if it changed."""
        instance = self.store.instance(instance_id)
        runs = self.store.runs_of(instance)
        if waiting_for is None and not runs:
            waiting_for = self._waiting_for(instance)
        state, reason = derive_instance_state(instance, runs, waiting_for)
        ended = [r.finished_at for r in runs if r.finished_at]
        changes = {}
        if (state, reason) != (instance.state, instance.state_reason):
            changes.update(state=state, state_reason=reason)
        if ended and max(ended) != instance.date_processed:
            changes["date_processed"] = max(ended)
        if changes:
            self.store.update_instance(instance_id, **changes)
        return state

    # -- submission ---------------------------------------------------------------------
    def submit(self) -> SubmitReport:
        """File the review tickets conflicts owe, plan READY candidates, then start READY runs by priority within
        the run slots."""
        report = SubmitReport()
        self.file_conflict_reviews(report)
        self.discover_ready_candidates(report)
        self.plan_pending_instances(report)
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
        automated: dict[str, bool] = {}  # one recipe read per version and call, not per waiting run
        campaigns = CampaignGate(self.store)
        for run in self.store.runs_with_status(READY):
            if run.recipe_key not in automated:
                automated[run.recipe_key] = self.recipes.get(run.recipe, run.version).automated
            if not automated[run.recipe_key]:
                self._hold_for_operator(run)
                report.manual.append(run.run_id)
                continue
            reason = campaigns.holds(run) or self._waiting_reason(run, in_use) or campaigns.holds(run, fresh=True)
            if reason is None and not self.store.take_slots(run, {**self._capacity(), **campaigns.limits(run)},
                                                            self.clock()):
                in_use = self.store.slots_in_use(list(RESOURCE_CLASSES))  # someone else took a slot or the run
                reason = self._waiting_reason(run, in_use) or campaigns.holds(run, fresh=True)
                if reason is None:
                    continue  # another submitter started it
            if reason is not None:
                report.waiting[run.run_id] = reason
                if run.waiting_reason != reason:
                    self.store.note_waiting(run.run_id, reason)
                continue
            for rc in run.resource_classes:
                in_use[rc].add(run.run_id)
            campaigns.started(run)
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
        self.refresh_instance(run.instance_id)
        report.started.append(run.run_id)
        logger.info("run started", extra={"run_id": run.run_id, "execution_arn": execution_arn})

    def _resume_unlaunched(self, report: SubmitReport) -> None:
        """A submitter that stopped between taking slots and starting the execution left these."""
        for run in self.store.runs_with_status(SUBMITTED):
            if run.execution_arn is None:
                self._launch(run, report)

    def nudge(self, reason: str) -> None:
        """Ask the submitter to run soon (work has appeared)."""
        self.notifier.nudge(reason)

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
        self.refresh_instance(run.instance_id)
        campaign = self.store.campaign(run.campaign) if run.campaign else None
        developer_images = (campaign.job_definitions if campaign else None) or {}
        recipe = self.recipes.get(run.recipe, run.version)
        chunks = self.documents.get_json("work", layout.run_document_key(run_id)).get("chunks", {}) \
            if any(task.data_parallel for task in recipe.tasks) else {}
        return {"run_id": run_id, "recipe": run.recipe, "version": run.version, "proposal_id": run.proposal_id,
                "chunks": chunks,
                "share_identifier": layout.share_identifier(run.proposal_id), "scheduling_priority": int(run.priority),
                "job_definitions": job_definitions(self.settings, recipe, developer_images)}

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
                for record in self.task_records(run) for output in record.get("outputs", [])]

    def failure(self, run_id: str) -> dict | None:
        """Why a FAILED run failed, as its operator needs it: the failing task, its own last log lines (from
        the ticket) and what to do; None for a run that has not failed."""
        run = self.require_run(run_id)
        if run.status != FAILED:
            return None
        ticket = self._failure_ticket(run.run_id, run.attempt)
        if ticket is None:  # the ticket could not be opened: what the error itself says
            facts = describe_failure(run.error or {})
            return {"failed_task": facts["failed_task"], "error": facts["error_message"],
                    "suggested_action": ACTIONS[facts["kind"]].format(run_id=run_id)}
        log_lines = [line for line in (ticket.log_excerpt or "").splitlines() if line.strip()]
        return {"ticket_id": ticket.ticket_id, "kind": ticket.kind, "failed_task": ticket.failed_task,
                "exit_code": ticket.exit_code, "error": ticket.error_message, "task_log": log_lines[-FAILURE_LOG_LINES:],
                "suggested_action": ticket.suggested_action}

    def finished_tasks(self, run_id: str) -> set[str]:
        """The tasks of the run that finished (wrote their record), whatever the execution saw."""
        return {record["task"] for record in self.task_records(self.require_run(run_id))}

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
        """Copy the run's products to the data bucket and record the dataset; instances that consumed an
        earlier dataset of the same instance are queued for re-execution."""
        run = self.require_run(run_id)
        recipe = self.recipes.get(run.recipe, run.version)
        instance = self._instance_of(run)
        campaign = self.store.campaign(run.campaign) if run.campaign else None
        developer = campaign is not None and campaign.developer
        dataset_id = layout.dataset_id(run_id)
        prefix = layout.dataset_prefix(run.proposal_id, dataset_id, recipe.kind, campaign.name if developer else None)
        task_records = self.task_records(run)
        cost = run_cost(task_records, recipe, self.settings.prices, succeeded=True, notify_pi=not developer)
        input_dataset = self.documents.get_json("work", run.input_dataset_key or instance.input_dataset_key)
        product_id = layout.product_id_of(input_dataset)
        today = self.clock().date()
        release_basis, release, proposal = self._release(run.proposal_id, instance.observed_on, input_dataset)
        embargoed, tags = embargo.is_embargoed(release, today), embargo.tags(run.proposal_id, release, today)
        files = []
        keep_all = campaign is not None and campaign.keep_intermediates
        for record in task_records:
            for output in record.get("outputs", []):
                intermediate = "product" not in output["tags"]
                if intermediate and not keep_all:
                    continue
                key = prefix + (f"intermediates/{record['task']}/" if intermediate else "") + output["name"]
                self.documents.copy("work", output["key"], "data", key, tags)
                files.append({"name": output["name"], "key": key, "sha256": output["sha256"], "size": output["size"],
                              "task": record["task"], "tags": output["tags"], "content_type": output.get("content_type")})
        self.documents.put_text("data", prefix + "SHA256SUMS",
                                "".join(f"{f['sha256']}  {f['name']}\n" for f in sorted(files, key=lambda f: f["name"])),
                                tags)
        provenance = records.provenance(run, input_dataset, task_records)
        self.documents.put_json("data", prefix + "provenance.json", provenance, tags)
        key = records.version_key(input_dataset, run, task_records, recipe)
        self.store.create_dataset(Dataset(
            dataset_id, run_id=run_id, proposal_id=run.proposal_id, candidate_id=run.candidate_id,
            recipe=run.recipe_key, bucket=self.documents.location("data"), prefix=prefix, product_id=product_id,
            version_key=key, frame_count=sum("l1" in f["tags"] for f in files), files=files,
            provenance=provenance, created_at=self.clock(), kind=recipe.kind, instance_id=run.instance_id,
            reference=instance.reference, recipe_name=run.recipe,
            code_version=",".join(sorted({r["code_version"] for r in task_records})) or None, cost=cost,
            campaign=run.campaign, status=DEVELOPMENT if developer else ACTIVE,
            expires_at=self.clock() + dt.timedelta(days=campaign.retention_days) if developer else None,
            release_date=release.isoformat(), release_basis=release_basis,
            embargo=EMBARGOED if embargoed else None,
        ))
        if not developer:  # a developer's dataset is no version of the product: it never competes
            self._ask_for_decision(dataset_id, product_id, recipe.kind, run)
        output_bytes = sum(f["size"] for f in files)
        self.store.update_run(run_id, dataset_id=dataset_id, output_bytes=output_bytes,
                              measured_cpu_s=cost["batch_vcpu_s"], cost=cost)
        self.store.update_instance(run.instance_id, dataset_id=dataset_id)
        self._downstream_of_new_dataset(run.instance_id, dataset_id)
        location = f"s3://{self.documents.location('data')}/{prefix}"
        subject, message = records.availability_message(dataset_id, product_id, key, run, location, files, release,
                                                        embargoed, proposal)
        logger.info("dataset catalogued", extra={"run_id": run_id, "dataset_id": dataset_id, "files": len(files),
                                                 "kind": recipe.kind})
        return {"dataset_id": dataset_id, "proposal_id": run.proposal_id, "subject": subject,
                "message": json.dumps(message, indent=2, sort_keys=True), "kind": recipe.kind,
                "notify_pi": recipe.kind == "science" and not developer}

    def _release(self, proposal_id: str, observed_on: str, input_dataset: dict) -> tuple[dict, dt.date, Proposal | None]:
        """The release basis of what an input dataset makes, its release date (the latest of its inputs') and its
        proposal, from the proposal documents in force."""
        upstream = [entry["release_basis"] if "release_basis" in entry  # else planned before they were kept
                    else getattr(self.store.dataset(entry["dataset_id"]), "release_basis", {})
                    for entry in input_dataset.get("upstream", [])]
        release_basis = embargo.basis(proposal_id, observed_on,
                                      ((f.get("proposal_id"), f["date_obs"]) for f in input_dataset["frames"]), upstream)
        proposals = self.store.proposals(set(release_basis))
        release = embargo.release_of(release_basis, proposals, self.settings.default_embargo_days)
        return release_basis, release, proposals.get(proposal_id)

    def _ask_for_decision(self, dataset_id: str, product_id: str, kind: str, run: Run) -> None:
        """A new version of a product that has an ACTIVE one: both stay ACTIVE, and data quality decides."""
        active = sorted(d.dataset_id for d in self.store.datasets_of_product(product_id)
                        if d.dataset_id != dataset_id and d.status == ACTIVE and d.kind == kind)
        if not active:
            return
        self.file_ticket(Ticket(
            layout.decision_ticket_id(dataset_id), kind="review:decision", created_at=self.clock(),
            summary=f"dataset {dataset_id} is a new version of product {product_id}, which has ACTIVE "
                    f"{', '.join(active)}: decide which to keep",
            run_id=run.run_id, candidate_id=run.candidate_id, proposal_id=run.proposal_id, recipe=run.recipe_key,
            suggested_action=f"compare them (`obsflow datasets show ID`), then `obsflow datasets decide {dataset_id} "
                             f"--deprecate {active[0]} | --keep-both | --reject --reason TEXT`",
        ))

    def decide(self, dataset_id: str, action: str, reason: str, by: str, old_id: str | None = None) -> Dataset:
        """Record a data-quality decision on a new version: keep both ACTIVE, deprecate an older version of
        its product in its favour, or reject it. Asking the same decision again changes nothing."""
        new = self.require_dataset(dataset_id)
        if action not in DECISIONS:
            raise ValueError(f"unknown decision {action!r}: one of {', '.join(DECISIONS)}")
        if not reason.strip():
            raise ValueError("a decision needs a reason (--reason TEXT): it is kept with the dataset")
        decision = {"decision": action, "by": by, "at": self.clock().isoformat(), "reason": reason}
        if action == "deprecate":
            old = self.require_dataset(old_id or "")
            if old.product_id != new.product_id or old.dataset_id == new.dataset_id:
                raise NotAllowed(f"dataset {old.dataset_id} is not another version of product {new.product_id} "
                                 f"(it is of {old.product_id}); `obsflow datasets show {dataset_id}` lists its versions")
            if old.status == DEPRECATED and old.superseded_by == dataset_id:
                return new
            if old.status != ACTIVE or new.status != ACTIVE:
                raise NotAllowed(f"only an ACTIVE dataset can be deprecated in favour of an ACTIVE one: {old.dataset_id} "
                                 f"is {old.status}, {dataset_id} is {new.status}")
            decision["deprecated"] = old.dataset_id
            self.store.update_dataset(old.dataset_id, status=DEPRECATED, superseded_by=dataset_id,
                                      decisions=[*old.decisions, decision])
        elif any(d["decision"] == action for d in new.decisions):
            return new
        elif action == "keep-both" and (deprecated := [d for d in new.decisions if d["decision"] == "deprecate"]):
            raise NotAllowed(f"dataset {dataset_id} already replaced {deprecated[-1]['deprecated']} (deprecated by "
                             f"{deprecated[-1]['by']} at {deprecated[-1]['at']}): keeping both contradicts it")
        elif new.status != ACTIVE:
            raise NotAllowed(f"dataset {dataset_id} is {new.status}; a decision applies to an ACTIVE dataset")
        status = REJECTED if action == "reject" else new.status
        self.store.update_dataset(dataset_id, status=status, decisions=[*new.decisions, decision])
        if action == "reject":
            self._fall_back_from(new)
        ticket = self.store.ticket(layout.decision_ticket_id(dataset_id))
        if ticket is not None and ticket.status == "OPEN":
            self.resolve_ticket(ticket.ticket_id, f"{action}: {reason}", by)
        logger.info("dataset decision", extra={"dataset_id": dataset_id, **decision})
        return self.store.dataset(dataset_id)

    def require_dataset(self, dataset_id: str) -> Dataset:
        dataset = self.store.dataset(dataset_id)
        if dataset is None:
            raise NotFound(f"no dataset {dataset_id!r}; `obsflow datasets list` shows them")
        return dataset

    def _fall_back_from(self, rejected: Dataset) -> None:
        """A rejected dataset is no input: its instance's consumers go back to its newest ACTIVE dataset."""
        instance = self.store.instance(rejected.instance_id) if rejected.instance_id else None
        if instance is None or instance.dataset_id != rejected.dataset_id:
            return
        others = [d for d in self.store.datasets_of_instance(instance.instance_id) if d.status == ACTIVE]
        if others:
            newest = max(others, key=lambda d: d.created_at).dataset_id
            self.store.update_instance(instance.instance_id, dataset_id=newest)
            self._downstream_of_new_dataset(instance.instance_id, newest)

    def _downstream_of_new_dataset(self, instance_id: str, dataset_id: str) -> None:
        """The discovery agent on a catalogued dataset: a consumer that was planned on another dataset of
        this instance runs again; one not yet planned will take this one."""
        for user_id in self.store.users_of(f"instance:{instance_id}"):
            user = self.store.instance(user_id)
            used = user.planned_upstream.get(instance_id) if user else None
            if used is not None and used != dataset_id:
                self._inputs_changed(user, f"input {instance_id} has a new dataset {dataset_id} (was {used})")

    def finish_run(self, run_id: str) -> dict:
        run = self.require_run(run_id)
        at = self.clock()
        if self.store.transition(run_id, SUCCEEDED, (RUNNING,), at, finished_at=at):
            self._record_cost(self.require_run(run_id))
        self.store.give_back_slots(run)
        self.refresh_instance(run.instance_id)
        logger.info("run succeeded", extra={"run_id": run_id})
        self.notifier.nudge(f"run {run_id} finished")
        return {"run_id": run_id, "status": SUCCEEDED}

    def fail_run(self, run_id: str, error: dict) -> dict:
        run = self.require_run(run_id)
        at = self.clock()
        cost = run_cost(self.task_records(run), self.recipes.get(run.recipe, run.version), self.settings.prices,
                        succeeded=False)
        if run.campaign and run.status in (SUBMITTED, RUNNING):
            # Before the run ends: a submitter then never sees the campaign's slot free while it should pause.
            self._pause_campaign_after_failures(run.campaign, run.instance_id)
        self.store.transition(run_id, FAILED, (SUBMITTED, RUNNING), at, error.get("Error"), finished_at=at, error=error,
                              cost=cost)
        self.store.give_back_slots(run)
        self.refresh_instance(run.instance_id)
        logger.warning("run failed", extra={"run_id": run_id, "error": error.get("Error")})
        self.notifier.nudge(f"run {run_id} failed")
        return {"run_id": run_id, "status": FAILED}

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
        self.file_ticket(Ticket(  # first: whoever sees the campaign PAUSED finds it
            f"TKT-campaign-{name}-paused-{len(campaign.history)}", kind="review:campaign", created_at=self.clock(),
            summary=f"campaign {name} {reason}: {', '.join(failed[:5])}",
            suggested_action=f"read the failed runs' tickets (`obsflow campaigns show {name}`), fix the cause, then "
                             f"`obsflow campaigns resume {name}` (or `cancel`)",
        ))
        self.store.update_campaign(name, status=CAMPAIGN_PAUSED, status_reason=reason, history=[
            *campaign.history, {"at": self.clock().isoformat(), "status": CAMPAIGN_PAUSED, "by": "obsflow", "why": reason}])
        logger.warning("campaign paused", extra={"campaign": name, "failed": len(failed)})

    def _record_cost(self, run: Run) -> None:
        """Once per successful run: what it cost, so later estimates of its recipe version are measured ones."""
        if run.measured_cpu_s is None:
            return
        document = self.documents.get_json("work", run.input_dataset_key) if run.input_dataset_key else {}
        inputs = len(document.get("frames", [])) + len(document.get("upstream", []))
        self.store.record_measurement(run.recipe_key, inputs, run.measured_cpu_s, run.output_bytes or 0)

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
        """One ticket per cause: a re-delivered failure maps to its attempt's ticket, and a redriven attempt that
        fails of the same cause (task, error, exit code) as the attempt before is added to that ticket, which is
        reopened, instead of opening a second one."""
        run = self.require_run(run_id)
        current = self._failure_ticket(run_id, run.attempt)
        if current is not None:
            return {"ticket_id": current.ticket_id, "created": False}
        facts = describe_failure(error)
        if facts.get("array_job_id"):
            facts = with_failed_chunk(facts, self.executions.failed_chunk(facts["array_job_id"]))
        earlier = self._failure_ticket(run_id, run.attempt - 1)
        cause = (facts["failed_task"], facts["error_type"], facts["error_message"], facts["exit_code"])
        if earlier is not None and (earlier.failed_task, earlier.error_type, earlier.error_message,
                                    earlier.exit_code) == cause:
            attempts = [*(earlier.attempts or [run.attempt - 1]), run.attempt]
            self.store.update_ticket(earlier.ticket_id, attempts=attempts, status="OPEN", resolved_at=None,
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
        return {"ticket_id": ticket_id, "created": self.file_ticket(ticket)}

    def _failure_ticket(self, run_id: str, attempt: int) -> Ticket | None:
        """The ticket of an attempt's failure: its own, or an earlier attempt's whose cause it repeated."""
        for earlier in range(attempt, 0, -1):
            ticket = self.store.ticket(f"TKT-{run_id}-{earlier}")
            if ticket is not None:
                return ticket if earlier == attempt or attempt in (ticket.attempts or ()) else None
        return None

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

        Retrying a SUCCEEDED run reprocesses it: a new dataset of the same product; both stay ACTIVE until
        a data-quality decision. The same retry asked twice names the same new run (its id derives from
        the overrides).
        """
        earlier = self._ended(run_id, (FAILED, SUCCEEDED), "retried")
        recipe = self.recipes.get(earlier.recipe, earlier.version)
        instance = self._instance_of(earlier)
        merged = {**(earlier.overrides or {}), **overrides}
        run = self._new_run(instance, recipe, int(earlier.priority), self.clock(), overrides=merged, retry_of=run_id)
        run.input_dataset_key = earlier.input_dataset_key or instance.input_dataset_key
        run.input_dataset_sha256 = earlier.input_dataset_sha256 or instance.input_dataset_sha256
        existing = self.store.run(run.run_id)
        if existing is not None:
            return existing
        self._save_run(run, instance, recipe)
        self.refresh_instance(instance.instance_id)
        self.notifier.nudge(f"retry of {run_id}")
        return self.store.run(run.run_id)

    def redrive(self, run_id: str) -> Run:
        """Resume the failed run: a new execution of the same run; tasks that succeeded reuse their outputs.
        Refused for a failure of the run's configuration or science, which the same run would meet again."""
        run = self._ended(run_id, (FAILED,), "redriven")
        ticket = self._failure_ticket(run.run_id, run.attempt)
        if ticket is not None and ticket.kind in ("failure:configuration", "failure:science"):
            kind = ticket.kind.split(":")[1]
            raise NotAllowed(f"run {run_id} failed on its {kind} (task {ticket.failed_task}: {ticket.error_message}); "
                             f"a redrive would run it the same way again. Instead: {ticket.suggested_action}")
        self.store.transition(run_id, READY, (FAILED,), self.clock(), "redrive",
                              redrives=run.redrives + 1, execution_arn=None, finished_at=None)
        self.refresh_instance(run.instance_id)
        self.notifier.nudge(f"redrive of {run_id}")
        return self.store.run(run_id)

    # -- manual processing ---------------------------------------------------------------------
    def _hold_for_operator(self, run: Run) -> None:
        """READY -> MANUAL with one ticket that says how to run it (filed first, once: whoever sees the run
        MANUAL finds it)."""
        self.file_ticket(Ticket(
            f"TKT-{run.run_id}-manual", kind="manual", created_at=self.clock(),
            summary=f"run {run.run_id} of {run.recipe_key} is manual by definition",
            run_id=run.run_id, candidate_id=run.candidate_id, proposal_id=run.proposal_id, recipe=run.recipe_key,
            suggested_action=f"`obsflow runs execute {run.run_id} --manual --note TEXT` on an operator machine",
        ))
        if self.store.transition(run.run_id, MANUAL, (READY,), self.clock(), "manual by definition"):
            self.refresh_instance(run.instance_id)

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
        if result["notify_pi"]:
            self.notifier.notify_pi(result["proposal_id"], result["dataset_id"], result["subject"], result["message"])
        self.finish_run(run_id)
        return self.store.run(run_id)

    # -- faults, for tests, demos and game days ------------------------------------------------
    def inject_fault(self, run_id: str, task: str, kind: str, chunk: int | None = None) -> None:
        """Make ``task`` of the run fail: ``configuration`` (exit 2, every time) or ``outage`` (exit 3, once);
        ``chunk``: only that chunk of a data-parallel task."""
        run = self.require_run(run_id)
        self.recipes.get(run.recipe, run.version).task(task)  # RecipeError for an unknown task
        if kind not in ("configuration", "outage"):
            raise ValueError(f"unknown fault kind {kind!r}: configuration or outage")
        self.documents.put_json("work", layout.fault_key(run_id, task), {"kind": kind, "task": task, "chunk": chunk})

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

