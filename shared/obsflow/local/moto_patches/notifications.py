"""S3 -> SQS notifications: an upload that fed a queue far behind is answered once the queue has caught up.

On AWS the ingest function scales out on CPUs of its own as frames arrive. The local stack serves S3 and runs the
ingest invocations in one interpreter, so a sender uploading as fast as it could took the interpreter's time from
counting: the queue grew with the upload, and a candidate was READY seconds after its last frame (1,000 frames
from 8 threads: p50 3.3 s, p99 5.8 s). Here a queue can be held to a bound (``hold``): a request whose object
notified it is answered once the queue holds no more than that many messages not yet deleted. The object and its
message are stored at once, as before; only the answer waits, so the sender goes at the rate the stack counts, as
a service slows a client that outruns it. A queue that stops draining (ingest stalled or failing) holds no one:
a request waits only while the queue shrinks, and never longer than ``MOST_HELD_S``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import moto.s3.notifications as s3_notifications
from moto.s3.responses import S3Response
from moto.sqs.models import sqs_backends
from moto.utilities.arns import parse_arn

POLL_S = 0.05
# The queue did not shrink for this long: whatever drains it has stopped (a batch takes 0.3-3 s on a busy machine).
STALLED_S = 5.0
MOST_HELD_S = 30.0

_bounds: dict[tuple[str, str, str], int] = {}  # (account, region, queue name) -> most messages not yet deleted
_request = threading.local()


def hold(queue_arn: str, bound: int) -> Callable[[], None]:
    """Answer each upload that notifies the queue once it holds at most ``bound`` messages not yet deleted. Returns
    what releases the queue: an upload still waiting for it is answered then."""
    arn = parse_arn(queue_arn)
    queue = (arn.account, arn.region, arn.resource_id)
    _bounds[queue] = bound
    return lambda: _bounds.pop(queue, None)


def _over_bound(queue: tuple[str, str, str], waiting: int) -> bool:
    bound = _bounds.get(queue)  # None once released
    return bound is not None and waiting > bound


def waiting(account: str, region: str, name: str) -> int | None:
    """How many messages the queue holds (received or not: each waits for its consumer), None: no such queue."""
    queue = sqs_backends[account][region].queues.get(name)
    return None if queue is None else len(queue._messages)


def _caught_up(account: str, region: str, name: str) -> None:
    held = waiting(account, region, name)
    if held is None:  # deleted since: nothing to wait for
        return
    started = shrank = time.monotonic()
    while _over_bound((account, region, name), held):
        time.sleep(POLL_S)
        now, before, held = time.monotonic(), held, waiting(account, region, name) or 0
        if held < before:
            shrank = now
        if now - shrank > STALLED_S or now - started > MOST_HELD_S:
            return


def _notes_the_queue(send_sqs_message):
    def send_and_note(account_id, event_body, queue_name, region_name):
        send_sqs_message(account_id, event_body, queue_name, region_name)
        if (account_id, region_name, queue_name) in _bounds:
            _request.notified = (account_id, region_name, queue_name)

    send_and_note.patched = True
    return send_and_note


def _answered_when_caught_up(key_response):
    def respond(self, *args, **kwargs):
        _request.notified = None
        response = key_response(self, *args, **kwargs)
        notified, _request.notified = _request.notified, None
        if notified is not None:
            _caught_up(*notified)
        return response

    return respond


def apply() -> None:
    if getattr(s3_notifications._send_sqs_message, "patched", False):
        return
    s3_notifications._send_sqs_message = _notes_the_queue(s3_notifications._send_sqs_message)
    S3Response.key_response = _answered_when_caught_up(S3Response.key_response)
