"""Registered recipes: one item per recipe version, holding its whole definition."""

from __future__ import annotations

from pynamodb.attributes import BooleanAttribute, JSONAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.models import Model

from obsflow.tables.base import table


@table("recipes")
class RecipeItem(Model):
    class Meta:
        table_name = "obsflow-local-recipes"

    name = UnicodeAttribute(hash_key=True)
    version = UnicodeAttribute(range_key=True)
    instrument = UnicodeAttribute()
    automated = BooleanAttribute()
    priority = NumberAttribute()
    state_machine = UnicodeAttribute()
    definition = JSONAttribute()
    registered_at = UTCDateTimeAttribute()
    registered_by = UnicodeAttribute(null=True)


def versions(name: str) -> list[RecipeItem]:
    return list(RecipeItem.query(name))


def all_recipes() -> list[RecipeItem]:
    """Operator listing (a handful of items)."""
    return sorted(RecipeItem.scan(), key=lambda r: (r.name, r.version))
