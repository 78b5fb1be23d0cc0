"""RunStore on DynamoDB: pynamodb items in, domain objects out; AWS failures become TransientError."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Iterator

from pynamodb.connection import Connection

from obsflow.aws import transient
from obsflow.embargo import Proposal
from obsflow.runs.domain import (
    READY,
    Campaign,
    Candidate,
    Conflict,
    Dataset,
    FrameRef,
    HistoryEntry,
    Instance,
    InstanceInput,
    OpProgress,
    Run,
    Ticket,
    queue_key,
)
from obsflow.settings import Settings
from obsflow.tables import (
    campaigns,
    candidates,
    capacity,
    catalogue_edges,
    datasets,
    frames,
    observing_programs,
    proposals,
    qc_values,
    recipe_instances,
    recipe_measurements,
    runs,
    tags,
    tickets,
)
from obsflow.tables.campaigns import CampaignItem
from obsflow.tables.tags import TagItem
from obsflow.tables.catalogue_edges import InputEdgeItem
from obsflow.tables.base import changes_to_actions, get_or_none, save_if_new, update_if
from obsflow.tables.candidates import CandidateItem
from obsflow.tables.datasets import DatasetItem
from obsflow.tables.recipe_instances import RecipeInstanceItem
from obsflow.tables.runs import RunItem
from obsflow.tables.tickets import TicketItem


def _fields(cls, item) -> dict[str, Any]:
    """The item's attributes that the dataclass ``cls`` has."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {name: value for name, value in item.attribute_values.items() if name in names}


def item_of(model, record):
    """The table item of a domain record whose fields are the model's attributes."""
    values = dataclasses.asdict(record)
    return model(values.pop(model._hash_key_attribute().attr_name), **values)


def candidate_of(item: CandidateItem) -> Candidate:
    return Candidate(**{**_fields(Candidate, item), "calibration_ops": list(item.calibration_ops or []),
                        "instance_ids": list(item.instance_ids or []),
                        "priority": None if item.priority is None else int(item.priority)})


def instance_of(item: RecipeInstanceItem, edges: list[InputEdgeItem]) -> Instance:
    return Instance(**{
        **_fields(Instance, item),
        "inputs": [InstanceInput(edge.role, edge.kind, edge.ref) for edge in edges],
        "run_ids": set(item.run_ids or ()), "candidate_ids": set(item.candidate_ids or ()),
        "priority": int(item.priority or 0), "planned_upstream": dict(item.planned_upstream or {}),
        "estimated_bytes": None if item.estimated_bytes is None else int(item.estimated_bytes),
    })


def instance_item(instance: Instance) -> RecipeInstanceItem:
    values = dataclasses.asdict(instance)
    del values["inputs"]
    for name in ("run_ids", "candidate_ids", "planned_upstream"):
        values[name] = values[name] or None
    return RecipeInstanceItem(values.pop("instance_id"), **values)


def edge_item(instance_id: str, edge: InstanceInput) -> InputEdgeItem:
    return InputEdgeItem(instance_id, f"{edge.role}#{edge.key}", role=edge.role, kind=edge.kind, ref=edge.ref,
                         input_key=edge.key)


def run_of(item: RunItem) -> Run:
    return Run(**{
        **_fields(Run, item),
        "priority": int(item.priority), "redrives": int(item.redrives or 0),
        "estimated_cpu_s": float(item.estimated_cpu_s or 0),
        "output_bytes": None if item.output_bytes is None else int(item.output_bytes),
        "resource_classes": list(item.resource_classes),
        "history": [HistoryEntry(entry.status, entry.at, entry.detail) for entry in item.history or []],
    })


def run_item(run: Run) -> RunItem:
    values = dataclasses.asdict(run)
    values["history"] = [runs.HistoryEntry(status=e.status, at=e.at, detail=e.detail) for e in run.history]
    values["queue_key"] = run.queue_key
    if run.status == READY:
        values["ready_for"] = runs.ready_queue(run.resource_classes)
    return RunItem(values.pop("run_id"), **values)


