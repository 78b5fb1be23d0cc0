"""Conflict events: what a later document or frame contradicted, kept on the OP or candidate it concerns.

A history, not a log: at most MAX_EVENTS per item (the first ones, which an operator needs most;
counts stay exact in their own attributes and every rejected object in the quarantine table), so
no item grows with the number of frames.
"""

from __future__ import annotations

import datetime as dt

from pynamodb.attributes import MapAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import UpdateError

from obsflow.tables.base import CONDITION_FAILED

MAX_EVENTS = 100


class ConflictEvent(MapAttribute):
    at = UTCDateTimeAttribute()
    kind = UnicodeAttribute()
    detail = UnicodeAttribute()


def append(item, kind: str, detail: str, at: dt.datetime, actions: tuple = (), condition=None) -> bool:
    """Add the event to ``item``'s history with ``actions`` in one update (under ``condition``, if any: an
    UpdateError if it fails); False if the history is full, the actions then applied without the event."""
    model = type(item)
    event = ConflictEvent(at=at, kind=kind, detail=detail)
    room = model.events[MAX_EVENTS - 1].does_not_exist()
    try:
        item.update(actions=[model.events.set((model.events | []).append([event])), *actions],
                    condition=room if condition is None else room & condition)
        return True
    except UpdateError as exc:
        if exc.cause_response_code != CONDITION_FAILED:
            raise
    if actions:  # the history is full, or the caller's condition failed (then this fails the same way)
        item.update(actions=list(actions), condition=condition)
    return False


def history(item) -> list[dict]:
    return [{"at": e.at, "kind": e.kind, "detail": e.detail} for e in (item.events or [])]
