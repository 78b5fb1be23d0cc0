"""Run slots per resource class: the set of runs holding one.

Taking a slot adds the run id to the set only while the set is smaller than the
limit; giving it back removes the id. Both are idempotent, so a re-delivered start
or finish never makes the count drift.
"""

from __future__ import annotations

from pynamodb.attributes import UnicodeAttribute, UnicodeSetAttribute
from pynamodb.models import Model

from obsflow.tables.base import table


@table("capacity")
class CapacityItem(Model):
    class Meta:
        table_name = "obsflow-local-capacity"

    resource_class = UnicodeAttribute(hash_key=True)
    run_ids = UnicodeSetAttribute(null=True)


def in_use(resource_classes: list[str]) -> dict[str, set[str]]:
    found = {item.resource_class: set(item.run_ids or ()) for item in CapacityItem.batch_get(resource_classes, consistent_read=True)}
    return {name: found.get(name, set()) for name in resource_classes}
