"""What the read models need from the records: a port per concern, each adding to the one before.

Where a runs port already reads something (``InstanceStore.instance``, ``users_of``, ``runs_of``,
``DatasetStore.dataset`` ...), the read port names the same method: one adapter and one fake answer both.
Rows an operator sees as stored come as plain dicts ("records": a record's stored attributes, without the
attributes of its storage); everything else as the runs layer's domain objects. Listings answer from keys and
indexes, never a scan (but for the listing of every dataset, asked for as such).
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from obsflow.embargo import Proposal
from obsflow.qc import QcFilter
from obsflow.recipes.model import Recipe
from obsflow.runs.domain import Candidate, Dataset, FrameRef, Instance, OpProgress, Run

# The dataset attributes an index answers by value (``dataset_ids_with``, ``listed_datasets_with``).
INDEXED_DATASET_FIELDS = ("recipe", "recipe_name", "code_version", "status", "campaign", "embargo", "instance_id")


class CatalogueReads(Protocol):
    """The processing catalogue: recipe instances, their input edges both ways, and what the edges name."""

    def instance(self, instance_id: str) -> Instance | None:
        """With its inputs (``InstanceStore.instance``)."""
    def instance_record(self, instance_id: str) -> Instance | None:
        """One key read: the input edges are not read (``inputs`` is empty), for a row."""
    def instance_records_with_state(self, state: str) -> list[Instance]:
        """One index query, oldest first; ``inputs`` empty."""
    def instance_records_of_reference(self, reference: str) -> list[Instance]:
        """One index query, oldest first; ``inputs`` empty."""
    def instance_records_page(self, state: str | None, reference: str | None, limit: int,
                              start: dict | None) -> tuple[list[Instance], dict | None]:
        """A page of instances newest first (of a reference and/or in a state, else all; ``inputs`` empty), and
        where the next starts (None: the last). Reads the page, whatever the catalogue holds."""
    def users_of(self, input_key: str) -> list[str]:
        """The instances with an input ``<kind>:<ref>``, in id order (the reverse index)."""
    def instances_without_inputs(self, instance_ids: list[str]) -> dict[str, Instance]:
        """Those that exist, read together; ``inputs`` empty (``InstanceStore.instances_without_inputs``)."""
    def runs_of(self, instance: Instance) -> list[Run]: ...
    def runs_by_id(self, run_ids: list[str]) -> dict[str, Run]:
        """Those that exist, read together (``InstanceStore.runs_by_id``)."""
    def candidate(self, candidate_id: str) -> Candidate | None: ...
    def frames_by_id(self, file_ids: list[str]) -> list[FrameRef]:
        """The frames that exist among ``file_ids``."""
    def dataset(self, dataset_id: str) -> Dataset | None: ...
    def dataset_records_of_kind(self, kind: str) -> list[dict]:
        """The kind's datasets (one index query), oldest first, each with its ``files`` and ``provenance``."""


class ProvenanceReads(CatalogueReads, Protocol):
    """Datasets by the keys and indexes provenance queries intersect, and their listed attributes."""

    def datasets_of_instance(self, instance_id: str) -> list[Dataset]: ...
    def dataset_ids_with(self, field: str, value: str) -> set[str]:
        """The ids of the datasets whose ``field`` (one of INDEXED_DATASET_FIELDS) has ``value``: one keys-only
        index query."""
    def listed_datasets_with(self, field: str, value: str) -> list[dict]:
        """The listed attributes (``LISTED_ATTRIBUTES`` of the datasets table: no large JSON) of the datasets whose
        ``field`` has ``value``: one index query, oldest first (``embargo``: soonest release first)."""
    def listed_datasets(self, dataset_ids: set[str]) -> list[dict]:
        """The datasets' listed attributes (batched key reads), oldest first."""
    def all_listed_datasets(self) -> list[dict]:
        """Every dataset's listed attributes, oldest first: the whole catalogue, when that is what is asked."""
    def listed_datasets_page(self, limit: int, start: dict | None) -> tuple[list[dict], dict | None]:
        """A page of every dataset's listed attributes, newest first, and where the next starts (None: the last)."""
    def qc_dataset_ids(self, qc_filter: QcFilter) -> set[str]:
        """The datasets whose value of the filter's metric passes it: one keys-only index query."""
    def qc_metrics(self) -> list[str]:
        """The metrics some dataset has recorded."""
    def qc_indexed_since(self) -> dt.datetime | None:
        """Datasets created from then on have their QC values indexed (None: none has)."""
    def any_dataset_created_before(self, at: dt.datetime | None) -> bool:
        """Whether a dataset was created before ``at`` (None: whether there is any dataset)."""


class OperatorReads(ProvenanceReads, Protocol):
    """Everything else an operator lists: ingest's records, recipes, runs and datasets."""

    def frame_records(self, op_id: str | None) -> list[dict]:
        """The OP's frames by DATE-OBS, or (None) every frame by OP, then DATE-OBS."""
    def proposals(self, proposal_ids: set[str]) -> dict[str, Proposal]:
        """The proposals with a document among ``proposal_ids``."""
    def proposal_records(self) -> list[dict]:
        """Each proposal document's record, its revisions as ``events`` (at, kind, detail)."""
    def proposal_record(self, proposal_id: str) -> dict | None: ...
    def quarantine_records(self) -> list[dict]: ...
    def op_records(self) -> list[dict]:
        """Each OP's record, its conflicts as ``events`` (at, kind, detail)."""
    def newest_op_records(self, limit: int) -> list[dict]:
        """The records of the ``limit`` OPs whose first frame came last."""
    def op_record(self, op_id: str) -> dict | None: ...
    def op_progress(self, op_ids: list[str]) -> dict[str, OpProgress]: ...
    def candidate_records(self) -> list[dict]:
        """Each candidate's record, its conflicts as ``events`` (at, kind, detail)."""
    def newest_candidate_records(self, limit: int) -> list[dict]:
        """The records of the ``limit`` newest candidates, newest first."""
    def candidate_record(self, candidate_id: str) -> dict | None: ...
    def recipe_records(self, name: str | None = None) -> list[dict]:
        """Every registered recipe version (or those of ``name``), with its ``definition``."""
    def registered_recipe(self, name: str) -> Recipe:
        """The latest registered version, with the parameter values set as data; NotFound if none is."""
    def recipe_version(self, name: str, version: str) -> Recipe:
        """The version as registered."""
    def parameter_value_records(self, recipe: str) -> list[dict]:
        """The parameter values set as data for the recipe's versions."""
    def run(self, run_id: str) -> Run | None: ...
    def runs_with_status(self, status: str) -> list[Run]:
        """In start order: priority, then age."""
    def run_records(self, status: str | None = None) -> list[dict]:
        """The runs' records (of ``status``: in start order; else all, oldest first), ``history`` as dicts."""
    def run_records_page(self, status: str | None, limit: int, start: dict | None) -> tuple[list[dict], dict | None]:
        """A page of runs' records (of ``status``: in start order; else all, newest first), and where the next
        starts (None: the last)."""
    def runs_entered_since(self, at: dt.datetime) -> dict[str, int]:
        """How many runs entered each status from the start of ``at``'s hour (UTC) on: a day's moves, whatever
        the history holds."""
    def run_record(self, run_id: str) -> dict | None: ...
    def run_slots(self) -> tuple[dict[str, int], dict[str, int]]:
        """Each resource class's run slots: in use, and the capacity."""
    def dataset_record(self, dataset_id: str) -> dict | None:
        """Its stored attributes, with its ``files`` and ``provenance``."""
    def datasets_of_product(self, product_id: str) -> list[Dataset]: ...
