"""What the runs layer needs from the outside: a port per aggregate (candidates, instances, runs, tickets,
datasets, campaigns) and the platform's ports.

One DynamoDB adapter for the aggregates and one AWS adapter per platform port (``runs/store.py``, ``runs/platform.py``);
in-memory fakes in the unit tests. Buckets are named by role ("work", "data").
"""

from __future__ import annotations

import datetime as dt
from contextlib import AbstractContextManager
from typing import Any, Iterator, Protocol

from obsflow.embargo import Proposal
from obsflow.qc import QcFilter
from obsflow.recipes.model import Recipe
from obsflow.recipes.rules import DiscoveryRule
from obsflow.runs.domain import Campaign, Candidate, Dataset, FrameRef, Instance, InstanceInput, OpProgress, Run, Ticket


class CandidateStore(Protocol):
    """Candidates, and the OPs and frames ingest recorded for them."""

    def candidates_with_status(self, status: str) -> list[Candidate]: ...
    def candidate(self, candidate_id: str) -> Candidate | None: ...
    def mark_candidate_ready(self, candidate_id: str, reason: str, detail: dict, at: dt.datetime) -> bool:
        """WAITING -> READY exactly once; False if it was not WAITING."""
    def mark_candidate_planned(self, candidate_id: str, instance_id: str, instance_ids: list[str]) -> None:
        """READY -> PLANNED, naming its instances (nothing if it is no longer READY)."""
    def hold_candidate(self, candidate_id: str, reason: str) -> None: ...
    def op_progress(self, op_ids: list[str]) -> dict[str, OpProgress]: ...
    def frames_of_ops(self, op_ids: list[str]) -> list[FrameRef]: ...
    def frames_by_id(self, file_ids: list[str]) -> list[FrameRef]:
        """The frames that exist among ``file_ids``."""
    def observed_on(self, op_id: str) -> str | None:
        """The date (YYYY-MM-DD) of the OP's first frame; None if it has none."""



class InstanceStore(Protocol):
    """Recipe instances (the processing catalogue), their input edges, and what their recipes' runs measured."""

    def create_instance(self, instance: Instance) -> bool:
        """Put the instance and its input edges if its id is new; False if it existed."""
    def instance(self, instance_id: str) -> Instance | None: ...
    def instances_without_inputs(self, instance_ids: list[str]) -> dict[str, Instance]:
        """Those that exist, read for their state, not their inputs (``inputs`` is empty): an instance of a night
        may have thousands."""
    def missing_inputs(self, instance_id: str, inputs: list[InstanceInput]) -> list[InstanceInput]:
        """Those of ``inputs`` the instance does not have yet (only they are read)."""
    def instances_due_for_planning(self) -> list[tuple[str, str]]:
        """(instance id, due mark) of each instance the submitter must look at: created, marked since, not yet
        looked at. Never the instances that merely wait."""
    def mark_due_for_planning(self, instance_ids: list[str], at: dt.datetime) -> None:
        """Mark recorded instances due (their inputs moved); ids of no instance are passed over."""
    def planning_looked_at(self, instance_id: str, mark: str) -> bool:
        """Clear the due mark read as ``mark``; False (it stays due) if it was marked again meanwhile."""
    def instances_of_reference(self, reference: str) -> list[Instance]: ...
    def add_inputs(self, instance_id: str, inputs: list[InstanceInput]) -> None:
        """Record input edges (idempotent)."""
    def users_of(self, input_key: str) -> list[str]:
        """The instances with an input ``<kind>:<ref>`` (from the reverse index)."""
    def add_candidate_to_instance(self, instance_id: str, candidate_id: str) -> None: ...
    def update_instance(self, instance_id: str, **changes: Any) -> None: ...
    def add_run_to_instance(self, instance_id: str, run_id: str) -> None: ...
    def runs_of(self, instance: Instance) -> list[Run]: ...
    def runs_by_id(self, run_ids: list[str]) -> dict[str, Run]:
        """Those that exist, read together (a page of candidates' runs in one request, not one each)."""
    def record_measurement(self, recipe_key: str, frames_count: int, cpu_seconds: float, output_bytes: int) -> None: ...
    def measurement(self, recipe_key: str) -> dict | None: ...



