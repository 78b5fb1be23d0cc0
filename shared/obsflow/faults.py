"""Fault injection, for the local stack's game days and the test that runs a night through them.

With ``OBSFLOW_FAULTS=rate=0.05,seed=7[,log=PATH][,only=aws|lambda|task]`` in the environment, a process of obsflow fails
that share of its calls on purpose: S3, DynamoDB, SQS, SNS and Step Functions requests get a
throttling error, a 5xx or a connection timeout before they are sent (botocore retries them, as it
would on AWS); the local ingest Lambda dies halfway through a batch (its messages come back); a
task process is killed while it runs (its run fails with a ticket). Each fault is a JSON line in
the log, so a test can count them across processes. Without the variable nothing is injected.
"""

from __future__ import annotations

import json
import os
import random
import threading
from functools import lru_cache

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectTimeoutError

from obsflow.errors import ObsflowError

ENV = "OBSFLOW_FAULTS"
AWS_SERVICES = ("s3", "dynamodb", "sqs", "sns", "sfn")
AWS_KINDS = ("throttling", "server-error", "timeout")
_lock = threading.Lock()
_rngs: dict[tuple[int, int], random.Random] = {}


def plan() -> dict | None:
    """The fault plan of this process's environment: rate, seed, log, only."""
    text = os.environ.get(ENV)
    return _parsed(text) if text else None


class MalformedFaults(ObsflowError):
    """OBSFLOW_FAULTS does not say rate=R,seed=S[,log=PATH][,only=aws|lambda|task]."""


ONLY = ("aws", "lambda", "task")


@lru_cache(maxsize=8)
def _parsed(text: str) -> dict:
    usage = f"{ENV}={text!r} is not rate=R,seed=S[,log=PATH][,only={'|'.join(ONLY)}] (R from 0 to 1)"
    parts = [part.split("=", 1) for part in text.split(",")]
    if any(len(part) != 2 for part in parts) or not {key for key, _ in parts} <= {"rate", "seed", "log", "only"}:
        raise MalformedFaults(usage)
    values = dict(parts)
    try:
        rate, seed = float(values.get("rate", 0)), int(values.get("seed", 0))
    except ValueError:
        raise MalformedFaults(usage) from None
    if not 0 <= rate <= 1 or values.get("only", "aws") not in ONLY:
        raise MalformedFaults(usage)
    return {"rate": rate, "seed": seed, "log": values.get("log"), "only": values.get("only")}


def environment(rate: float, seed: int, log: str | None = None, only: str | None = None) -> dict[str, str]:
    """``only``: fail only where it starts so (``aws``, ``lambda`` or ``task``)."""
    return {ENV: f"rate={rate},seed={seed}" + (f",log={log}" if log else "") + (f",only={only}" if only else "")}


def strike(where: str) -> str | None:
    """Whether to fail here now; the kind of fault (for AWS calls) or "fault", recorded in the log."""
    current = plan()
    if current is None or current["rate"] <= 0 or not where.startswith(current["only"] or ""):
        return None
    with _lock:
        rng = _rngs.setdefault((current["seed"], os.getpid()), random.Random(current["seed"] * 7919 + os.getpid()))
        if rng.random() >= current["rate"]:
            return None
        kind = rng.choice(AWS_KINDS) if where.startswith("aws:") else "fault"
    if current["log"]:
        with open(current["log"], "a", encoding="utf-8") as log:  # one short line: appends do not interleave
            log.write(json.dumps({"where": where, "kind": kind, "pid": os.getpid()}) + "\n")
    return kind


class _Body:
    def __init__(self, body: bytes):
        self.body = body

    def stream(self, **_):
        yield self.body


_ERRORS = {  # (status, body) by protocol, for throttling and a server error
    "json": {"throttling": (400, b'{"__type": "ThrottlingException", "message": "injected by OBSFLOW_FAULTS"}'),
             "server-error": (500, b'{"__type": "InternalServerError", "message": "injected by OBSFLOW_FAULTS"}')},
    "s3": {"throttling": (503, b"<Error><Code>SlowDown</Code><Message>injected by OBSFLOW_FAULTS</Message></Error>"),
           "server-error": (500, b"<Error><Code>InternalError</Code><Message>injected by OBSFLOW_FAULTS</Message></Error>")},
    "query": {"throttling": (400, b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>injected"
                                  b"</Message></Error><RequestId>0</RequestId></ErrorResponse>"),
              "server-error": (500, b"<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code><Message>"
                                    b"injected</Message></Error><RequestId>0</RequestId></ErrorResponse>")},
}


def inject_aws_fault(request, event_name: str, **_):
    """botocore's ``before-send``: a response (or a timeout) instead of sending, for the planned share of calls."""
    if ENV not in os.environ:  # every request of every process passes here: nothing more to do without a plan
        return None
    service, operation = (event_name.split(".") + ["", ""])[1:3]
    if service not in AWS_SERVICES:
        return None
    kind = strike(f"aws:{service}.{operation}")
    if kind is None:
        return None
    if kind == "timeout":
        raise ConnectTimeoutError(endpoint_url=request.url)
    status, body = _ERRORS["s3" if service == "s3" else "query" if service == "sns" else "json"][kind]
    return AWSResponse(request.url, status, {"Content-Type": "application/xml" if body.startswith(b"<") else
                                             "application/x-amz-json-1.0"}, _Body(body))
