"""The runs layer's domain objects: what crosses the boundary between the service and its store.

Plain dataclasses: the store turns pynamodb items into these and back, so the service
(and its unit tests on fakes) never sees a table model or a boto3 client.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from obsflow.statuses import (  # noqa: F401 (the domain's vocabulary, re-exported)
    ACTIVE,
    AWAITING_APPROVAL,
    CAMPAIGN_PAUSED,
    CAMPAIGN_RUNNING,
    CANCELLED,
    CANDIDATE_STATUSES,
    COMPLETED,
    DATASET_STATUSES,
    DEPRECATED,
    DEVELOPMENT,
    DRAFT,
    ERROR,
    EXPIRED,
    FAILED,
    HELD,
    INSTANCE_RUNNING,
    INSTANCE_STATES,
    INSTANCE_SUCCEEDED,
    MANUAL,
    NEVER_EXECUTED,
    OPEN,
    PLANNED,
    QUEUED,
    QUEUED_FOR_REEXECUTION,
    READY,
    REJECTED,
    RESOLVED,
    RUN_CANCELLED,
    RUN_STATUSES,
    RUNNING,
    SKIPPED,
    SUBMITTED,
    SUCCEEDED,
    WAITING,
    WAITING_FOR_INPUT,
)

MAX_PRIORITY = 99

# The tag a person puts on a frame found bad after ingest: it is left out of every input dataset planned after.
BAD_FRAME = "bad-frame"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def queue_key(priority: int, estimated_cpu_s: float, created_at: dt.datetime, run_id: str) -> str:
    """Sorts higher priority first, then shorter estimated work, then older first."""
    return f"{MAX_PRIORITY - priority:02d}#{min(int(estimated_cpu_s), 10**12 - 1):012d}#{created_at.isoformat()}#{run_id}"


def slot_wait(resource_classes, in_use: dict[str, int], capacity: dict[str, int]) -> str | None:
    """Why a READY run waits for its slots (its classes that are full), or None: derived from the slots when
    shown, not written to each waiting run."""
    full = [f"{rc} {in_use[rc]}/{capacity[rc]}" for rc in resource_classes if in_use[rc] >= capacity[rc]]
    return f"waiting for a run slot: {', '.join(full)} in use" if full else None


@dataclass(frozen=True)
class Conflict:
    """What a later document or frame contradicted (recorded by ingest on the candidate)."""

    at: dt.datetime
    kind: str
    detail: str


@dataclass
class Candidate:
    candidate_id: str
    proposal_id: str
    instrument: str
    observe_op: str
    calibration_ops: list[str] = field(default_factory=list)
    recipe: str | None = None
    priority: int | None = None
    status: str = WAITING
    instance_id: str | None = None
    instance_ids: list[str] = field(default_factory=list)

    @property
    def op_ids(self) -> list[str]:
        return [self.observe_op, *self.calibration_ops]


@dataclass(frozen=True)
class OpProgress:
    """What the backstop needs of an OP: its counts and when its first frame came."""

    op_id: str
    expected: int | None
    received: int
    first_frame_at: dt.datetime | None
    task_type: str | None = None
    proposal_id: str | None = None  # its frames' ID___013


@dataclass(frozen=True)
class FrameRef:
    """Where a raw frame is and what it is: what an input dataset lists. A light view of
    ``ingest.frames.Frame``, so the runs layer does not load the header parser (astropy)."""

    file_id: str
    op_id: str
    task_type: str
    date_obs: str
    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    size: int
    proposal_id: str = ""
    instrument: str = ""
    exposure_ms: float | None = None  # the setup association compares (ingest.frames.setup_of)
    filter: str | None = None
    camera: str | None = None


@dataclass(frozen=True)
class InstanceInput:
    """One input edge of a recipe instance: frames of an OP, a catalogued dataset, or another instance's output."""

    role: str  # dark, gain, observe, calibration, science, ...
    kind: str  # "op", "frame" (one file id: a set of frames is one edge per frame), "dataset" or "instance"
    ref: str  # the OP id, the file id, the dataset id or the instance id

    @property
    def key(self) -> str:
        """What the input is, whatever its role: the lookup key of the reverse index."""
        return f"{self.kind}:{self.ref}"

    def as_dict(self) -> dict:
        return {"role": self.role, "kind": self.kind, "ref": self.ref}


