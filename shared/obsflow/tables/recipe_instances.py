"""Recipe instances: a recipe version applied to one input dataset (the plan)."""

from __future__ import annotations

from pynamodb.attributes import UnicodeAttribute, UnicodeSetAttribute, UTCDateTimeAttribute
from pynamodb.models import Model

from obsflow.tables.base import get_or_none, table


@table("recipe-instances")
class RecipeInstanceItem(Model):
    class Meta:
        table_name = "obsflow-local-recipe-instances"

    instance_id = UnicodeAttribute(hash_key=True)
    candidate_id = UnicodeAttribute()
    proposal_id = UnicodeAttribute()
    recipe = UnicodeAttribute()
    version = UnicodeAttribute()
    input_dataset_key = UnicodeAttribute()
    input_dataset_sha256 = UnicodeAttribute()
    observed_on = UnicodeAttribute()
    run_ids = UnicodeSetAttribute(null=True)
    created_at = UTCDateTimeAttribute()


def get(instance_id: str) -> RecipeInstanceItem | None:
    return get_or_none(RecipeInstanceItem, instance_id)
