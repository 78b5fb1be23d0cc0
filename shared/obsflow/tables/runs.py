"""Recipe runs: one execution of a recipe instance, with its as-run configuration and history.

The by-status index is sorted by ``queue_key`` (priority, then age), so the runs
waiting to start come back in the order they should start.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pynamodb.attributes import (
    JSONAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, IncludeProjection
from pynamodb.models import Model

from obsflow.statuses import FAILED, MANUAL, READY, RUNNING, SUBMITTED, SUCCEEDED  # noqa: F401
from obsflow.statuses import RUN_STATUSES as STATUSES  # noqa: F401 (the table's statuses)
from obsflow.tables.base import LISTED, changes_to_actions, get_or_none, newest_items, page, table, update_if


class RunsByStatus(GlobalSecondaryIndex):
    class Meta:
        index_name = "by-status"
        projection = AllProjection()

    status = UnicodeAttribute(hash_key=True)
    queue_key = UnicodeAttribute(range_key=True)


class RunsByCreated(GlobalSecondaryIndex):
    """Every run, newest first, with its status (``runs list`` pages; the monitor counts a day's runs)."""

    class Meta:
        index_name = "by-created"
        projection = IncludeProjection(["status"])

    listing = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


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
    input_dataset_key = UnicodeAttribute(null=True)
    input_dataset_sha256 = UnicodeAttribute(null=True)
    estimated_cpu_s = NumberAttribute(default=0)
    measured_cpu_s = NumberAttribute(null=True)
    output_bytes = NumberAttribute(null=True)
    cost = JSONAttribute(null=True)
    campaign = UnicodeAttribute(null=True)
    listing = UnicodeAttribute(default=LISTED)

    by_status = RunsByStatus()
    by_created = RunsByCreated()


def get(run_id: str) -> RunItem | None:
    return get_or_none(RunItem, run_id)


def with_status(status: str, limit: int | None = None) -> list[RunItem]:
    """In start order: priority, then age."""
    return list(RunItem.by_status.query(status, limit=limit))


def all_runs() -> list[RunItem]:
    return sorted((run for status in STATUSES for run in with_status(status)), key=lambda r: r.created_at)


def runs_page(status: str | None, limit: int, start: dict | None) -> tuple[list[RunItem], dict | None]:
    """A page of runs: of ``status`` in start order, else every run newest first (their ids, then the runs)."""
    if status:
        return page(RunItem.by_status.query, status, limit, start, newest_first=False)
    return newest_items(RunItem, limit, start)


def statuses_since(at: dt.datetime) -> list[str]:
    """The status of every run created since ``at`` (one query of the listing index, a day's runs)."""
    return [item.status for item in RunItem.by_created.query(LISTED, RunItem.created_at >= at,
                                                             attributes_to_get=["status"])]


def history_actions(status: str, at: dt.datetime, detail: str | None) -> list:
    """Set the status and append it to the history."""
    entry = [HistoryEntry(status=status, at=at, detail=detail)]
    return [RunItem.status.set(status), RunItem.history.set(RunItem.history.append(entry))]


def transition(run_id: str, to: str, allowed_from: tuple[str, ...], at: dt.datetime, detail: str | None = None,
               changes: dict[str, Any] | None = None) -> bool:
    """Move the run to ``to`` if it is in one of ``allowed_from``; False if it was not."""
    return update_if(
        RunItem(run_id),
        [*history_actions(to, at, detail), *changes_to_actions(RunItem, changes or {})],
        RunItem.status.is_in(*allowed_from),
    )


def note_waiting(run_id: str, reason: str) -> None:
    """Say why a READY run waits; nothing if it has started meanwhile."""
    update_if(RunItem(run_id), [RunItem.waiting_reason.set(reason)], RunItem.status == READY)
