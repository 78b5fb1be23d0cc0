"""Run slots per resource class: the set of runs holding one.

Taking a slot adds the run id to the set only while the set is smaller than the
limit; giving it back removes the id. Both are idempotent, so a re-delivered start
or finish never makes the count drift.
"""

from __future__ import annotations

import datetime as dt

from pynamodb.attributes import UnicodeAttribute, UnicodeSetAttribute
from pynamodb.connection import Connection
from pynamodb.expressions.condition import size
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from obsflow.tables import runs
from obsflow.tables.base import table, transact_if
from obsflow.tables.runs import RunItem


@table("capacity")
class CapacityItem(Model):
    class Meta:
        table_name = "obsflow-local-capacity"

    resource_class = UnicodeAttribute(hash_key=True)
    run_ids = UnicodeSetAttribute(null=True)


def in_use(resource_classes: list[str]) -> dict[str, set[str]]:
    found = {item.resource_class: set(item.run_ids or ()) for item in CapacityItem.batch_get(resource_classes, consistent_read=True)}
    return {name: found.get(name, set()) for name in resource_classes}


def take_slots(connection: Connection, run_id: str, resource_classes: list[str], capacity: dict[str, int],
               at: dt.datetime) -> bool:
    """READY -> SUBMITTED (counted) and a slot in each of the run's resource classes, together or not at all."""
    def writes(transaction: TransactWrite) -> None:
        for resource_class in resource_classes:
            transaction.update(
                CapacityItem(resource_class),
                actions=[CapacityItem.run_ids.add({run_id})],
                condition=CapacityItem.run_ids.does_not_exist()
                | (size(CapacityItem.run_ids) < capacity[resource_class]),
            )
        runs.move(transaction, run_id, runs.SUBMITTED, RunItem.status == runs.READY, at,
                  changes={"waiting_reason": None})
    return transact_if(connection, writes)


def give_back_slots(run_id: str, resource_classes: list[str]) -> None:
    """Idempotent: removing a run id that is not in the set changes nothing."""
    for resource_class in resource_classes:
        CapacityItem(resource_class).update(actions=[CapacityItem.run_ids.delete({run_id})])
