"""The runs layer's domain objects: what crosses the boundary between the service and its store.

Plain dataclasses: the store turns pynamodb items into these and back, so the service
(and its unit tests on fakes) never sees a table model or a boto3 client.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

# Candidate statuses (ingest makes it READY; the runs layer plans it).
WAITING, READY, PLANNED, HELD = "WAITING", "READY", "PLANNED", "HELD"
CANDIDATE_STATUSES = (WAITING, READY, PLANNED, HELD)

# Run statuses.
SUBMITTED, RUNNING, SUCCEEDED, FAILED = "SUBMITTED", "RUNNING", "SUCCEEDED", "FAILED"
MANUAL = "MANUAL"  # a manual-by-definition recipe: waits for `obsflow runs execute ID --manual`
RUN_STATUSES = (READY, SUBMITTED, RUNNING, MANUAL, SUCCEEDED, FAILED)
MAX_PRIORITY = 99

# Ticket and dataset statuses.
OPEN, RESOLVED = "OPEN", "RESOLVED"
ACTIVE, DEPRECATED = "ACTIVE", "DEPRECATED"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def queue_key(priority: int, created_at: dt.datetime, run_id: str) -> str:
    """Sorts higher priority first, then older first."""
    return f"{MAX_PRIORITY - priority:02d}#{created_at.isoformat()}#{run_id}"


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


@dataclass(frozen=True)
class FrameRef:
    """Where a raw frame is and what it is: what an input dataset lists."""

    file_id: str
    op_id: str
    task_type: str
    date_obs: str
    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    size: int


@dataclass
class Instance:
    """A recipe version applied to one input dataset: the plan."""

    instance_id: str
    candidate_id: str
    proposal_id: str
    recipe: str
    version: str
    input_dataset_key: str
    input_dataset_sha256: str
    observed_on: str
    created_at: dt.datetime
    run_ids: set[str] = field(default_factory=set)


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

    @property
    def queue_key(self) -> str:
        return queue_key(self.priority, self.created_at, self.run_id)

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


@dataclass
class Dataset:
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
