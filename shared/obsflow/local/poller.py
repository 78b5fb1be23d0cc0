"""An SQS event-source mapping for the local stack, batching the way Lambda does.

moto's own mapping delivers one message per invocation and ignores
batchItemFailures, so the local stack polls the queue itself: up to ``batch_size``
messages or ``window_s`` seconds, whichever comes first; successful messages are
deleted, failed ones come back after a short back-off, and the queue's redrive
policy moves a message that keeps failing to the dead-letter queue.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from obsflow import faults
from obsflow.local.lambda_runtime import LocalContext, sqs_event
from obsflow.observability import logger


class QueuePoller:
    def __init__(
        self,
        sqs,
        queue_url: str,
        handler: Callable[[dict, object], dict],
        *,
        function_name: str = "ingest",
        batch_size: int = 10,
        window_s: float = 0.5,
        retry_after_s: int = 1,
    ):
        self.sqs, self.queue_url, self.handler = sqs, queue_url, handler
        self.function_name, self.batch_size, self.window_s, self.retry_after_s = function_name, batch_size, window_s, retry_after_s
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
        self.queue_arn = attributes["QueueArn"]
        self.region = self.queue_arn.split(":")[3]
        self.invocations = 0
        self.errors = 0

    def _receive_batch(self) -> list[dict]:
        messages: list[dict] = []
        deadline = time.monotonic() + self.window_s
        while len(messages) < self.batch_size:
            wait = max(0.0, deadline - time.monotonic())
            received = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, self.batch_size - len(messages)),
                WaitTimeSeconds=1 if not messages and wait > 0 else 0,
                AttributeNames=["All"],
            ).get("Messages", [])
            messages.extend(received)
            if time.monotonic() >= deadline or (not received and messages):
                break
            if not received:
                time.sleep(min(0.05, wait))
        return messages

    def poll_once(self) -> int:
        """One invocation's worth: returns how many messages were handed to the handler."""
        messages = self._receive_batch()
        if not messages:
            return 0
        self.invocations += 1
        event = sqs_event(messages, self.queue_arn, self.region)
        try:
            if faults.strike(f"lambda:{self.function_name}.mid-batch"):  # dies halfway: its work so far stays done
                self.handler(sqs_event(messages[: len(messages) // 2], self.queue_arn, self.region),
                             LocalContext(self.function_name))
                raise RuntimeError("the invocation died mid-batch (injected by OBSFLOW_FAULTS)")
            response = self.handler(event, LocalContext(self.function_name)) or {}
            failed = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
        except Exception:
            self.errors += 1
            logger.exception("local ingest invocation failed; the whole batch will be retried")
            failed = {message["MessageId"] for message in messages}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        retry = [m for m in messages if m["MessageId"] in failed]
        if retry:
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": self.retry_after_s}
                    for i, m in enumerate(retry)
                ],
            )
        return len(messages)

    def drain(self, idle_polls: int = 2) -> int:
        """Poll until the queue stays empty (tests, benchmarks); returns messages handled."""
        handled, idle = 0, 0
        while idle < idle_polls:
            count = self.poll_once()
            handled += count
            idle = 0 if count else idle + 1
        return handled

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.poll_once()
            except Exception:
                # The local endpoint going away at shutdown, or a transient hiccup: keep polling.
                if stop.is_set():
                    return
                logger.exception("local ingest poller error")
                time.sleep(1)