class RunRecords(Protocol):
    """Runs, their conditional moves (runs.transitions) and the run slots they take."""

    def create_run(self, run: Run) -> bool:
        """Put the run if its id is new; False if it existed."""
    def run(self, run_id: str) -> Run | None: ...
    def runs_with_status(self, status: str) -> list[Run]:
        """In start order: priority, then age."""
    def ready_runs(self, resource_classes: tuple[str, ...]) -> Iterator[Run]:
        """The READY runs that need exactly these resource classes, in start order, read a page at a time as
        they are taken (a pass that has filled their slots reads no further)."""
    def transition(self, run_id: str, to: str, allowed_from: tuple[str, ...], at: dt.datetime,
                   detail: str | None = None, **changes: Any) -> bool:
        """Move the run to ``to`` (appending to its history, setting ``changes``; None removes)
        only if it is in one of ``allowed_from``; False if it was not."""
    def update_run(self, run_id: str, **changes: Any) -> None: ...
    def note_waiting(self, run_id: str, reason: str | None) -> None:
        """Say why a READY run waits (None: for its slots alone, shown as they are); nothing if it has started
        meanwhile."""
    def slots_in_use(self, resource_classes: list[str]) -> dict[str, set[str]]: ...
    def take_slots(self, run: Run, capacity: dict[str, int], at: dt.datetime) -> bool:
        """READY -> SUBMITTED and each of ``run.slots`` (limits in ``capacity``), all or nothing."""
    def give_back_slots(self, run: Run) -> None:
        """Idempotent: giving back a slot the run does not hold changes nothing."""



class TicketStore(Protocol):
    def create_ticket(self, ticket: Ticket) -> bool: ...
    def ticket(self, ticket_id: str) -> Ticket | None: ...
    def update_ticket(self, ticket_id: str, **changes: Any) -> None: ...


class DatasetStore(Protocol):
    """Datasets, and the proposal documents that date their release."""

    def create_dataset(self, dataset: Dataset) -> bool: ...
    def dataset(self, dataset_id: str) -> Dataset | None: ...
    def datasets_of_product(self, product_id: str) -> list[Dataset]: ...
    def datasets_of_instance(self, instance_id: str) -> list[Dataset]: ...
    def record_qc(self, dataset_id: str, values: dict[str, float], notes: dict[str, str], at: dt.datetime) -> None:
        """The dataset's QC values (``obsflow.qc.recordable``) and notes replace what it had, on its record and in
        the per-metric index; ``at``: its creation time (datasets from then on are indexed). Idempotent."""
    def datasets_without_qc(self) -> list[Dataset]:
        """Datasets whose QC values were never recorded (catalogued before they were)."""
    def all_qc_indexed(self, oldest: dt.datetime) -> None:
        """Every dataset created from ``oldest`` on has its QC values recorded (after a reindex)."""
    def datasets_of_recipe(self, name: str) -> list[Dataset]: ...
    def datasets_with_status(self, status: str) -> list[Dataset]: ...
    def update_dataset(self, dataset_id: str, **changes: Any) -> None: ...
    def move_certification(self, dataset_id: str, to: str, allowed_from: tuple[str, ...], history: list[dict]) -> bool:
        """A master calibration's certification moved, with its whole history, only from ``allowed_from``."""
    def datasets_under_embargo(self) -> list[Dataset]:
        """Soonest release first."""
    def proposals(self, proposal_ids: set[str]) -> dict[str, Proposal]:
        """The proposals with a document among ``proposal_ids``."""



class DatasetQuery(Protocol):
    """The provenance query of `obsflow datasets list` (the read side's ``obsflow.reads.provenance.Provenance``)."""

    def dataset_ids(self, qc: tuple[QcFilter, ...] = (), **filters: str | None) -> set[str]:
        """The datasets matching every filter given (uses_frame, recipe, code_version, calibration, status,
        campaign, embargo; and QC filters). ValueError for a QC filter on a metric no dataset has, or while older
        datasets' QC values are not indexed (obsflow.qc.UNINDEXED)."""


class CampaignStore(Protocol):
    """Campaigns, and the tags their selections use."""

    def create_campaign(self, campaign: Campaign) -> bool:
        """False if a campaign of that name exists."""
    def campaign(self, name: str) -> Campaign | None: ...
    def all_campaigns(self) -> list[Campaign]: ...
    def update_campaign(self, name: str, **changes: Any) -> None: ...
    def record_occurrence(self, name: str, number: int, **changes: Any) -> bool:
        """Update while the campaign has recorded ``number - 1`` occurrences (``changes`` record the next); False if
        another caller recorded it first."""
    def datasets_of_campaign(self, name: str) -> list[Dataset]: ...
    def add_campaign_document(self, name: str, document: dict, after: list[dict]) -> bool:
        """Append the document's record while the campaign's documents are still ``after``; False if they are not
        (another was attached meanwhile) or there is no such campaign."""

    def add_tags(self, tag: str, target_ids: list[str], by: str, reason: str, at: dt.datetime) -> int:
        """Idempotent per (tag, id) while in force (a withdrawn statement is made again); returns how many were new."""
    def withdraw_tags(self, tag: str, target_ids: list[str], by: str, reason: str, at: dt.datetime) -> int:
        """Withdraw the statements in force (kept, with who, when and why); returns how many there were."""
    def tagged(self, tag: str) -> list[str]:
        """The ids the statements in force name."""


