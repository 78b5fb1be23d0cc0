"""Recipe instances: the processing catalogue's nodes (a recipe version applied to typed inputs).

``state`` is derived from the instance's runs and written with every change, so the
catalogue is listed by state or by reference (night/proposal) from an index, never a scan.
"""

from __future__ import annotations

from pynamodb.attributes import (
    JSONAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from obsflow.tables.base import get_or_none, table


class InstancesByState(GlobalSecondaryIndex):
    class Meta:
        index_name = "by-state"
        projection = AllProjection()

    state = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


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

    by_state = InstancesByState()
    by_reference = InstancesByReference()


def get(instance_id: str) -> RecipeInstanceItem | None:
    return get_or_none(RecipeInstanceItem, instance_id)


def with_state(state: str) -> list[RecipeInstanceItem]:
    return list(RecipeInstanceItem.by_state.query(state))


def of_reference(reference: str) -> list[RecipeInstanceItem]:
    return list(RecipeInstanceItem.by_reference.query(reference))
