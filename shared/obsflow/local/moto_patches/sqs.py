"""SQS: sending, receiving and deleting a message at a cost that does not grow with the backlog.

moto walks the whole queue, calling the clock twice per message, several times per request:
SendMessage computes every queue attribute (three of them count the queue's messages) to
read one; ReceiveMessage lists every visible message to take ten, then computes every
attribute again for each message it returns (to read the retention period); DeleteMessage
scans the queue twice for the receipt handle. Ingesting a backlog of n frames therefore
cost n^2: a receive and delete of ten messages took 2 s behind 1,000 waiting frames, and a
wave of 10,000 frames did not finish. It also remembers every receipt handle ever deleted,
so its memory and the saved state grow with every message the queue ever carried.

Here SendMessage does not count the messages it does not read; ReceiveMessage takes visible
messages as it goes and stops at ten, and reads the retention period itself; DeleteMessage
looks for the handle among the messages in flight first (where a handle being deleted
almost always is; elsewhere moto looks as before); and a queue remembers its most recently
deleted handles only (deleting one of those again succeeds, as on AWS; an older one is
refused as invalid, as AWS refuses an expired handle).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from moto.core.utils import unix_time
from moto.sqs.models import Queue, SQSBackend

REMEMBERED_DELETED_HANDLES = 1_000  # per queue: a hundred receives of ten; a retried delete comes at once

_sending = threading.local()


class _VisibleMessages:
    """A queue's visible messages, found as they are read (moto's `Queue.messages` made them all into a list)."""

    def __init__(self, messages: list):
        self._messages = messages

    def __iter__(self):
        return (m for m in self._messages if m.visible and not m.delayed)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:
        return next(iter(self), None) is not None


class _RecentHandles:
    """The receipt handles a queue deleted last, oldest forgotten first (moto kept a set of them all)."""

    def __init__(self, handles=()):
        self._handles: OrderedDict[str, None] = OrderedDict()
        self.update(handles)

    def __contains__(self, handle) -> bool:
        return handle in self._handles

    def __len__(self) -> int:
        return len(self._handles)

    def __iter__(self):
        return iter(self._handles)

    def update(self, handles) -> None:
        for handle in handles:
            self._handles[handle] = None
        while len(self._handles) > REMEMBERED_DELETED_HANDLES:
            self._handles.popitem(last=False)


def _visible_messages(self) -> _VisibleMessages:
    return _VisibleMessages(self._messages)


def _not_counted_while_sending(count):
    def counted(self):
        return None if getattr(_sending, "active", False) else count(self)

    return property(counted)


def _without_counting(send_message):
    def send(self, *args, **kwargs):
        _sending.active = True
        try:
            return send_message(self, *args, **kwargs)
        finally:
            _sending.active = False

    send.patched = True
    return send


def is_message_valid_based_on_retention_period(self: SQSBackend, queue_name: str, message) -> bool:
    retention_period = self.get_queue(queue_name).message_retention_period
    return retention_period + message.sent_timestamp / 1000 > unix_time()


def _in_flight_first(delete_message):
    def delete(self: Queue, receipt_handle: str) -> None:
        if not isinstance(self.deleted_messages, _RecentHandles):
            self.deleted_messages = _RecentHandles(self.deleted_messages)
        if receipt_handle in self.deleted_messages:
            return
        found = next((m for m in list(self.pending_messages) if m.had_receipt_handle(receipt_handle)), None)
        if found is None:
            return delete_message(self, receipt_handle)
        self.pending_messages.discard(found)
        self.deleted_messages.update(found.all_receipt_handles)
        messages = self._messages  # a new list, as moto makes: a receive may be walking the old one
        at = messages.index(found)  # by identity: a Message has no __eq__
        self._messages = messages[:at] + messages[at + 1:]

    delete.patched = True
    return delete


def apply() -> None:
    if getattr(Queue.delete_message, "patched", False):
        return
    Queue.messages = property(_visible_messages)
    for name in ("approximate_number_of_messages", "approximate_number_of_messages_delayed",
                 "approximate_number_of_messages_not_visible"):
        setattr(Queue, name, _not_counted_while_sending(getattr(Queue, name).fget))
    SQSBackend.send_message = _without_counting(SQSBackend.send_message)
    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period
    Queue.delete_message = _in_flight_first(Queue.delete_message)
