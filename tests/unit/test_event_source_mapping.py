"""The local stack's SQS event source mapping batches and scales the way Lambda's does."""

from __future__ import annotations

import threading

from obsflow.local.poller import QueuePoller

QUEUE_URL = "http://sqs.local/000000000000/ingest"


class FakeQueue:
    """An SQS queue in memory: received messages are in flight until deleted. ``trickle``: a receive finds one
    message, the next finds none, as when frames arrive one at a time."""

    def __init__(self, count: int, trickle: bool = False):
        self.waiting = [{"MessageId": f"m{i}", "ReceiptHandle": f"r{i}", "Body": "{}"} for i in range(count)]
        self.deleted: list[str] = []
        self.trickle, self._empty_next = trickle, False
        self._lock = threading.Lock()

    def get_queue_attributes(self, **_):
        return {"Attributes": {"QueueArn": "arn:aws:sqs:us-east-1:000000000000:ingest"}}

    def receive_message(self, MaxNumberOfMessages, **_):
        with self._lock:
            if self.trickle:
                self._empty_next, empty = not self._empty_next, self._empty_next
                if empty:
                    return {}
                MaxNumberOfMessages = 1
            taken, self.waiting = self.waiting[:MaxNumberOfMessages], self.waiting[MaxNumberOfMessages:]
        return {"Messages": taken}

    def delete_message_batch(self, Entries, **_):
        with self._lock:
            self.deleted.extend(entry["ReceiptHandle"] for entry in Entries)

    def change_message_visibility_batch(self, **_):
        raise AssertionError("no batch failed")


def test_a_trickle_of_messages_is_gathered_into_one_batch_within_the_window():
    # Given messages that arrive one receive at a time
    sqs = FakeQueue(10, trickle=True)
    batches = []
    poller = QueuePoller(sqs, QUEUE_URL, lambda event, context: batches.append(len(event["Records"])),
                         window_s=30.0)
    # When one batch is received
    poller.poll_once()
    # Then it waited for the rest of the batch within the window, rather than invoking for the first message
    assert batches == [10]
    assert len(sqs.deleted) == 10


def test_batches_wait_in_the_queue_while_every_invocation_is_busy():
    # Given 45 waiting messages, and invocations that hold until released
    sqs = FakeQueue(45)
    release, lock = threading.Event(), threading.Lock()
    busy, most_busy, batches = [0], [0], []

    def handler(event, context):
        with lock:
            busy[0] += 1
            most_busy[0] = max(most_busy[0], busy[0])
            batches.append(len(event["Records"]))
        release.wait(10)
        with lock:
            busy[0] -= 1

    poller = QueuePoller(sqs, QUEUE_URL, handler, window_s=0.05)
    stop = threading.Event()
    mapping = threading.Thread(target=poller.run, args=(stop, 2))
    # When the mapping runs with a concurrency of 2
    mapping.start()
    try:
        for _ in range(200):
            if busy[0] == 2:
                break
            release.wait(0.01)
        # Then two full batches are invoked at once and the rest stays in the queue
        assert busy[0] == 2
        assert len(sqs.waiting) == 25
        # And once they are released, every message is handled in full batches and deleted, two at a time at most
        release.set()
        for _ in range(500):
            if len(sqs.deleted) == 45:
                break
            stop.wait(0.01)
    finally:
        release.set()
        stop.set()
        mapping.join(5)
    assert sorted(batches) == [5, 10, 10, 10, 10]
    assert sorted(sqs.deleted) == sorted(f"r{i}" for i in range(45))
    assert most_busy[0] == 2
    assert not mapping.is_alive()