class RunStore(CandidateStore, InstanceStore, RunRecords, TicketStore, DatasetStore, CampaignStore, Protocol):
    """Every aggregate's port: what one adapter (runs.store.DynamoRunStore) and one fake implement."""


class Documents(Protocol):
    """JSON documents and products in the stage's buckets, by role."""

    def put_json(self, bucket: str, key: str, document: Any, tags: dict[str, str] | None = None) -> str:
        """Write (with ``tags`` as object tags); returns the SHA-256 of the bytes written."""
    def get_json(self, bucket: str, key: str) -> Any:
        """NotFound if there is none."""
    def get_json_many(self, bucket: str, keys: list[str]) -> list[Any]:
        """The documents at ``keys``, in their order (read side by side); NotFound if one is missing."""
    def exists(self, bucket: str, key: str) -> bool: ...
    def put_text(self, bucket: str, key: str, text: str, tags: dict[str, str] | None = None) -> None: ...
    def put_bytes(self, bucket: str, key: str, body: bytes, content_type: str) -> None: ...
    def get_bytes(self, bucket: str, key: str) -> bytes:
        """NotFound if there is none."""
    def copy(self, source_bucket: str, source_key: str, bucket: str, key: str,
             tags: dict[str, str] | None = None) -> None:
        """Copy with ``tags`` as the copy's object tags (S3 tags it as it writes: never untagged)."""
    def tag_prefix(self, bucket: str, prefix: str, tags: dict[str, str]) -> int:
        """Set ``tags`` on every object under ``prefix``; returns how many."""
    def keys(self, bucket: str, prefix: str) -> set[str]:
        """The keys of every object under ``prefix``."""
    def delete_prefix(self, bucket: str, prefix: str) -> int: ...
    def location(self, bucket: str) -> str:
        """The bucket's name, for records and messages."""


class Executions(Protocol):
    def start(self, run: Run) -> str:
        """Start (or find) the run's execution; returns its ARN. TransientError if it cannot."""
    def links(self, execution_arn: str | None, log_stream: str | None) -> dict:
        """Where an operator looks at an execution and a task's log."""
    def log_excerpt(self, log_stream: str | None) -> str | None: ...
    def failed_chunk(self, array_job_id: str) -> dict | None:
        """The first failed child of an array job (a data-parallel task's chunk): index, exit_code, log_stream, reason."""
    def stop(self, run: Run, reason: str) -> list[str]:
        """Stop the run's execution and terminate its Batch jobs that have not ended; the jobs terminated."""


class Notifier(Protocol):
    def notify_pi(self, proposal_id: str, dataset_id: str, subject: str, message: str) -> None: ...
    def notify_operators(self, ticket: Ticket) -> None: ...
    def nudge(self, reason: str) -> None:
        """Ask the submitter to run soon; a lost nudge is covered by its schedule."""


class ServiceDesk(Protocol):
    def create_request(self, ticket: Ticket) -> str:
        """Post the ticket; returns the service desk's key."""


class SubmissionSwitch(Protocol):
    def is_paused(self) -> bool: ...
    def set(self, state: str, reason: str = "") -> None: ...


class RecipeBook(Protocol):
    def get(self, name: str, version: str | None = None) -> Recipe: ...
    def select(self, instrument: str, recipe: str | None = None) -> Recipe: ...
    def rules(self) -> tuple[DiscoveryRule, ...]:
        """The discovery rules, upstream rules first."""

    def one_pass(self) -> AbstractContextManager:
        """Within it, each answer is read once (a submitter pass)."""


class JobDefinitions(Protocol):
    def register_image(self, image: str, resource_classes: list[str]) -> dict[str, str]:
        """A revision of each resource class's job definition running ``image``: resource class -> name:revision."""


class TaskRunner(Protocol):
    def run(self, recipe: Recipe, task: str, run_id: str, operator: str, note: str) -> tuple[int, str, str]:
        """Run one task here (manual execution): exit code, stdout, stderr."""
