"""Recipe runs: one execution of a recipe instance, with its as-run configuration and history.

The by-status index is sorted by ``queue_key`` (priority, then age), so the runs
waiting to start come back in the order they should start.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from pynamodb.attributes import (
    JSONAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.connection import Connection
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, IncludeProjection
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from obsflow.statuses import FAILED, MANUAL, READY, RUNNING, SUBMITTED, SUCCEEDED  # noqa: F401
from obsflow.statuses import RUN_STATUSES as STATUSES  # noqa: F401 (the table's statuses)
from obsflow.tables import run_counts
from obsflow.tables.base import (
    LISTED,
    changes_to_actions,
    fills,
    get_or_none,
    newest_items,
    page,
    table,
    transact_if,
    update_if,
)


QUEUE_PAGE = 25  # READY runs read at a time from a queue: a pass usually starts a few


class RunsByStatus(GlobalSecondaryIndex):
    class Meta:
        index_name = "by-status"
        projection = AllProjection()

    status = UnicodeAttribute(hash_key=True)
    queue_key = UnicodeAttribute(range_key=True)


class RunsReadyFor(GlobalSecondaryIndex):
    """Sparse: only READY runs carry ``ready_for``, the set of resource classes they need (``ready_queue``): one
    queue per set, in start order. A submitter pass reads only the queues whose classes have a free slot."""

    class Meta:
        index_name = "ready-for"
        projection = AllProjection()

    ready_for = UnicodeAttribute(hash_key=True)
    queue_key = UnicodeAttribute(range_key=True)


class RunsByCreated(GlobalSecondaryIndex):
    """Every run, newest first (``runs list`` pages)."""

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
    ready_for = UnicodeAttribute(null=True)  # while READY: its queue

    by_status = RunsByStatus()
    ready = RunsReadyFor()
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


def create(connection: Connection, item: RunItem) -> bool:
    """Record a new run and count its status; False if it was recorded before (nothing is counted again)."""
    def writes(transaction: TransactWrite) -> None:
        transaction.save(item, condition=RunItem.run_id.does_not_exist())
        run_counts.count(transaction, ((entry.at, entry.status) for entry in item.history))
    return transact_if(connection, writes)


@fills(run_counts.TABLE)
def fill_counts() -> int:
    """Count the histories of the runs recorded before the counts were kept (once, when their table is added); how
    many counts."""
    return run_counts.write_counts((entry.at, entry.status) for item in RunItem.scan(attributes_to_get=["history"])
                                   for entry in item.history or ())


def history_actions(status: str, at: dt.datetime, detail: str | None) -> list:
    """Set the status and append it to the history; a run that leaves READY leaves its queue."""
    entry = [HistoryEntry(status=status, at=at, detail=detail)]
    return [RunItem.status.set(status), RunItem.history.set(RunItem.history.append(entry)),
            *([] if status == READY else [RunItem.ready_for.remove()])]


def ready_queue(resource_classes) -> str:
    """The queue a READY run waits in: one per set of resource classes it needs."""
    return "+".join(sorted(set(resource_classes)))


def ready_in(queue: str) -> Iterator[RunItem]:
    """The READY runs of one queue in start order, read a few at a time as they are taken."""
    return iter(RunItem.ready.query(queue, page_size=QUEUE_PAGE))


@fills(RunsReadyFor.Meta.index_name)
def fill_queues() -> int:
    """Put each READY run recorded before the ready-for index in its queue (once, when the index is added); how
    many."""
    filled = 0
    for item in RunItem.by_status.query(READY, filter_condition=RunItem.ready_for.does_not_exist()):
        filled += update_if(item, [RunItem.ready_for.set(ready_queue(item.resource_classes))], RunItem.status == READY)
    return filled


def transition(connection: Connection, run_id: str, to: str, allowed_from: tuple[str, ...], at: dt.datetime,
               detail: str | None = None, changes: dict[str, Any] | None = None) -> bool:
    """Move the run to ``to`` and count it, if it is in one of ``allowed_from``; False if it was not."""
    condition = RunItem.status.is_in(*allowed_from)
    return transact_if(connection, lambda transaction: move(transaction, run_id, to, condition, at, detail, changes))


def move(transaction: TransactWrite, run_id: str, to: str, condition, at: dt.datetime, detail: str | None = None,
         changes: dict[str, Any] | None = None) -> None:
    """Add to a transaction: the run moves to ``to`` (while ``condition`` holds), and the move is counted."""
    actions = [*history_actions(to, at, detail), *changes_to_actions(RunItem, changes or {})]
    transaction.update(RunItem(run_id), actions, condition=condition)
    run_counts.count(transaction, [(at, to)])


def note_waiting(run_id: str, reason: str | None) -> None:
    """Say why a READY run waits (None: nothing but its slots, which are shown as they are); nothing if it has
    started meanwhile."""
    action = RunItem.waiting_reason.remove() if reason is None else RunItem.waiting_reason.set(reason)
    update_if(RunItem(run_id), [action], RunItem.status == READY)
