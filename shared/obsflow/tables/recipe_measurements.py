"""What the runs of each recipe version actually cost: totals that estimates are refined from.

Totals grow by atomic ADDs, once per run that succeeded (the caller records a run only
on its transition to SUCCEEDED), so concurrent runs never lose a measurement.
"""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

from obsflow.tables.base import get_or_none, table


@table("recipe-measurements")
class RecipeMeasurementItem(Model):
    class Meta:
        table_name = "obsflow-local-recipe-measurements"

    recipe_key = UnicodeAttribute(hash_key=True)  # "<name>@<version>"
    runs = NumberAttribute(default=0)
    frames = NumberAttribute(default=0)
    cpu_seconds = NumberAttribute(default=0)
    output_bytes = NumberAttribute(default=0)


def get(recipe_key: str) -> RecipeMeasurementItem | None:
    return get_or_none(RecipeMeasurementItem, recipe_key)


def add(recipe_key: str, frames: int, cpu_seconds: float, output_bytes: int) -> None:
    RecipeMeasurementItem(recipe_key).update(actions=[
        RecipeMeasurementItem.runs.add(1), RecipeMeasurementItem.frames.add(frames),
        RecipeMeasurementItem.cpu_seconds.add(cpu_seconds), RecipeMeasurementItem.output_bytes.add(output_bytes),
    ])
