"""The processing catalogue's edges: one item per input of a recipe instance, indexed both ways.

Keyed by instance (what an instance uses) with an index by input (which instances use a
given OP, frame set, dataset or instance). Edges are only ever added, each with a
put that names it fully, so recording an edge twice changes nothing.
"""

from __future__ import annotations

from pynamodb.attributes import UnicodeAttribute
from pynamodb.indexes import KeysOnlyProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from obsflow.tables.base import table


class EdgesByInput(GlobalSecondaryIndex):
    class Meta:
        index_name = "by-input"
        projection = KeysOnlyProjection()

    input_key = UnicodeAttribute(hash_key=True)  # "<kind>:<ref>", e.g. "op:OP1", "instance:ri-..."
    instance_id = UnicodeAttribute(range_key=True)


@table("catalogue-edges")
class InputEdgeItem(Model):
    class Meta:
        table_name = "obsflow-local-catalogue-edges"

    instance_id = UnicodeAttribute(hash_key=True)
    edge = UnicodeAttribute(range_key=True)  # "<role>#<kind>:<ref>"
    role = UnicodeAttribute()
    kind = UnicodeAttribute()
    ref = UnicodeAttribute()
    input_key = UnicodeAttribute()

    by_input = EdgesByInput()


def inputs_of(instance_id: str) -> list[InputEdgeItem]:
    return list(InputEdgeItem.query(instance_id, consistent_read=True))


def users_of(input_key: str) -> list[str]:
    """The instances that use the input, in id order."""
    return sorted({edge.instance_id for edge in InputEdgeItem.by_input.query(input_key)})
