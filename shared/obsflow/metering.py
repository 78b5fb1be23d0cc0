"""What a Lambda invocation or a Batch job asks of AWS, counted as it happens: requests by billing class, DynamoDB
read and write units, and the bytes written to S3.

Every boto3 client and pynamodb connection of obsflow comes from ``aws.botocore_session``, which registers this
module's two botocore event hooks: ``before-parameter-build`` notes what a request writes (or which item it reads),
``after-call`` counts it with what came back (an error response too: AWS bills a refused conditional write). A call
counts for the meter in force: the one a handler opened for its invocation (a context variable, so the local
stack's handlers, which share a process, each count their own), else the process's (a Batch job, its threads
included). Outside both nothing is counted.

DynamoDB units follow DynamoDB's rules from item sizes unless the response says what it consumed: a read is 4 KB a
unit (half for an eventually consistent read), a write 1 KB a unit, at least one each, and a transaction's items
twice. An update is charged on the larger of the item before and after: here the largest of what the request
writes, the item as returned (pynamodb asks for ALL_NEW) and the item as this meter last read it. A query is
charged on what it read: the items returned, scaled up by those its filter dropped. Where a caller asks for
ReturnConsumedCapacity, DynamoDB's own figure is taken instead.
"""

from __future__ import annotations

import contextvars
import json
import math
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

# What a usage entry counts, besides its labels and seconds (the keys a run's cost sums).
S3_PUT, S3_GET, S3_LIST, S3_BYTES = "s3_put_requests", "s3_get_requests", "s3_list_requests", "s3_bytes_written"
DYNAMODB, READ_UNITS, WRITE_UNITS = "dynamodb_requests", "dynamodb_read_units", "dynamodb_write_units"
SQS, SNS = "sqs_requests", "sns_requests"
COUNTS = (DYNAMODB, READ_UNITS, WRITE_UNITS, S3_PUT, S3_GET, S3_LIST, S3_BYTES, SQS, SNS)

READ_UNIT_BYTES, WRITE_UNIT_BYTES = 4096, 1024
_REMEMBERED_ITEMS = 10_000  # item sizes a meter keeps, for the updates that follow a read
_PENDING = "obsflow_metering"


# -- DynamoDB item sizes and units -----------------------------------------------------------------------------------
def _number_size(text: str) -> int:
    """A number: one byte per two significant digits, plus one (leading and trailing zeros trimmed)."""
    digits = text.lstrip("+-").split("e")[0].split("E")[0].replace(".", "").strip("0")
    return (len(digits) + 1) // 2 + 1


def value_size(value: dict) -> int:
    """The size DynamoDB gives an attribute value (in its typed form, ``{"S": ...}``)."""
    (kind, inner), = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return _number_size(inner)
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in inner)
    if kind == "NS":
        return sum(_number_size(n) for n in inner)
    if kind == "BS":
        return sum(len(b) for b in inner)
    if kind == "L":  # 3 bytes of overhead, and one per element
        return 3 + sum(1 + value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in inner.items())
    return 0


def item_size(item: dict | None) -> int:
    """Its attribute names and values, as DynamoDB sizes an item."""
    return sum(len(name.encode()) + value_size(value) for name, value in (item or {}).items())


def read_units(size: int, consistent: bool = False, transactional: bool = False) -> float:
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    return units * (2 if transactional else 1 if consistent else 0.5)


def write_units(size: int, transactional: bool = False) -> float:
    return max(1, math.ceil(size / WRITE_UNIT_BYTES)) * (2 if transactional else 1)


def _key(table: str, key: dict | None) -> tuple[str, str] | None:
    return (table, json.dumps(key, sort_keys=True, default=str)) if key else None


def _update_size(params: dict) -> int:
    """What an update writes: its key and the values its expression sets."""
    values = (params.get("ExpressionAttributeValues") or {}).values()
    return item_size(params.get("Key")) + sum(value_size(v) for v in values)


