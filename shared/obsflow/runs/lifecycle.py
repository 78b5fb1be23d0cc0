"""Run status transitions and run slots: conditional writes, so a repeated call changes nothing.

READY -> SUBMITTED (a slot per resource class taken, execution started) -> RUNNING
-> SUCCEEDED | FAILED (slots given back). Every transition appends to the run's history.
"""

from __future__ import annotations

import datetime as dt

from pynamodb.connection import Connection
from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.condition import size
from pynamodb.transactions import TransactWrite

from obsflow.errors import NotFound
from obsflow.ingest.store import transient
from obsflow.settings import Settings
from obsflow.tables import runs
from obsflow.tables.base import update_if
from obsflow.tables.capacity import CapacityItem
from obsflow.tables.runs import HistoryEntry, RunItem


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def require(run_id: str) -> RunItem:
    run = runs.get(run_id)
    if run is None:
        raise NotFound(f"no run {run_id!r}; `obsflow runs list` shows the known ones")
    return run


def _history(status: str, at: dt.datetime, detail: str | None) -> list[HistoryEntry]:
    return [HistoryEntry(status=status, at=at, detail=detail)]


def transition(run_id: str, to: str, allowed_from: tuple[str, ...], detail: str | None = None, actions=(), at=None) -> bool:
    """Move the run to ``to`` if it is in one of ``allowed_from``; False if it was not."""
    at = at or now()
    with transient(f"could not update run {run_id}"):
        return update_if(
            RunItem(run_id),
            [RunItem.status.set(to), RunItem.history.set(RunItem.history.append(_history(to, at, detail))), *actions],
            RunItem.status.is_in(*allowed_from),
        )


def note_waiting(run_id: str, reason: str) -> None:
    """Say why a READY run waits; nothing if it has started meanwhile."""
    with transient(f"could not update run {run_id}"):
        update_if(RunItem(run_id), [RunItem.waiting_reason.set(reason)], RunItem.status == runs.READY)


def take_slots(settings: Settings, run: RunItem, at: dt.datetime) -> bool:
    """READY -> SUBMITTED and a slot in each of the run's resource classes, together or not at all."""
    connection = Connection(region=settings.region, host=settings.endpoint_url)
    with transient(f"could not take slots for run {run.run_id}"):
        try:
            with TransactWrite(connection=connection) as transaction:
                for resource_class in run.resource_classes:
                    transaction.update(
                        CapacityItem(resource_class),
                        actions=[CapacityItem.run_ids.add({run.run_id})],
                        condition=CapacityItem.run_ids.does_not_exist()
                        | (size(CapacityItem.run_ids) < settings.capacity(resource_class)),
                    )
                transaction.update(
                    RunItem(run.run_id),
                    actions=[
                        RunItem.status.set(runs.SUBMITTED),
                        RunItem.waiting_reason.remove(),
                        RunItem.history.set(RunItem.history.append(_history(runs.SUBMITTED, at, None))),
                    ],
                    condition=RunItem.status == runs.READY,
                )
        except TransactWriteError as exc:
            reasons = exc.cancellation_reasons or []
            if any(reason is not None and reason.code == "ConditionalCheckFailed" for reason in reasons):
                return False
            raise
    return True


def give_back_slots(run: RunItem) -> None:
    """Idempotent: removing a run id that is not in the set changes nothing."""
    with transient(f"could not give back the slots of run {run.run_id}"):
        for resource_class in run.resource_classes:
            CapacityItem(resource_class).update(actions=[CapacityItem.run_ids.delete({run.run_id})])
