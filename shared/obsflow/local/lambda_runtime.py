"""Run deployed Lambda handlers in-process, with the event shapes Lambda gives them."""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field

from obsflow.observability import logger
from obsflow.settings import FUNCTION_CONCURRENCY, FUNCTIONS


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
    """The ``handler`` of functions/<function>/handler.py, as deployed (``start-run`` -> start_run)."""
    return importlib.import_module(f"obsflow_functions.{function.replace('-', '_')}.handler").handler


def function_of(deployed_name: str) -> str:
    """``obsflow-<stage>-start-run`` -> ``start-run``."""
    matches = [f for f in FUNCTIONS if deployed_name.endswith("-" + f)]
    if not matches:
        raise KeyError(f"{deployed_name} is not an obsflow function ({', '.join(FUNCTIONS)})")
    return max(matches, key=len)


_gates: dict[str, threading.BoundedSemaphore] = {}
_gates_lock = threading.Lock()


def _gate(deployed_name: str, function: str):
    """As many invocations at once as the function's reserved concurrency (FUNCTION_CONCURRENCY), however it is
    invoked (a nudge, the schedule, a test); unbounded without one."""
    slots = FUNCTION_CONCURRENCY.get(function)
    if not slots:
        return contextlib.nullcontext()
    with _gates_lock:
        return _gates.setdefault(deployed_name, threading.BoundedSemaphore(slots))


def invoke_local(deployed_name: str, event: dict) -> tuple[dict, bool]:
    """Run the deployed handler in this process; (result, errored) with Lambda's error payload shape."""
    function = function_of(deployed_name)
    try:
        with _gate(deployed_name, function):
            return load_handler(function)(event, LocalContext(deployed_name)), False
    except Exception as exc:  # noqa: BLE001  (reported the way Lambda reports it)
        logger.exception("local Lambda invocation failed", extra={"function": deployed_name})
        return {
            "errorType": type(exc).__name__,
            "errorMessage": str(exc),
            "stackTrace": traceback.format_exception(exc)[-5:],
        }, True


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
