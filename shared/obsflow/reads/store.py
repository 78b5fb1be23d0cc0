"""The read ports on DynamoDB: keys-only index queries and projections, records as dicts, domain objects out.

What the runs ports already read (instances with their inputs, runs, candidates, frames, datasets, proposals)
is read by the runs layer's adapter, the same way; AWS failures become TransientError.
"""

from __future__ import annotations

import datetime as dt

from obsflow.aws import transient
from obsflow.qc import QcFilter
from obsflow.recipes import registry
from obsflow.recipes.model import RESOURCE_CLASSES, Recipe
from obsflow.runs.domain import Instance
from obsflow.runs.store import DynamoRunStore, instance_of
from obsflow.settings import Settings
from obsflow.tables import (
    candidates,
    conflicts,
    datasets,
    frames,
    observing_programs,
    parameter_values,
    proposals,
    qc_values,
    quarantine,
    recipe_instances,
    recipes,
    run_counts,
    runs,
)
from obsflow.tables.datasets import DatasetItem
from obsflow.tables.recipes import RecipeItem

# Each read port's dataset field -> the index of the datasets table that answers it
_DATASET_INDEXES = {"recipe": "by_recipe", "recipe_name": "by_recipe_name", "code_version": "by_code_version",
                    "status": "by_status", "campaign": "by_campaign", "embargo": "under_embargo",
                    "instance_id": "by_instance"}
_INDEX_ONLY = ("listing", "plan_due", "plan_due_at", "ready_for")  # attributes that exist to put an item in an index
_DATASET_STORAGE = ("files_inline", "provenance_inline", "spilled")  # read as ``files`` and ``provenance``


def _record(item, **replaced) -> dict:
    values = {k: v for k, v in item.attribute_values.items() if k not in _INDEX_ONLY}
    return {**values, **replaced}


def _with_events(item) -> dict:
    """The record, its conflict events (tables.conflicts) as dicts."""
    return _record(item, events=conflicts.history(item)) if item.events else _record(item)


def _dataset_record(item: DatasetItem) -> dict:
    return {**{k: v for k, v in item.attribute_values.items() if k not in _DATASET_STORAGE + _INDEX_ONLY},
            "files": item.files, "provenance": item.provenance}


def _run_record(item) -> dict:
    return _record(item, history=[entry.as_dict() for entry in item.history])


