"""The ingest dead-letter queue, for operators: what its messages name, and sending them back to be ingested.

A notification lands there after MAX_RECEIVE_COUNT failed deliveries (a transient failure that outlasted the
retries; bad content is quarantined, not dead-lettered). Listing does not consume: each message is received
with a zero visibility timeout. A redrive sends each message back to the ingest queue, then deletes it here;
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


def peek(sqs, dlq_url: str, limit: int = 1000) -> list[DeadLetter]:
    """Up to ``limit`` messages of the queue, oldest first, left in place."""
    seen: dict[str, DeadLetter] = {}
    while len(seen) < limit:
        messages = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0,
                                       AttributeNames=["All"]).get("Messages", [])
        new = [m for m in messages if m["MessageId"] not in seen]
        if not new:
            break
        seen.update((m["MessageId"], _letter(m)) for m in new)
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