# -- S3 --------------------------------------------------------------------------------------------------------------
def s3_class(operation: str) -> str | None:
    """The request class S3 bills an operation in: PUT (with COPY, POST), LIST (billed as PUT) or GET (with HEAD and
    the rest); None for DELETE and abort, which are free."""
    if operation.startswith("List"):
        return S3_LIST
    if operation.startswith("Delete") or operation == "AbortMultipartUpload":
        return None
    if operation.startswith(("Put", "Copy", "Create", "Upload", "Complete", "Restore", "Post")):
        return S3_PUT
    return S3_GET


def body_size(body) -> int:
    if body is None:
        return 0
    if isinstance(body, (bytes, bytearray, memoryview)):
        return len(body)
    if isinstance(body, str):
        return len(body.encode())
    try:
        return len(body)
    except TypeError:
        pass
    try:
        here = body.tell()
        body.seek(0, 2)
        end = body.tell()
        body.seek(here)
        return end - here
    except (AttributeError, OSError, ValueError):
        return 0


class Meter:
    """The counts of one invocation or one job (``labels`` say which), and the seconds since it started."""

    def __init__(self, clock=time.perf_counter, **labels):
        self.labels = labels
        self.counts: Counter[str] = Counter()
        self._clock, self.started = clock, clock()
        self._sizes: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def seconds(self) -> float:
        return self._clock() - self.started

    def entry(self) -> dict:
        """Labels, seconds so far and every count: what a usage record holds."""
        with self._lock:
            counts = {name: round(self.counts.get(name, 0), 3) for name in COUNTS}
        return {**self.labels, "seconds": round(self.seconds(), 3), **counts}

    def add(self, **counts: float) -> None:
        with self._lock:
            self.counts.update(counts)

    # -- what a request says before it is sent (returned, and handed back with its response)
    def intent(self, service: str, operation: str, params: dict) -> dict:
        if service == "s3" and operation in ("PutObject", "UploadPart"):
            return {"bytes": body_size(params.get("Body"))}
        if service == "dynamodb":
            return {"params": params}
        return {}

    def count(self, service: str, operation: str, intent: dict, parsed: dict) -> None:
        if service == "s3":
            kind = s3_class(operation)
            if kind:
                self.add(**{kind: 1, S3_BYTES: intent.get("bytes", 0)})
        elif service == "dynamodb":
            reads, writes = self._dynamodb_units(operation, intent.get("params") or {}, parsed or {})
            self.add(**{DYNAMODB: 1, READ_UNITS: reads, WRITE_UNITS: writes})
        elif service == "sqs":
            self.add(**{SQS: 1})
        elif service == "sns":
            self.add(**{SNS: 1})

    def _remember(self, key: tuple[str, str] | None, size: int) -> None:
        if key and (key in self._sizes or len(self._sizes) < _REMEMBERED_ITEMS):
            self._sizes[key] = size

    def _dynamodb_units(self, operation: str, params: dict, parsed: dict) -> tuple[float, float]:
        """(read units, write units) of one DynamoDB call."""
        reported = parsed.get("ConsumedCapacity") if params.get("ReturnConsumedCapacity", "NONE") != "NONE" else None
        if reported:  # what DynamoDB itself says, where the caller asked for it (moto answers 0.5 unasked)
            total = sum(c.get("CapacityUnits", 0) for c in (reported if isinstance(reported, list) else [reported]))
            return (0.0, total) if operation in ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem",
                                                  "TransactWriteItems") else (total, 0.0)
        table = params.get("TableName", "")
        if operation == "GetItem":
            size = item_size(parsed.get("Item"))
            self._remember(_key(table, params.get("Key")), size)
            return read_units(size, bool(params.get("ConsistentRead"))), 0.0
        if operation in ("Query", "Scan"):
            items = parsed.get("Items") or []
            size = sum(item_size(i) for i in items)
            if items and parsed.get("ScannedCount", 0) > len(items):  # the filter's dropped items were read too
                size = size * parsed["ScannedCount"] / len(items)
            return read_units(int(size), bool(params.get("ConsistentRead"))), 0.0
        if operation == "BatchGetItem":
            units = 0.0
            for name, found in (parsed.get("Responses") or {}).items():
                request = (params.get("RequestItems") or {}).get(name, {})
                consistent = bool(request.get("ConsistentRead"))
                unprocessed = len(((parsed.get("UnprocessedKeys") or {}).get(name) or {}).get("Keys", []))
                missing = max(0, len(request.get("Keys", [])) - len(found) - unprocessed)
                units += sum(read_units(item_size(i), consistent) for i in found) + missing * read_units(0, consistent)
            return units, 0.0
        if operation == "TransactGetItems":
            return sum(read_units(item_size(r.get("Item")), transactional=True)
                       for r in parsed.get("Responses") or []), 0.0
        if operation in ("PutItem", "UpdateItem", "DeleteItem"):
            key = _key(table, params.get("Key"))
            size = max(item_size(params.get("Item")), _update_size(params) if operation == "UpdateItem" else 0,
                       item_size(parsed.get("Attributes")), self._sizes.get(key, 0) if key else 0)
            if operation == "UpdateItem":
                self._remember(key, max(size, item_size(parsed.get("Attributes"))))
            return 0.0, write_units(size)
        if operation == "BatchWriteItem":
            units = 0.0
            for name, requests in (params.get("RequestItems") or {}).items():
                unprocessed = len((parsed.get("UnprocessedItems") or {}).get(name) or [])
                done = requests[:max(0, len(requests) - unprocessed)]
                units += sum(write_units(item_size((r.get("PutRequest") or {}).get("Item"))) for r in done)
            return 0.0, units
        if operation == "TransactWriteItems":
            units = 0.0
            for part in params.get("TransactItems") or []:
                (kind, request), = part.items()
                size = item_size(request.get("Item")) if kind == "Put" else _update_size(request) if kind == "Update" \
                    else item_size(request.get("Key"))
                units += write_units(size, transactional=True)
            return 0.0, units
        return 0.0, 0.0  # DescribeTable and the like: no units