class DynamoReads(DynamoRunStore):
    """The runs layer's adapter, whose reads (instances with their inputs, runs, candidates, frames, datasets,
    proposals) the read ports name alike, and the reads only the read models make."""

    def __init__(self, settings: Settings):
        super().__init__(settings)
        self._capacity = {rc: settings.capacity(rc) for rc in RESOURCE_CLASSES}

    def run_slots(self) -> tuple[dict[str, int], dict[str, int]]:
        return {rc: len(ids) for rc, ids in self.slots_in_use(list(RESOURCE_CLASSES)).items()}, dict(self._capacity)

    # -- the catalogue's records, without their edges ---------------------------------------
    def instance_record(self, instance_id: str) -> Instance | None:
        with transient(f"could not read instance {instance_id}"):
            item = recipe_instances.get(instance_id)
        return instance_of(item, []) if item else None

    def instance_records_with_state(self, state: str) -> list[Instance]:
        with transient(f"could not list {state} instances"):
            return [instance_of(item, []) for item in recipe_instances.with_state(state)]

    def instance_records_page(self, state: str | None, reference: str | None, limit: int,
                              start: dict | None) -> tuple[list[Instance], dict | None]:
        with transient("could not list the instances"):
            items, following = recipe_instances.instances_page(state, reference, limit, start)
        return [instance_of(item, []) for item in items], following

    def instance_records_of_reference(self, reference: str) -> list[Instance]:
        with transient(f"could not list the instances of {reference}"):
            return [instance_of(item, []) for item in recipe_instances.of_reference(reference)]

    # -- datasets by index -------------------------------------------------------------------
    def dataset_records_of_kind(self, kind: str) -> list[dict]:
        with transient(f"could not list the {kind} datasets"):
            return [_dataset_record(item) for item in sorted(datasets.of_kind(kind), key=lambda d: d.created_at)]

    def dataset_record(self, dataset_id: str) -> dict | None:
        with transient(f"could not read dataset {dataset_id}"):
            item = datasets.get(dataset_id)
            return _dataset_record(item) if item else None

    def dataset_ids_with(self, field: str, value: str) -> set[str]:
        with transient(f"could not query the datasets by {field}"):
            return datasets.ids_where(_DATASET_INDEXES[field], value)

    def listed_datasets_with(self, field: str, value: str) -> list[dict]:
        with transient(f"could not list the datasets by {field}"):
            return [_record(item) for item in datasets.listed_where(_DATASET_INDEXES[field], value)]

    def listed_datasets(self, dataset_ids: set[str]) -> list[dict]:
        with transient(f"could not read {len(dataset_ids)} dataset(s)"):
            return [_record(item) for item in datasets.listed(dataset_ids)]

    def all_listed_datasets(self) -> list[dict]:
        with transient("could not list the datasets"):
            return [_record(item) for item in datasets.listed_all()]

    def listed_datasets_page(self, limit: int, start: dict | None) -> tuple[list[dict], dict | None]:
        with transient("could not list the datasets"):
            items, following = datasets.listed_page(limit, start)
        return [_record(item) for item in items], following

    def qc_dataset_ids(self, qc_filter: QcFilter) -> set[str]:
        with transient(f"could not query the datasets by {qc_filter.metric}"):
            return qc_values.dataset_ids(qc_filter)

    def qc_metrics(self) -> list[str]:
        with transient("could not read the QC metrics"):
            return qc_values.metrics()

    def qc_indexed_since(self) -> dt.datetime | None:
        with transient("could not read since when QC values are indexed"):
            return qc_values.indexed_since()

    def any_dataset_created_before(self, at: dt.datetime | None) -> bool:
        with transient("could not look for older datasets"):
            return datasets.any_created_before(at) if at else datasets.any_dataset()

    # -- ingest's records ----------------------------------------------------------------------
    def frame_records(self, op_id: str | None) -> list[dict]:
        with transient("could not list the frames"):
            items = frames.frames_of_op(op_id) if op_id else sorted(frames.all_frames(), key=lambda f: (f.op_id, f.date_obs))
        return [_record(item) for item in items]

    def proposal_records(self) -> list[dict]:
        with transient("could not list the proposals"):
            return [_with_events(item) for item in proposals.all_proposals()]

    def proposal_record(self, proposal_id: str) -> dict | None:
        with transient(f"could not read proposal {proposal_id}"):
            item = proposals.get_item(proposal_id)
        return _with_events(item) if item else None

    def quarantine_records(self) -> list[dict]:
        with transient("could not list the quarantine"):
            return [_record(item) for item in quarantine.all_quarantined()]

    def op_records(self) -> list[dict]:
        with transient("could not list the OPs"):
            return [_with_events(item) for item in observing_programs.all_ops()]

    def newest_op_records(self, limit: int) -> list[dict]:
        with transient("could not list the newest OPs"):
            return [_with_events(item) for item in observing_programs.newest(limit)]

    def op_record(self, op_id: str) -> dict | None:
        with transient(f"could not read OP {op_id}"):
            item = observing_programs.get_many([op_id]).get(op_id)
        return _with_events(item) if item else None

    def newest_candidate_records(self, limit: int) -> list[dict]:
        with transient("could not list the newest candidates"):
            return [_with_events(item) for item in candidates.newest(limit)]

    def candidate_records(self) -> list[dict]:
        with transient("could not list the candidates"):
            return [_with_events(item) for item in candidates.all_candidates()]

    def candidate_record(self, candidate_id: str) -> dict | None:
        with transient(f"could not read candidate {candidate_id}"):
            item = candidates.get(candidate_id)
        return _with_events(item) if item else None

    # -- recipes and runs ----------------------------------------------------------------------
    def recipe_records(self, name: str | None = None) -> list[dict]:
        with transient("could not list the recipes"):
            return [_record(item) for item in (recipes.versions(name) if name else recipes.all_recipes())]

    def registered_recipe(self, name: str) -> Recipe:
        with transient(f"could not read recipe {name}"):
            return registry.registered(name)

    def recipe_version(self, name: str, version: str) -> Recipe:
        with transient(f"could not read recipe {name}@{version}"):
            return Recipe.model_validate(RecipeItem.get(name, version).definition)

    def parameter_value_records(self, recipe: str) -> list[dict]:
        with transient(f"could not read the parameter values of {recipe}"):
            return [_record(item) for item in parameter_values.of_recipe(recipe)]

    def run_records(self, status: str | None = None) -> list[dict]:
        with transient("could not list the runs"):
            return [_run_record(item) for item in (runs.with_status(status) if status else runs.all_runs())]

    def run_records_page(self, status: str | None, limit: int, start: dict | None) -> tuple[list[dict], dict | None]:
        with transient("could not list the runs"):
            items, following = runs.runs_page(status, limit, start)
        return [_run_record(item) for item in items], following

    def runs_entered_since(self, at: dt.datetime) -> dict[str, int]:
        with transient("could not count the day's runs"):
            return run_counts.entered_since(at)

    def run_record(self, run_id: str) -> dict | None:
        with transient(f"could not read run {run_id}"):
            item = runs.get(run_id)
        return _run_record(item) if item else None
