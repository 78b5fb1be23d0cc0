"""Planning: READY candidates -> recipe instances (discovery), and instances whose inputs are all there -> runs.

An instance is inserted once (its id derives from what it applies to), its state derived from its runs; an
instance that cannot be planned goes to ERROR with a ticket that says what to do.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

from obsflow import embargo
from obsflow.embargo import Proposal
from obsflow.errors import NotFound, ObsflowError
from obsflow.observability import logger
from obsflow.recipes.model import Recipe
from obsflow.runs import layout, records
from obsflow.runs.association import association_score
from obsflow.runs.certification import pending_reason
from obsflow.runs.context import NotAllowed, Part, SubmitReport
from obsflow.runs.domain import (
    BAD_FRAME,
    ERROR,
    INSTANCE_SUCCEEDED,
    NEVER_EXECUTED,
    QUEUED_FOR_REEXECUTION,
    READY,
    WAITING_FOR_INPUT,
    Candidate,
    Dataset,
    FrameRef,
    HistoryEntry,
    Instance,
    InstanceInput,
    Run,
    Ticket,
    derive_instance_state,
)
from obsflow.runs.ticketing import Tickets
from obsflow.statuses import CERTIFICATION_REJECTED, CERTIFIED


# The states in which an instance is planned when due (ERROR waits for `obsflow catalogue replan`).
PLANNABLE_STATES = (NEVER_EXECUTED, WAITING_FOR_INPUT, QUEUED_FOR_REEXECUTION)
# Upstream instances a waiting reason names; a night's summary waits for thousands, and a reason is stored whole.
NAMED_IN_REASON = 5


class ProposalMismatch(ObsflowError):
    """A candidate's proposal is not its observe frames' (ID___013): processing it would file one proposal's
    data under another and tell the wrong PI."""


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


class Planning(Part):
    def __init__(self, ctx, tickets: Tickets):
        super().__init__(ctx)
        self.tickets = tickets

    def file_conflict_reviews(self, report: SubmitReport) -> None:
        """One review ticket for each candidate's conflicts that no ticket covers yet (ingest records them)."""
        for candidate, events, covered in self.store.candidates_pending_review():
            new = events[covered:]
            if new:
                kinds = sorted({event.kind for event in new})
                self.tickets.file(Ticket(
                    f"TKT-{candidate.candidate_id}-conflicts-{len(events)}", kind="review:conflict",
                    created_at=self.clock(), candidate_id=candidate.candidate_id, proposal_id=candidate.proposal_id,
                    summary=f"candidate {candidate.candidate_id}: {', '.join(kinds)} ({len(new)} event(s))",
                    error_message="\n".join(f"{e.at.isoformat()} {e.kind}: {e.detail}" for e in new)[:4000],
                    suggested_action=" | ".join(REVIEW_ACTIONS[kind] for kind in kinds)
                    + f" (`obsflow candidates show {candidate.candidate_id}` has the history)",
                ))
                report.reviews.append(candidate.candidate_id)
            self.store.mark_reviewed(candidate.candidate_id, len(events))

    def discover_ready_candidates(self, report: SubmitReport, until: float) -> None:
        """Discover the READY candidates' instances, until ``until`` (``elapsed``'s time): what is left stays READY."""
        for candidate in self.store.candidates_with_status(READY):
            if self.elapsed() >= until:
                report.cut_short.append("discovery")
                return
            try:
                report.discovered.extend(self.discover(candidate))
            except ProposalMismatch as exc:  # the ticket first: whoever sees the candidate HELD finds it
                self.tickets.file(Ticket(
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
                owner, on = candidate.proposal_id, night
                if rule.group_by == "calibration_ops":
                    group, owner, on = self._calibration_set(candidate, progress, night)
                else:
                    group = {"candidate": [candidate.candidate_id],
                             "night": [candidate.proposal_id, candidate.instrument.upper(), night]}[rule.group_by]
                instance_id = layout.group_instance_id(rule.name, recipe.name, recipe.version, *group)
                ids[rule.name] = self._insert(instance_id, recipe, candidate, inputs, on, rule.name, inserted, owner)
                kinds[rule.name] = recipe.kind
            if not ids:
                raise NotFound(f"no discovery rule applies to candidate {candidate.candidate_id} "
                               f"({candidate.instrument}, OPs of task types {', '.join(sorted(task_types))}); "
                               "name a recipe in the candidate's 'recipe' field, or add a rule")
        main = next((ids[name] for name, kind in kinds.items() if kind == "science"), list(ids.values())[-1])
        self.store.mark_candidate_planned(candidate.candidate_id, main, list(ids.values()))
        return inserted

    def _calibration_set(self, candidate: Candidate, progress: dict, night: str) -> tuple[list[str], str, str]:
        """What makes one calibration instance, whose proposal and of which night. A proposal's own calibration OPs
        serve it alone: one instance per proposal and OPs. Those of an observatory calibration program
        (Settings.calibration_programs) are shared across proposals by date and setup (exposure time, filter,
        camera): one instance per program, night and setup, under the program's proposal."""
        owners = {getattr(progress.get(op), "proposal_id", None) for op in candidate.calibration_ops}
        program = next(iter(owners)) if len(owners) == 1 else None
        if program not in self.settings.calibration_programs or program == candidate.proposal_id:
            return [candidate.proposal_id, *sorted(candidate.calibration_ops)], candidate.proposal_id, night
        frames = self.store.frames_of_ops(sorted(candidate.calibration_ops))
        on = min((f.date_obs for f in frames), default=night)[:10]
        setup = sorted({f"{f.exposure_ms}ms/{f.filter}/{f.camera}" for f in frames})
        return [program, "date", on, "setup", *setup], program, on

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
                night: str, rule: str | None, inserted: list[str], proposal_id: str | None = None) -> str:
        """Create the instance, or add the candidate and any new inputs to it (never a second instance);
        ``proposal_id``: whose it is (a calibration program's shared calibrations), else the candidate's."""
        existing = self.store.instances_without_inputs([instance_id]).get(instance_id)
        proposal_id = proposal_id or candidate.proposal_id
        if existing is None:
            instance = Instance(
                instance_id, candidate_id=candidate.candidate_id, proposal_id=proposal_id,
                recipe=recipe.name, version=recipe.version, observed_on=night, created_at=self.clock(),
                inputs=inputs, reference=f"{night}/{proposal_id}", rule=rule,
                candidate_ids={candidate.candidate_id},
                priority=candidate.priority if candidate.priority is not None else recipe.priority,
            )
            if self.store.create_instance(instance):
                inserted.append(instance_id)
                logger.info("instance inserted", extra={"instance_id": instance_id, "recipe": recipe.key, "rule": rule,
                                                        "candidate_id": candidate.candidate_id})
                self.refresh_instance(instance_id)
                return instance_id
            existing = self.store.instances_without_inputs([instance_id])[instance_id]  # inserted meanwhile
        self.store.add_candidate_to_instance(instance_id, candidate.candidate_id)
        new = self.store.missing_inputs(instance_id, inputs)  # a night's instance has thousands: not read
        if new:
            self.store.add_inputs(instance_id, new)
            self.inputs_changed(existing, "new input(s): " + ", ".join(f"{i.role} {i.key}" for i in new))
        return instance_id

    def inputs_changed(self, instance: Instance, why: str) -> None:
        """An instance already planned has new or changed inputs: it runs again (never a silent second instance)."""
        if instance.input_dataset_key is None:
            return  # not planned yet: its plan will include them
        self.store.update_instance(instance.instance_id, inputs_changed=why)
        self.store.mark_due_for_planning([instance.instance_id], self.clock())
        logger.info("instance inputs changed", extra={"instance_id": instance.instance_id, "why": why})
        self.refresh_instance(instance.instance_id)

    def plan_pending_instances(self, report: SubmitReport, until: float) -> None:
        """Look at each instance marked due, once: plan it, or leave it waiting until what it waits for moves
        (which marks it due again). Instances that merely wait are never read. Until ``until``: what is left
        stays marked due."""
        for instance_id, mark in self.store.instances_due_for_planning():
            if self.elapsed() >= until:
                report.cut_short.append("planning")
                return
            instance = self.store.instance(instance_id)
            if instance is not None and instance.state in PLANNABLE_STATES and instance.needs_plan:
                try:
                    run_id = self._plan(instance)
                except (NotFound, ValueError) as exc:
                    # This instance needs a person, who is told; the others keep flowing.
                    self._cannot_plan(instance, exc)
                else:
                    if run_id:
                        report.planned.append(run_id)
            self.store.planning_looked_at(instance_id, mark)

    def _cannot_plan(self, instance: Instance, exc: Exception) -> None:
        self.store.update_instance(instance.instance_id, state=ERROR, state_reason=f"cannot plan: {exc}")
        self.wake_users([f"instance:{instance.instance_id}"])  # what waits for it says so
        logger.error("instance cannot be planned", extra={"instance_id": instance.instance_id, "reason": str(exc)})
        self.tickets.file(Ticket(
            f"TKT-{instance.instance_id}-plan", kind="planning", created_at=self.clock(),
            summary=f"{instance.recipe} {instance.version} for {instance.reference} cannot be planned: {exc}",
            candidate_id=min(instance.candidate_ids, default=None), proposal_id=instance.proposal_id,
            recipe=f"{instance.recipe}@{instance.version}", error_message=str(exc),
            suggested_action=("fix what the message names (a parameter without a value effective on "
                              f"{instance.observed_on}: `obsflow recipes set-value {instance.recipe} PARAMETER VALUE "
                              f"--effective-from DATE --reason TEXT`), then `obsflow catalogue replan "
                              f"{instance.instance_id}`")))

    def mark_bad_frames(self, file_ids: list[str], by: str, reason: str) -> int:
        """Record frames as bad, with who, when and why (a tag statement); how many were not marked before."""
        _require_reason(reason, "the frames are bad")
        known = {frame.file_id for frame in self.store.frames_by_id(sorted(set(file_ids)))}
        unknown = sorted(set(file_ids) - known)
        if unknown:
            raise NotFound(f"{len(unknown)} id(s) are no frame in the inventory: {', '.join(unknown[:5])}; "
                           "`obsflow frames list` shows them")
        return self.store.add_tags(BAD_FRAME, sorted(known), by, reason, self.clock())

    def unmark_bad_frames(self, file_ids: list[str], by: str, reason: str) -> int:
        """Take marks back, with who, when and why (the mark is kept, withdrawn): input datasets planned after use
        the frames again. How many were marked."""
        _require_reason(reason, "the frames are no longer bad")
        return self.store.withdraw_tags(BAD_FRAME, sorted(set(file_ids)), by, reason, self.clock())

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
        self.store.mark_due_for_planning([instance_id], self.clock())
        self.refresh_instance(instance_id)
        self.notifier.nudge(f"re-plan of {instance_id}")
        return self.store.instance(instance_id)

    def _waiting_for(self, instance: Instance) -> str | None:
        """Why the instance cannot be planned yet: the upstream instances that have not succeeded, then the master
        calibrations among its inputs that are not certified."""
        reasons, calibrations = [], []
        upstream_ids = instance.upstream_ids()
        states = self.store.instances_without_inputs(upstream_ids)
        for upstream_id in upstream_ids:
            upstream = states.get(upstream_id)
            if upstream is None:
                reasons.append(f"{upstream_id} (not recorded)")
            elif upstream.state != INSTANCE_SUCCEEDED or upstream.dataset_id is None:
                reasons.append(f"{upstream_id} ({upstream.recipe}: {upstream.state}"
                               + (f", {upstream.state_reason}" if upstream.state_reason else "") + ")")
            else:
                calibrations.append(upstream.dataset_id)
        if reasons:
            more = len(reasons) - NAMED_IN_REASON
            return (f"waiting for {'; '.join(reasons[:NAMED_IN_REASON])}"
                    + (f"; and {more} more of its {len(upstream_ids)} upstream instances" if more > 0 else ""))
        calibrations += [edge.ref for edge in instance.inputs if edge.kind == "dataset"]
        uncertified = [d for d in map(self.store.dataset, calibrations)
                       if d is not None and d.certification not in (None, CERTIFIED)]
        for dataset in uncertified:
            if dataset.certification == CERTIFICATION_REJECTED:
                self._rejected_input(instance, dataset)
        return "; ".join(pending_reason(d) for d in uncertified) or None

    def _rejected_input(self, instance: Instance, calibration: Dataset) -> None:
        """One ticket per instance left waiting on a rejected calibration: it is planned on none until one is."""
        self.tickets.file(Ticket(
            f"TKT-{instance.instance_id}-rejected-{calibration.dataset_id}", kind="review:certification",
            created_at=self.clock(), candidate_id=min(instance.candidate_ids, default=None),
            proposal_id=instance.proposal_id, recipe=f"{instance.recipe}@{instance.version}",
            summary=f"{instance.recipe} {instance.version} for {instance.reference} waits: its calibration "
                    f"{calibration.dataset_id} was rejected",
            suggested_action=pending_reason(calibration)))

    def plan_instance(self, instance: Instance) -> str | None:
        """Write the input dataset and a READY run once every upstream instance has succeeded; the run id."""
        instance = self.store.instance(instance.instance_id)  # a listing may lag behind another submitter
        return self._plan(instance) if instance.needs_plan else None

    def _plan(self, instance: Instance) -> str | None:
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
        bad = set(self.store.tagged(BAD_FRAME))
        left_out = sorted(frame.file_id for frame, _ in frames if frame.file_id in bad)
        frames = [(frame, role) for frame, role in frames if frame.file_id not in bad]
        upstream_states = self.store.instances_without_inputs(instance.upstream_ids())
        for edge in instance.inputs:
            if edge.kind in ("instance", "dataset"):
                dataset_id = upstream_states[edge.ref].dataset_id if edge.kind == "instance" else edge.ref
                dataset = self.store.dataset(dataset_id)
                if dataset is None:
                    raise NotFound(f"dataset {dataset_id} of input {edge.key} of instance {instance.instance_id} is gone")
                entry = records.upstream_entry(edge.role, dataset)
                if dataset.kind == "calibration":
                    observe = [frame for frame, role in frames if role == "observe"]
                    entry["association"] = association_score(observe, self._frames_of(dataset))
                upstream.append(entry)
                if edge.kind == "instance":
                    planned_upstream[edge.ref] = dataset_id
        if not frames and not upstream:
            raise ValueError(f"instance {instance.instance_id} has no input frames and no upstream datasets")
        document = records.input_dataset(instance, recipe, frames, upstream, recipe.instrument)
        if left_out:  # marked bad by a person (`obsflow frames mark-bad`): said, so provenance shows it
            document["bad_frames_left_out"] = left_out
        digest = layout.digest_of(document)
        key = layout.input_dataset_key(instance.instance_id, digest if instance.run_ids else None)
        sha256 = self.documents.put_json("work", key, document)
        estimated_cpu_s, estimated_bytes = self.estimate(recipe, len(frames) + len(upstream))
        _, release, _ = self.release(instance.proposal_id, instance.observed_on, document)
        plan = dict(input_dataset_key=key, input_dataset_sha256=sha256, planned_upstream=planned_upstream,
                    estimated_cpu_s=estimated_cpu_s, estimated_bytes=estimated_bytes, release_date=release.isoformat())
        self.store.update_instance(instance.instance_id, inputs_changed=None, **plan)
        reexecution = digest if instance.run_ids else ""
        instance = dataclasses.replace(instance, **plan)
        run = self.new_run(instance, recipe, instance.priority, self.clock(), attempt=reexecution)
        if reexecution:
            run.history = [HistoryEntry(READY, run.created_at, f"re-execution: {instance.inputs_changed or 'inputs changed'}")]
        created = self.save_run(run, instance, recipe, observe_frames=sum(role == "observe" for _, role in frames))
        self.refresh_instance(instance.instance_id)
        if created:
            logger.info("run planned", extra={"instance_id": instance.instance_id, "run_id": run.run_id,
                                              "recipe": recipe.key})
        return run.run_id if created else None

    def _frames_of(self, dataset: Dataset) -> list[FrameRef]:
        """The raw frames a calibration dataset was made from: its instance's OPs' and named frames."""
        instance = self.store.instance(dataset.instance_id) if dataset.instance_id else None
        if instance is None:
            return []
        ops = sorted(i.ref for i in instance.inputs if i.kind == "op")
        named = sorted(i.ref for i in instance.inputs if i.kind == "frame")
        return [*self.store.frames_of_ops(ops), *(self.store.frames_by_id(named) if named else [])]

    def estimate(self, recipe: Recipe, inputs: int) -> tuple[float, int]:
        """CPU-seconds and output bytes: measured per input over earlier runs of the version, else the recipe's."""
        measured = self.store.measurement(recipe.key)
        if measured and measured["frames"]:
            per_input = inputs / measured["frames"]
            return round(measured["cpu_seconds"] * per_input, 1), int(measured["output_bytes"] * per_input)
        return recipe.estimates.workload(inputs)

    def release(self, proposal_id: str, observed_on: str, input_dataset: dict) -> tuple[dict, dt.date, Proposal | None]:
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

    def new_run(self, instance: Instance, recipe: Recipe, priority: int, at: dt.datetime,
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

    def save_run(self, run: Run, instance: Instance, recipe: Recipe, observe_frames: int | None = None) -> bool:
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
        instance = self.store.instances_without_inputs([instance_id])[instance_id]
        runs = self.store.runs_of(instance)
        if waiting_for is None and not runs:
            waiting_for = self._waiting_for(self.store.instance(instance_id))
        state, reason = derive_instance_state(instance, runs, waiting_for)
        ended = [r.finished_at for r in runs if r.finished_at]
        changes = {}
        if (state, reason) != (instance.state, instance.state_reason):
            changes.update(state=state, state_reason=reason)
        if ended and max(ended) != instance.date_processed:
            changes["date_processed"] = max(ended)
        if changes:
            self.store.update_instance(instance_id, **changes)
        if state != instance.state:  # what waits for it says why, and may be planned now
            self.wake_users([f"instance:{instance_id}"])
        return state

def _require_reason(reason: str, what: str) -> None:
    if not (reason or "").strip():
        raise ValueError(f"say why {what} (--reason TEXT): it is kept with each")
