"""Recipe instances: the processing catalogue's nodes (a recipe version applied to typed inputs).

``state`` is derived from the instance's runs and written with every change, so the
catalogue is listed by state or by reference (night/proposal) from an index, never a scan.

``plan_due`` marks an instance the submitter must look at (new, its inputs changed, or an upstream
instance or calibration moved): a sparse index of those alone, so a submitter pass reads what is due,
not every instance that waits.
"""

from __future__ import annotations

import datetime as dt
import uuid

from pynamodb.attributes import (
    JSONAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from obsflow.tables.base import LISTED, get_or_none, newest_items, page, table, update_if

DUE = "DUE"


class InstancesByState(GlobalSecondaryIndex):
    class Meta:
        index_name = "by-state"
        projection = AllProjection()

    state = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class InstancesByCreated(GlobalSecondaryIndex):
    """Every instance, newest first (``catalogue list`` pages)."""

    class Meta:
        index_name = "by-created"
        projection = KeysOnlyProjection()

    listing = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class InstancesDueForPlanning(GlobalSecondaryIndex):
    """Sparse: only instances marked due carry ``plan_due``; oldest mark first. Keys only: the submitter reads
    each due instance once, consistently, before it plans it."""

    class Meta:
        index_name = "due-for-planning"
        projection = KeysOnlyProjection()

    plan_due = UnicodeAttribute(hash_key=True)
    plan_due_at = UnicodeAttribute(range_key=True)


class InstancesByReference(GlobalSecondaryIndex):
    class Meta:
        index_name = "by-reference"
        projection = AllProjection()

    reference = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


@table("recipe-instances")
class RecipeInstanceItem(Model):
    class Meta:
        table_name = "obsflow-local-recipe-instances"

    instance_id = UnicodeAttribute(hash_key=True)
    candidate_id = UnicodeAttribute()
    proposal_id = UnicodeAttribute()
    recipe = UnicodeAttribute()
    version = UnicodeAttribute()
    observed_on = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    reference = UnicodeAttribute()
    rule = UnicodeAttribute(null=True)
    candidate_ids = UnicodeSetAttribute(null=True)
    priority = NumberAttribute(default=0)
    state = UnicodeAttribute()
    state_reason = UnicodeAttribute(null=True)
    input_dataset_key = UnicodeAttribute(null=True)
    input_dataset_sha256 = UnicodeAttribute(null=True)
    planned_upstream = JSONAttribute(null=True)
    inputs_changed = UnicodeAttribute(null=True)
    dataset_id = UnicodeAttribute(null=True)
    date_processed = UTCDateTimeAttribute(null=True)
    estimated_cpu_s = NumberAttribute(null=True)
    estimated_bytes = NumberAttribute(null=True)
    release_date = UnicodeAttribute(null=True)
    run_ids = UnicodeSetAttribute(null=True)
    campaign = UnicodeAttribute(null=True)
    overrides = JSONAttribute(null=True)
    plan_due = UnicodeAttribute(null=True)  # DUE while the submitter must look at it
    plan_due_at = UnicodeAttribute(null=True)  # when it was marked, and a nonce: what a look clears
    listing = UnicodeAttribute(default=LISTED)

    by_state = InstancesByState()
    by_reference = InstancesByReference()
    due_for_planning = InstancesDueForPlanning()
    by_created = InstancesByCreated()


def get(instance_id: str) -> RecipeInstanceItem | None:
    return get_or_none(RecipeInstanceItem, instance_id)


def with_state(state: str) -> list[RecipeInstanceItem]:
    return list(RecipeInstanceItem.by_state.query(state))


def of_reference(reference: str) -> list[RecipeInstanceItem]:
    return list(RecipeInstanceItem.by_reference.query(reference))


def instances_page(state: str | None, reference: str | None, limit: int,
                   start: dict | None) -> tuple[list[RecipeInstanceItem], dict | None]:
    """A page of instances newest first: of a reference, or in a state, else all (ids, then the instances)."""
    if reference:
        return page(RecipeInstanceItem.by_reference.query, reference, limit, start,
                    filter_condition=RecipeInstanceItem.state == state if state else None)
    if state:
        return page(RecipeInstanceItem.by_state.query, state, limit, start)
    return newest_items(RecipeInstanceItem, limit, start)


def due_mark(at: dt.datetime) -> str:
    """When, and a nonce: a look that began before a newer mark does not clear it."""
    return f"{at.astimezone(dt.timezone.utc):%Y-%m-%dT%H:%M:%S.%f}#{uuid.uuid4().hex[:8]}"


def due_for_planning() -> list[tuple[str, str]]:
    """(instance id, its due mark) of every instance marked due, oldest mark first."""
    return [(item.instance_id, item.plan_due_at) for item in RecipeInstanceItem.due_for_planning.query(DUE)]


def mark_due(instance_id: str, at: dt.datetime) -> bool:
    """Mark a recorded instance due (a newer mark replaces an older); False if there is no such instance."""
    return update_if(RecipeInstanceItem(instance_id),
                     [RecipeInstanceItem.plan_due.set(DUE), RecipeInstanceItem.plan_due_at.set(due_mark(at))],
                     RecipeInstanceItem.instance_id.exists())


def clear_due(instance_id: str, mark: str) -> bool:
    """Take the mark off, unless it was marked again since it was read as ``mark``."""
    return update_if(RecipeInstanceItem(instance_id),
                     [RecipeInstanceItem.plan_due.remove(), RecipeInstanceItem.plan_due_at.remove()],
                     RecipeInstanceItem.plan_due_at == mark)