def ticket_of(item: TicketItem) -> Ticket:
    ticket = Ticket(**_fields(Ticket, item))
    if ticket.exit_code is not None:
        ticket.exit_code = int(ticket.exit_code)
    return ticket


def dataset_of(item: DatasetItem) -> Dataset:
    return Dataset(**{**_fields(Dataset, item), "frame_count": int(item.frame_count or 0), "files": item.files,
                      "provenance": item.provenance, "kind": item.kind or "science",
                      "decisions": list(item.decisions or []), "release_basis": dict(item.release_basis or {}),
                      "superseded_inputs": list(item.superseded_inputs or []), "qc_notes": dict(item.qc_notes or {}),
                      "certification_gates": list(item.certification_gates or []),
                      "certification_history": list(item.certification_history or [])})


def campaign_of(item: CampaignItem) -> Campaign:
    return Campaign(**{**_fields(Campaign, item), "instance_ids": list(item.instance_ids or []),
                       "history": list(item.history or []), "occurrences": list(item.occurrences or []),
                       "documents": list(item.documents or []),
                       "max_concurrent": int(item.max_concurrent),
                       "pause_after_failures": int(item.pause_after_failures), "priority": int(item.priority),
                       "retention_days": None if item.retention_days is None else int(item.retention_days)})