# -- which meter counts ----------------------------------------------------------------------------------------------
_invocation: contextvars.ContextVar[Meter | None] = contextvars.ContextVar("obsflow_meter", default=None)
_process: Meter | None = None


def active() -> Meter | None:
    return _invocation.get() or _process


@contextmanager
def metering(**labels) -> Iterator[Meter]:
    """Count what the code inside asks of AWS (on this thread and its context): a Lambda invocation's meter."""
    meter = Meter(**labels)
    token = _invocation.set(meter)
    try:
        yield meter
    finally:
        _invocation.reset(token)


@contextmanager
def metering_process(**labels) -> Iterator[Meter]:
    """Count what this whole process asks of AWS meanwhile, every thread of it: a Batch job's meter."""
    global _process
    _process = meter = Meter(**labels)
    try:
        yield meter
    finally:
        _process = None


def invocation_so_far() -> dict | None:
    """The usage entry of the invocation in progress on this context, so far; None outside one."""
    meter = _invocation.get()
    return meter.entry() if meter is not None else None


# -- the botocore event hooks (aws.botocore_session registers them) ---------------------------------------------------
METERED_SERVICES = ("s3", "dynamodb", "sqs", "sns")


def on_request(params, model, context, **_) -> None:
    meter = active()
    service = model.service_model.service_name
    if meter is None or service not in METERED_SERVICES:
        return
    context[_PENDING] = (meter, meter.intent(service, model.name, params))


def on_response(parsed, model, context, **_) -> None:
    pending = context.pop(_PENDING, None)
    if pending is not None:
        meter, intent = pending
        meter.count(model.service_model.service_name, model.name, intent, parsed)
