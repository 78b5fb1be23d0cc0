"""The ingest dead-letter queue, for operators: what its messages name, and sending them back to be ingested.

A notification lands there after MAX_RECEIVE_COUNT failed deliveries (a transient failure that outlasted the
retries; bad content is quarantined, not dead-lettered). Listing does not consume: each message is received
hidden while the others are read, then shown again. A redrive sends each message back to the ingest queue, then deletes it here;
ingest is idempotent, so a message sent twice counts its frames once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from obsflow.errors import Rejected
from obsflow.ingest.service import object_refs


@dataclass
class DeadLetter:
    message_id: str
    keys: list[str]
    receives: int
    sent_at: str

    def row(self) -> dict:
        return {"message_id": self.message_id, "keys": self.keys, "receives": self.receives, "sent_at": self.sent_at}


def _letter(message: dict) -> DeadLetter:
    try:
        keys = [ref.key for ref in object_refs(message["Body"])]
    except (Rejected, KeyError, TypeError):
        keys = ["(not an S3 notification)"]
    attributes = message.get("Attributes", {})
    sent = dt.datetime.fromtimestamp(int(attributes.get("SentTimestamp", 0)) / 1000, dt.timezone.utc)
    return DeadLetter(message["MessageId"], keys, int(attributes.get("ApproximateReceiveCount", 0)),
                      sent.isoformat(timespec="seconds"))


# How long a listed message stays hidden while the rest are read (then made visible again at once).
PEEK_HIDDEN_S = 60


def peek(sqs, dlq_url: str, limit: int = 1000) -> list[DeadLetter]:
    """Up to ``limit`` messages of the queue, oldest first, left in place. Each is hidden while the others are
    read (a receive returns at most 10, and without hiding them, the same 10 again), then shown again."""
    seen: dict[str, DeadLetter] = {}
    handles: list[str] = []
    try:
        while len(seen) < limit:
            messages = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=PEEK_HIDDEN_S,
                                           WaitTimeSeconds=1, AttributeNames=["All"]).get("Messages", [])
            if not messages:
                break
            for message in messages:
                seen[message["MessageId"]] = _letter(message)
                handles.append(message["ReceiptHandle"])
    finally:
        for start in range(0, len(handles), 10):
            sqs.change_message_visibility_batch(QueueUrl=dlq_url, Entries=[
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for i, handle in enumerate(handles[start:start + 10])])
    return sorted(seen.values(), key=lambda letter: letter.sent_at)[:limit]


def redrive(sqs, dlq_url: str, queue_url: str) -> int:
    """Move every message back to the ingest queue; how many were moved."""
    moved = 0
    while messages := sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=60
                                          ).get("Messages", []):
        sent = sqs.send_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(i), "MessageBody": m["Body"]} for i, m in enumerate(messages)])
        delivered = {int(entry["Id"]) for entry in sent.get("Successful", [])}
        done = [m for i, m in enumerate(messages) if i in delivered]
        if done:  # a message that could not be sent stays here, visible again after a minute
            sqs.delete_message_batch(QueueUrl=dlq_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)])
        moved += len(done)
        if len(done) < len(messages):
            break
    return moved