class DynamoRunStore:
    def __init__(self, settings: Settings):
        self._connection = Connection(region=settings.region, host=settings.endpoint_url)

    # -- candidates ---------------------------------------------------------------
    def candidates_with_status(self, status: str) -> list[Candidate]:
        with transient(f"could not list {status} candidates"):
            return [candidate_of(item) for item in candidates.with_status(status)]

    def candidates_pending_review(self) -> list[tuple[Candidate, list[Conflict], int]]:
        """Candidates with conflicts no review ticket covers yet: the candidate, its events, how many are covered."""
        with transient("could not list the candidates whose conflicts await review"):
            return [(candidate_of(item), [Conflict(e.at, e.kind, e.detail) for e in item.events or []],
                     int(item.reviewed_events or 0)) for item in candidates.pending_review()]

    def mark_reviewed(self, candidate_id: str, events: int) -> bool:
        with transient(f"could not mark candidate {candidate_id} reviewed"):
            return candidates.mark_reviewed(candidate_id, events)

    def candidate(self, candidate_id: str) -> Candidate | None:
        with transient(f"could not read candidate {candidate_id}"):
            item = candidates.get(candidate_id)
        return candidate_of(item) if item else None

    def mark_candidate_ready(self, candidate_id: str, reason: str, detail: dict, at: dt.datetime) -> bool:
        with transient(f"could not mark candidate {candidate_id} ready"):
            return candidates.mark_ready(candidate_id, reason, detail, at)

    def mark_candidate_planned(self, candidate_id: str, instance_id: str, instance_ids: list[str]) -> None:
        with transient(f"could not mark candidate {candidate_id} planned"):
            candidates.mark_planned(candidate_id, instance_id, instance_ids)

    def hold_candidate(self, candidate_id: str, reason: str) -> None:
        with transient(f"could not hold candidate {candidate_id}"):
            candidates.hold(candidate_id, reason)

    def op_progress(self, op_ids: list[str]) -> dict[str, OpProgress]:
        with transient(f"could not read OPs {', '.join(op_ids)}"):
            items = observing_programs.get_many(op_ids)
        return {op_id: OpProgress(op_id, None if op.expected is None else int(op.expected), int(op.received or 0),
                                  op.first_frame_at, op.task_type, op.proposal_id) for op_id, op in items.items()}

    def frames_by_id(self, file_ids: list[str]) -> list[FrameRef]:
        with transient(f"could not read {len(file_ids)} frame(s)"):
            items = list(frames.FrameItem.batch_get(sorted(set(file_ids)), consistent_read=True)) if file_ids else []
        return [FrameRef(**{**_fields(FrameRef, item), "size": int(item.size)}) for item in items]

    def observed_on(self, op_id: str) -> str | None:
        """The date of the OP's first frame (DATE-OBS), from the index sorted by it."""
        with transient(f"could not read the frames of {op_id}"):
            first = next(iter(frames.FrameItem.by_op.query(op_id, limit=1)), None)
        return first.date_obs[:10] if first else None

    def frames_of_ops(self, op_ids: list[str]) -> list[FrameRef]:
        with transient(f"could not list the frames of {', '.join(op_ids)}"):
            items = [item for op_id in op_ids for item in frames.frames_of_op(op_id)]
        return [FrameRef(**{**_fields(FrameRef, item), "size": int(item.size)}) for item in items]

    # -- instances and their edges ----------------------------------------------------
    def create_instance(self, instance: Instance) -> bool:
        """Its edges first, so an instance that exists always has its inputs."""
        self.add_inputs(instance.instance_id, instance.inputs)
        item = instance_item(instance)
        item.plan_due, item.plan_due_at = recipe_instances.DUE, recipe_instances.due_mark(instance.created_at)
        with transient(f"could not record instance {instance.instance_id}"):
            return save_if_new(item)

    def instance(self, instance_id: str) -> Instance | None:
        with transient(f"could not read instance {instance_id}"):
            item = recipe_instances.get(instance_id)
            return instance_of(item, catalogue_edges.inputs_of(instance_id)) if item else None

    def instances_without_inputs(self, instance_ids: list[str]) -> dict[str, Instance]:
        if not instance_ids:
            return {}
        with transient(f"could not read {len(instance_ids)} instance(s)"):
            return {item.instance_id: instance_of(item, [])
                    for item in RecipeInstanceItem.batch_get(sorted(set(instance_ids)), consistent_read=True)}

    def missing_inputs(self, instance_id: str, inputs: list[InstanceInput]) -> list[InstanceInput]:
        edges = {edge_item(instance_id, edge).edge: edge for edge in inputs}
        with transient(f"could not read the inputs of instance {instance_id}"):
            present = {item.edge for item in InputEdgeItem.batch_get(
                [(instance_id, edge) for edge in sorted(edges)], consistent_read=True)}
        return [edge for key, edge in edges.items() if key not in present]

    def instances_due_for_planning(self) -> list[tuple[str, str]]:
        with transient("could not list the instances due for planning"):
            return recipe_instances.due_for_planning()

    def mark_due_for_planning(self, instance_ids: list[str], at: dt.datetime) -> None:
        with transient(f"could not mark {len(instance_ids)} instance(s) due for planning"):
            for instance_id in instance_ids:
                recipe_instances.mark_due(instance_id, at)

    def planning_looked_at(self, instance_id: str, mark: str) -> bool:
        with transient(f"could not clear the planning mark of instance {instance_id}"):
            return recipe_instances.clear_due(instance_id, mark)

    def instances_of_reference(self, reference: str) -> list[Instance]:
        with transient(f"could not list the instances of {reference}"):
            return self._with_inputs(recipe_instances.of_reference(reference))

    @staticmethod
    def _with_inputs(items) -> list[Instance]:
        return [instance_of(item, catalogue_edges.inputs_of(item.instance_id)) for item in items]

    def add_inputs(self, instance_id: str, inputs: list[InstanceInput]) -> None:
        with transient(f"could not record the inputs of instance {instance_id}"):
            with InputEdgeItem.batch_write() as batch:
                for edge in inputs:
                    batch.save(edge_item(instance_id, edge))

    def users_of(self, input_key: str) -> list[str]:
        with transient(f"could not look up the users of {input_key}"):
            return catalogue_edges.users_of(input_key)

    def add_candidate_to_instance(self, instance_id: str, candidate_id: str) -> None:
        with transient(f"could not record candidate {candidate_id} on instance {instance_id}"):
            RecipeInstanceItem(instance_id).update(actions=[RecipeInstanceItem.candidate_ids.add({candidate_id})])

    def update_instance(self, instance_id: str, **changes: Any) -> None:
        with transient(f"could not update instance {instance_id}"):
            RecipeInstanceItem(instance_id).update(actions=changes_to_actions(RecipeInstanceItem, changes))

    def add_run_to_instance(self, instance_id: str, run_id: str) -> None:
        with transient(f"could not record run {run_id} on instance {instance_id}"):
            RecipeInstanceItem(instance_id).update(actions=[RecipeInstanceItem.run_ids.add({run_id})])

    def runs_of(self, instance: Instance) -> list[Run]:
        return list(self.runs_by_id(list(instance.run_ids)).values())

    def runs_by_id(self, run_ids: list[str]) -> dict[str, Run]:
        if not run_ids:
            return {}
        with transient(f"could not read {len(run_ids)} run(s)"):
            return {item.run_id: run_of(item) for item in RunItem.batch_get(sorted(set(run_ids)), consistent_read=True)}

    # -- what runs of a recipe cost ---------------------------------------------------------
    def record_measurement(self, recipe_key: str, frames_count: int, cpu_seconds: float, output_bytes: int) -> None:
        with transient(f"could not record what a run of {recipe_key} cost"):
            recipe_measurements.add(recipe_key, frames_count, cpu_seconds, output_bytes)

    def measurement(self, recipe_key: str) -> dict | None:
        """Totals over the recipe version's successful runs: runs, frames, cpu_seconds, output_bytes."""
        with transient(f"could not read what runs of {recipe_key} cost"):
            item = recipe_measurements.get(recipe_key)
        if item is None or not item.runs:
            return None
        return {"runs": int(item.runs), "frames": int(item.frames), "cpu_seconds": float(item.cpu_seconds),
                "output_bytes": int(item.output_bytes)}

    # -- runs --------------------------------------------------------------------------------
    def create_run(self, run: Run) -> bool:
        with transient(f"could not record run {run.run_id}"):
            return runs.create(self._connection, run_item(run))

    def run(self, run_id: str) -> Run | None:
        with transient(f"could not read run {run_id}"):
            item = runs.get(run_id)
        return run_of(item) if item else None

    def runs_with_status(self, status: str) -> list[Run]:
        with transient(f"could not list {status} runs"):
            return [run_of(item) for item in runs.with_status(status)]

    def ready_runs(self, resource_classes: tuple[str, ...]) -> Iterator[Run]:
        with transient(f"could not list the READY runs needing {', '.join(resource_classes)}"):
            for item in runs.ready_in(runs.ready_queue(resource_classes)):
                yield run_of(item)

    def transition(self, run_id: str, to: str, allowed_from: tuple[str, ...], at: dt.datetime,
                   detail: str | None = None, **changes: Any) -> bool:
        with transient(f"could not update run {run_id}"):
            if to == READY:  # back in its queue
                run = self.run(run_id)
                if run is None:
                    return False
                changes["ready_for"] = runs.ready_queue(run.resource_classes)
            return runs.transition(self._connection, run_id, to, allowed_from, at, detail,
                                   self._with_queue_key(run_id, changes))

    def update_run(self, run_id: str, **changes: Any) -> None:
        with transient(f"could not update run {run_id}"):
            RunItem(run_id).update(actions=changes_to_actions(RunItem, self._with_queue_key(run_id, changes)))

    def _with_queue_key(self, run_id: str, changes: dict) -> dict:
        """A new priority moves the run in the by-status index, which orders by ``queue_key``."""
        if "priority" not in changes:
            return changes
        run = self.run(run_id)
        return {**changes, "queue_key": queue_key(changes["priority"], run.estimated_cpu_s, run.created_at, run_id)}

    def note_waiting(self, run_id: str, reason: str | None) -> None:
        with transient(f"could not update run {run_id}"):
            runs.note_waiting(run_id, reason)

    def slots_in_use(self, resource_classes: list[str]) -> dict[str, set[str]]:
        with transient("could not read the run slots"):
            return capacity.in_use(resource_classes)

    def take_slots(self, run: Run, limits: dict[str, int], at: dt.datetime) -> bool:
        with transient(f"could not take slots for run {run.run_id}"):
            return capacity.take_slots(self._connection, run.run_id, run.slots, limits, at)

    def give_back_slots(self, run: Run) -> None:
        with transient(f"could not give back the slots of run {run.run_id}"):
            capacity.give_back_slots(run.run_id, run.slots)

    # -- tickets and datasets ------------------------------------------------------------------
    def create_ticket(self, ticket: Ticket) -> bool:
        with transient(f"could not file ticket {ticket.ticket_id}"):
            return save_if_new(item_of(TicketItem, ticket))

    def ticket(self, ticket_id: str) -> Ticket | None:
        with transient(f"could not read ticket {ticket_id}"):
            item = tickets.get(ticket_id)
        return ticket_of(item) if item else None

    def update_ticket(self, ticket_id: str, **changes: Any) -> None:
        with transient(f"could not update ticket {ticket_id}"):
            TicketItem(ticket_id).update(actions=changes_to_actions(TicketItem, changes))

    def create_dataset(self, dataset: Dataset) -> bool:
        values = dataclasses.asdict(dataset)
        with transient(f"could not record dataset {dataset.dataset_id}"):
            return save_if_new(datasets.new_item(values.pop("dataset_id"), values.pop("files"), values.pop("provenance"),
                                                 **values))

    def dataset(self, dataset_id: str) -> Dataset | None:
        with transient(f"could not read dataset {dataset_id}"):
            item = datasets.get(dataset_id)
        return dataset_of(item) if item else None

    def datasets_of_product(self, product_id: str) -> list[Dataset]:
        with transient(f"could not list the datasets of product {product_id}"):
            return [dataset_of(item) for item in datasets.of_product(product_id)]

    def datasets_of_instance(self, instance_id: str) -> list[Dataset]:
        with transient(f"could not list the datasets of instance {instance_id}"):
            return [dataset_of(item) for item in datasets.of_instance(instance_id)]

    def record_qc(self, dataset_id: str, values: dict[str, float], notes: dict[str, str], at: dt.datetime) -> None:
        with transient(f"could not record the QC values of dataset {dataset_id}"):
            qc_values.record(dataset_id, values, notes, at)
            DatasetItem(dataset_id).update(actions=[DatasetItem.qc.set(values), DatasetItem.qc_notes.set(notes)])
            qc_values.indexed_from(at)

    def datasets_without_qc(self) -> list[Dataset]:
        with transient("could not list the datasets without QC values"):
            return [dataset_of(item) for item in datasets.without_qc()]

    def all_qc_indexed(self, oldest: dt.datetime) -> None:
        with transient("could not record that every dataset's QC values are indexed"):
            qc_values.indexed_from(oldest)

    def datasets_of_recipe(self, name: str) -> list[Dataset]:
        with transient(f"could not list the datasets of recipe {name}"):
            return [dataset_of(item) for item in datasets.of_recipe_name(name)]

    def datasets_with_status(self, status: str) -> list[Dataset]:
        with transient(f"could not list the {status} datasets"):
            return [dataset_of(item) for item in datasets.with_status(status)]

    # -- campaigns -------------------------------------------------------------------------------
    def create_campaign(self, campaign: Campaign) -> bool:
        with transient(f"could not record campaign {campaign.name}"):
            return save_if_new(item_of(CampaignItem, campaign))

    def campaign(self, name: str) -> Campaign | None:
        with transient(f"could not read campaign {name}"):
            item = campaigns.get(name)
        return campaign_of(item) if item else None

    def all_campaigns(self) -> list[Campaign]:
        with transient("could not list the campaigns"):
            return [campaign_of(item) for item in campaigns.all_campaigns()]

    def update_campaign(self, name: str, **changes: Any) -> None:
        with transient(f"could not update campaign {name}"):
            CampaignItem(name).update(actions=changes_to_actions(CampaignItem, changes))

    def record_occurrence(self, name: str, number: int, **changes: Any) -> bool:
        with transient(f"could not record occurrence {number} of campaign {name}"):
            return update_if(CampaignItem(name), changes_to_actions(CampaignItem, {**changes, "occurrence_count": number}),
                             campaigns.has_occurrences(number - 1))

    def add_campaign_document(self, name: str, document: dict, after: list[dict]) -> bool:
        with transient(f"could not record a document of campaign {name}"):
            # The list as read (JSON compares as its text): an attach at the same time makes this one count again.
            unchanged = CampaignItem.documents == after if after else (
                CampaignItem.documents.does_not_exist() | (CampaignItem.documents == []))
            return update_if(CampaignItem(name), [CampaignItem.documents.set([*after, document])],
                             CampaignItem.name.exists() & unchanged)

    def datasets_of_campaign(self, name: str) -> list[Dataset]:
        with transient(f"could not list the datasets of campaign {name}"):
            return [dataset_of(item) for item in datasets.of_campaign(name)]

    # -- tags ------------------------------------------------------------------------------------
    def add_tags(self, tag: str, target_ids: list[str], by: str, reason: str, at: dt.datetime) -> int:
        """Tag each id once (a second statement of the same tag on an id keeps the first; one withdrawn before is
        made again, the withdrawn one kept in ``earlier``); how many were new."""
        added = 0
        with transient(f"could not record tag {tag}"):
            for target_id in dict.fromkeys(target_ids):
                added += save_if_new(TagItem(tag, target_id, tagged_by=by, tagged_at=at, reason=reason)) \
                    or self._restate(tag, target_id, by, reason, at)
        return added

    @staticmethod
    def _restate(tag: str, target_id: str, by: str, reason: str, at: dt.datetime) -> bool:
        item = get_or_none(TagItem, tag, target_id)
        if item is None or item.withdrawn_at is None:
            return False
        actions = [TagItem.tagged_by.set(by), TagItem.tagged_at.set(at), TagItem.reason.set(reason),
                   TagItem.earlier.set([*(item.earlier or []), item.statement()]), TagItem.withdrawn_by.remove(),
                   TagItem.withdrawn_at.remove(), TagItem.withdrawn_reason.remove()]
        # Only the withdrawn statement read above is moved into `earlier` (two at once: one of them restates it).
        return update_if(item, actions, TagItem.withdrawn_at == item.withdrawn_at)

    def withdraw_tags(self, tag: str, target_ids: list[str], by: str, reason: str, at: dt.datetime) -> int:
        """Withdraw the statements in force of ``tag`` on these ids, keeping them; how many there were."""
        withdrawn = 0
        with transient(f"could not withdraw tag {tag}"):
            for target_id in dict.fromkeys(target_ids):
                withdrawn += update_if(
                    TagItem(tag, target_id),
                    [TagItem.withdrawn_by.set(by), TagItem.withdrawn_at.set(at), TagItem.withdrawn_reason.set(reason)],
                    TagItem.tagged_at.exists() & TagItem.withdrawn_at.does_not_exist())
        return withdrawn

    def tagged(self, tag: str) -> list[str]:
        with transient(f"could not read tag {tag}"):
            return [item.target_id for item in tags.tagged(tag)]

    def datasets_under_embargo(self) -> list[Dataset]:
        with transient("could not list the datasets under embargo"):
            return [dataset_of(item) for item in datasets.under_embargo()]

    def proposals(self, proposal_ids: set[str]) -> dict[str, Proposal]:
        with transient(f"could not read proposals {', '.join(sorted(proposal_ids))}"):
            return proposals.get_many(proposal_ids)

    def move_certification(self, dataset_id: str, to: str, allowed_from: tuple[str, ...], history: list[dict]) -> bool:
        with transient(f"could not move the certification of dataset {dataset_id}"):
            return datasets.move_certification(dataset_id, to, allowed_from, history)

    def update_dataset(self, dataset_id: str, **changes: Any) -> None:
        with transient(f"could not update dataset {dataset_id}"):
            DatasetItem(dataset_id).update(actions=changes_to_actions(DatasetItem, changes))
