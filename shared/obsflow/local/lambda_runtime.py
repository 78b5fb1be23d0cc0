"""Run deployed Lambda handlers in-process, with the event shapes Lambda gives them."""

from __future__ import annotations

import importlib
import time
import uuid
from dataclasses import dataclass, field


@dataclass
class LocalContext:
    """The LambdaContext attributes powertools reads."""

    function_name: str
    memory_limit_in_mb: int = 1024
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "local"
    log_stream_name: str = "local"
    timeout_s: int = 300
    _deadline: float = field(default_factory=lambda: time.monotonic() + 300)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def load_handler(function: str):
    """The ``handler`` of functions/<function>/handler.py, as deployed."""
    return importlib.import_module(f"obsflow_functions.{function}.handler").handler


def sqs_event(messages: list[dict], queue_arn: str, region: str) -> dict:
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }
