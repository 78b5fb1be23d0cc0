"""Recipe runs: one execution of a recipe instance, with its as-run configuration and history.

The by-status index is sorted by ``queue_key`` (priority, then age), so the runs
waiting to start come back in the order they should start.
"""

from __future__ import annotations

import datetime as dt

from pynamodb.attributes import (
    JSONAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from obsflow.tables.base import get_or_none, table

READY, SUBMITTED, RUNNING, SUCCEEDED, FAILED = "READY", "SUBMITTED", "RUNNING", "SUCCEEDED", "FAILED"
MANUAL = "MANUAL"  # a manual-by-definition recipe: waits for `obsflow runs execute ID --manual`
STATUSES = (READY, SUBMITTED, RUNNING, MANUAL, SUCCEEDED, FAILED)
ACTIVE = (SUBMITTED, RUNNING)
MAX_PRIORITY = 99


def queue_key(priority: int, created_at: dt.datetime, run_id: str) -> str:
    """Sorts higher priority first, then older first."""
    return f"{MAX_PRIORITY - priority:02d}#{created_at.isoformat()}#{run_id}"


class RunsByStatus(GlobalSecondaryIndex):
    class Meta:
        index_name = "by-status"
        projection = AllProjection()

    status = UnicodeAttribute(hash_key=True)
    queue_key = UnicodeAttribute(range_key=True)


class HistoryEntry(MapAttribute):
    status = UnicodeAttribute()
    at = UTCDateTimeAttribute()
    detail = UnicodeAttribute(null=True)


@table("runs")
class RunItem(Model):
    class Meta:
        table_name = "obsflow-local-runs"

    run_id = UnicodeAttribute(hash_key=True)
    instance_id = UnicodeAttribute()
    candidate_id = UnicodeAttribute()
    proposal_id = UnicodeAttribute()
    recipe = UnicodeAttribute()
    version = UnicodeAttribute()
    priority = NumberAttribute()
    resource_classes = ListAttribute(of=UnicodeAttribute)
    status = UnicodeAttribute()
    queue_key = UnicodeAttribute()
    configuration = JSONAttribute()
    overrides = JSONAttribute(null=True)
    history = ListAttribute(of=HistoryEntry, default=list)
    created_at = UTCDateTimeAttribute()
    started_at = UTCDateTimeAttribute(null=True)
    finished_at = UTCDateTimeAttribute(null=True)
    execution_arn = UnicodeAttribute(null=True)
    waiting_reason = UnicodeAttribute(null=True)
    error = JSONAttribute(null=True)
    retry_of = UnicodeAttribute(null=True)
    dataset_id = UnicodeAttribute(null=True)
    redrives = NumberAttribute(default=0)

    by_status = RunsByStatus()


def execution_name(run: "RunItem") -> str:
    """Executions are named by run id; a redrive starts a new execution of the same run."""
    return run.run_id if not run.redrives else f"{run.run_id}-redrive-{run.redrives}"


def get(run_id: str) -> RunItem | None:
    return get_or_none(RunItem, run_id)


def with_status(status: str, limit: int | None = None) -> list[RunItem]:
    """In start order: priority, then age."""
    return list(RunItem.by_status.query(status, limit=limit))


def all_runs() -> list[RunItem]:
    return sorted((run for status in STATUSES for run in with_status(status)), key=lambda r: r.created_at)