@dataclass
class Instance:
    """A recipe version applied to typed inputs: the plan, a node of the processing catalogue."""

    instance_id: str
    candidate_id: str  # the candidate that first discovered it (runs and tickets name it)
    proposal_id: str
    recipe: str
    version: str
    observed_on: str
    created_at: dt.datetime
    inputs: list[InstanceInput] = field(default_factory=list)
    reference: str = ""  # "<night>/<proposal>": groups the instances of one night of one proposal
    rule: str | None = None  # the discovery rule that inserted it
    candidate_ids: set[str] = field(default_factory=set)
    priority: int = 0
    state: str = NEVER_EXECUTED
    state_reason: str | None = None
    input_dataset_key: str | None = None
    input_dataset_sha256: str | None = None
    planned_upstream: dict[str, str] = field(default_factory=dict)  # upstream instance -> dataset used at planning
    inputs_changed: str | None = None  # why it must run again, once it has succeeded
    dataset_id: str | None = None  # of its latest successful run
    date_processed: dt.datetime | None = None  # when its latest run ended, successfully or not
    estimated_cpu_s: float | None = None
    estimated_bytes: int | None = None
    release_date: str | None = None  # the latest of its inputs' release dates at planning (its dataset's decides)
    run_ids: set[str] = field(default_factory=set)
    campaign: str | None = None  # the campaign that made this copy of an instance (reprocessing)
    overrides: dict[str, Any] | None = None  # the campaign's configuration overrides

    def upstream_ids(self) -> list[str]:
        return [i.ref for i in self.inputs if i.kind == "instance"]

    @property
    def needs_plan(self) -> bool:
        """Never planned, or its inputs changed since it was."""
        return not self.run_ids or bool(self.inputs_changed)


@dataclass(frozen=True)
class HistoryEntry:
    status: str
    at: dt.datetime
    detail: str | None = None


@dataclass
class Run:
    """One execution of a recipe instance, with its as-run configuration."""

    run_id: str
    instance_id: str
    candidate_id: str
    proposal_id: str
    recipe: str
    version: str
    priority: int
    resource_classes: list[str]
    configuration: dict[str, Any]
    created_at: dt.datetime
    status: str = READY
    overrides: dict[str, Any] | None = None
    history: list[HistoryEntry] = field(default_factory=list)
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    execution_arn: str | None = None
    waiting_reason: str | None = None
    error: dict | None = None
    retry_of: str | None = None
    dataset_id: str | None = None
    redrives: int = 0
    input_dataset_key: str | None = None
    input_dataset_sha256: str | None = None
    estimated_cpu_s: float = 0.0
    measured_cpu_s: float | None = None
    output_bytes: int | None = None
    campaign: str | None = None
    # What it cost: Batch vCPU- and GiB-seconds, Lambda invocations, state transitions and USD (the price table).
    cost: dict | None = None

    @property
    def queue_key(self) -> str:
        return queue_key(self.priority, self.estimated_cpu_s, self.created_at, self.run_id)

    @property
    def execution_name(self) -> str:
        """Executions are named by run id; a redrive starts a new execution of the same run."""
        return self.run_id if not self.redrives else f"{self.run_id}-redrive-{self.redrives}"

    @property
    def attempt(self) -> int:
        """1 for the first execution, one more for each redrive or manual execution."""
        return max(1, sum(1 for entry in self.history if entry.status == RUNNING))

    @property
    def recipe_key(self) -> str:
        return f"{self.recipe}@{self.version}"

    @property
    def slots(self) -> list[str]:
        """The slots it holds while it runs: one per resource class, and one of its campaign (its concurrency)."""
        return [*self.resource_classes, *([campaign_slot(self.campaign)] if self.campaign else [])]


def campaign_slot(campaign: str) -> str:
    return f"campaign:{campaign}"


@dataclass
class Ticket:
    ticket_id: str
    kind: str
    summary: str
    created_at: dt.datetime
    status: str = OPEN
    run_id: str | None = None
    candidate_id: str | None = None
    proposal_id: str | None = None
    recipe: str | None = None
    failed_task: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    exit_code: int | None = None
    log_excerpt: str | None = None
    links: dict | None = None
    suggested_action: str | None = None
    resolved_at: dt.datetime | None = None
    resolution: str | None = None
    resolved_by: str | None = None
    external_key: str | None = None
    external_error: str | None = None
    attempts: list[int] | None = None


@dataclass
class Dataset:
    """The processed output of a run: science (L1), calibration (master darks, gain, bad pixels) or summary."""

    dataset_id: str
    run_id: str
    proposal_id: str
    candidate_id: str
    recipe: str
    bucket: str
    prefix: str
    product_id: str
    version_key: str
    frame_count: int
    files: list[dict]
    provenance: dict
    created_at: dt.datetime
    status: str = ACTIVE
    superseded_by: str | None = None
    kind: str = "science"
    instance_id: str | None = None
    reference: str | None = None
    recipe_name: str | None = None
    code_version: str | None = None
    decisions: list[dict] = field(default_factory=list)  # data-quality decisions: what, who, when, why
    cost: dict | None = None  # what the run that made it cost (``runs.costs``)
    campaign: str | None = None
    expires_at: dt.datetime | None = None  # a developer dataset's end of retention
    release_date: str | None = None  # ISO date: public from then, private to its proposal before (obsflow.embargo)
    release_basis: dict = field(default_factory=dict)  # proposal id -> latest observation date among its inputs
    embargo: str | None = None  # EMBARGOED until the release job releases it
    released_at: dt.datetime | None = None
    # Inputs data quality has since deprecated or rejected: which, replaced by what, who, when, why
    superseded_inputs: list[dict] = field(default_factory=list)
    qc: dict[str, float] | None = None  # its QC values (obsflow.qc), recorded when catalogued; None: not yet
    qc_notes: dict[str, str] = field(default_factory=dict)  # metric -> why its value is not recorded
    # A master calibration's certification (statuses.CERTIFICATION_STATUSES; None: not a calibration): its recipe's
    # gates as judged when catalogued (metric, min, max, value, passed, failure), and each move: who, when, why
    certification: str | None = None
    certification_gates: list[dict] = field(default_factory=list)
    certification_history: list[dict] = field(default_factory=list)


