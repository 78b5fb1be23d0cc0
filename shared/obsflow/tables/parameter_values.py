"""Parameter values set as data (`obsflow recipes set-value`): who set which value, effective from when, and why.

One item per setting, never overwritten: the value effective on a date is the one with the
latest effective date on or before it, and of those the latest set.
"""

from __future__ import annotations

from pynamodb.attributes import JSONAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.models import Model

from obsflow.tables.base import table


@table("parameter-values")
class ParameterValueItem(Model):
    class Meta:
        table_name = "obsflow-local-parameter-values"

    recipe = UnicodeAttribute(hash_key=True)  # the recipe name: a value applies to every version with the parameter
    setting = UnicodeAttribute(range_key=True)  # "<parameter>#<effective from>#<set at>"
    parameter = UnicodeAttribute()
    value = JSONAttribute()
    effective_from = UnicodeAttribute()
    set_by = UnicodeAttribute()
    reason = UnicodeAttribute()
    set_at = UTCDateTimeAttribute()


def of_recipe(recipe: str) -> list[ParameterValueItem]:
    return list(ParameterValueItem.query(recipe, consistent_read=True))