CAMPAIGN_TYPES = ("reprocessing", "developer", "commissioning", "calibration", "test")


@dataclass
class Campaign:
    """A named group of recipe runs with a definer, a reason, an input selection, overrides and a blast radius."""

    name: str
    campaign_type: str
    definer: str
    reason: str
    created_at: dt.datetime
    status: str = DRAFT
    status_reason: str | None = None
    plan_id: str | None = None
    recipe: str | None = None  # NAME@VERSION for a campaign over a selection
    overrides: dict[str, Any] | None = None
    selection: dict[str, Any] | None = None
    instance_ids: list[str] = field(default_factory=list)
    max_concurrent: int = 2  # runs of the campaign at once
    pause_after_failures: int = 3  # failed instances before it pauses itself
    priority: int = 0  # below new observations (recipes ship with 10-60) unless raised
    history: list[dict] = field(default_factory=list)
    # Developer campaigns: another task image (locally "path:DIR", a code path), an experimental calibration
    # dataset, outputs kept this many days under dev/<campaign>/, every intermediate kept, tasks re-run from one on.
    task_image: str | None = None
    calibration: str | None = None
    retention_days: int | None = None
    keep_intermediates: bool = False
    rerun_from_task: str | None = None
    job_definitions: dict[str, str] | None = None  # resource class -> the job definition revision with task_image
    # A recurring campaign (runs.schedules): its selection is evaluated again at each occurrence, which runs only
    # what no earlier occurrence selected; each occurrence is recorded with what it selected.
    schedule: str | None = None
    next_occurrence_at: dt.datetime | None = None
    occurrences: list[dict] = field(default_factory=list)
    documents: list[dict] = field(default_factory=list)  # kept with it (`campaigns attach`), oldest first
    # A large campaign's approval: why it needed one (its estimate against the sizes), then who approved it, when,
    # as which role and why. None: it needed none.
    approval: dict[str, Any] | None = None

    @property
    def developer(self) -> bool:
        return self.campaign_type == "developer"


def derive_instance_state(instance: Instance, runs: list[Run], waiting_for: str | None = None) -> tuple[str, str | None]:
    """The instance's state and why, from its runs (newest last) and what it still waits for."""
    if not runs:
        if waiting_for:
            return WAITING_FOR_INPUT, waiting_for
        return NEVER_EXECUTED, None
    latest = max(runs, key=lambda r: r.created_at)
    succeeded_before = any(r.status == SUCCEEDED for r in runs if r is not latest)
    if instance.inputs_changed and latest.status in (SUCCEEDED, FAILED):
        return QUEUED_FOR_REEXECUTION, instance.inputs_changed
    if latest.status in (READY, SUBMITTED, MANUAL):
        if succeeded_before:
            return QUEUED_FOR_REEXECUTION, instance.inputs_changed or f"run {latest.run_id} is {latest.status}"
        return QUEUED, latest.waiting_reason or f"run {latest.run_id} is {latest.status}"
    if latest.status == RUNNING:
        return INSTANCE_RUNNING, f"run {latest.run_id}"
    if latest.status == SUCCEEDED:
        return INSTANCE_SUCCEEDED, f"dataset {latest.dataset_id}"
    if latest.status in (RUN_CANCELLED, SKIPPED):  # nothing ran: what the instance was before, and why not now
        why = f"run {latest.run_id} {latest.status.lower()}: {latest.waiting_reason or 'its campaign was cancelled'}"
        return (INSTANCE_SUCCEEDED if succeeded_before else NEVER_EXECUTED), why
    failed = f"run {latest.run_id} failed: {(latest.error or {}).get('Error', 'see its ticket')}"
    if succeeded_before:  # a failed re-execution does not hide the dataset the instance has
        earlier = max((r for r in runs if r.status == SUCCEEDED), key=lambda r: r.created_at)
        return INSTANCE_SUCCEEDED, f"dataset {earlier.dataset_id}; its re-execution {failed}"
    return ERROR, failed
