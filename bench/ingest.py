"""Ingest benchmark: the ingest handler on moto against a bare PutItem-per-frame baseline.

Prints frames/s for both (and their ratio), DynamoDB requests per frame, S3 bytes read
per frame against the frame size, Scan calls, and whether the counts are exact.

    python bench/ingest.py [--frames 2000] [--batch-size 10] [--in-process]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import sys
import time
from collections import Counter

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"
os.environ.pop("AWS_ENDPOINT_URL", None)

import boto3  # noqa: E402
import botocore.session  # noqa: E402
from moto import mock_aws  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

from obsflow.ingest.batch import build_service, process_batch  # noqa: E402
from obsflow.local import moto_patches  # noqa: E402
from obsflow.local.poller import QueuePoller  # noqa: E402
from obsflow.local.resources import create_resources  # noqa: E402
from obsflow.observability import logger  # noqa: E402
from obsflow.settings import Settings  # noqa: E402
from obsflow.simulate import many_frames  # noqa: E402
from obsflow.tables import observing_programs  # noqa: E402

CALLS: Counter = Counter()
S3_BYTES = Counter()


def count_call(event_name: str, **_):
    # event_name: "before-call.<service>.<Operation>"
    _, service, operation = event_name.split(".", 2)
    CALLS[(service, operation)] += 1


def count_s3_bytes(http_response, parsed, model, **_):
    if model.name == "GetObject":
        S3_BYTES["GetObject"] += int(parsed.get("ContentLength") or 0)


_create_client = botocore.session.Session.create_client


def create_counted_client(self, *args, **kwargs):
    """Every botocore client (boto3's and pynamodb's) reports its calls through event hooks."""
    client = _create_client(self, *args, **kwargs)
    client.meta.events.register("before-call.*.*", count_call)
    client.meta.events.register("after-call.s3.GetObject", count_s3_bytes)
    return client


botocore.session.Session.create_client = create_counted_client


def frames_for(op_id: str, count: int, shape: tuple[int, int], seed: int) -> list[tuple[str, bytes]]:
    return many_frames(op_id, "observe", count, proposal_id="pid_bench", shape=shape, seed=seed)


def upload(frames: list[tuple[str, bytes]], stage: str) -> tuple[Settings, dict]:
    settings = Settings(stage=stage)
    urls = create_resources(settings, boto3.Session(), processing=False)
    s3 = boto3.client("s3")
    for key, body in frames:
        s3.put_object(Bucket=settings.ingest_bucket_name, Key=key, Body=body)
    return settings, urls


def ingest(settings: Settings, urls: dict, frames: list[tuple[str, bytes]], batch_size: int) -> dict:
    session = boto3.Session()
    service = build_service(settings)
    in_handler = [0.0]

    def timed_handler(event, context):
        started = time.perf_counter()
        try:
            return process_batch(service, event, context)[0]
        finally:
            in_handler[0] += time.perf_counter() - started

    poller = QueuePoller(session.client("sqs"), urls["queue_url"], timed_handler, batch_size=batch_size, window_s=0.2)
    CALLS.clear()
    S3_BYTES.clear()
    poller.drain()
    elapsed = in_handler[0]  # the handler's own time; moto's SQS polling is not the handler's
    dynamodb = {op: n for (svc, op), n in CALLS.items() if svc == "dynamodb"}
    ops = observing_programs.get_many({key.split("/")[1] for key, _ in frames})
    return {
        "seconds": elapsed,
        "dynamodb": dynamodb,
        "s3_bytes": S3_BYTES["GetObject"],
        "received": sum(op.received for op in ops.values()),
        "invocations": poller.invocations,
    }


def baseline(frames: list[tuple[str, bytes]]) -> float:
    client = boto3.client("dynamodb")
    client.create_table(TableName="bench-baseline", BillingMode="PAY_PER_REQUEST",
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    started = time.perf_counter()
    for key, body in frames:
        client.put_item(TableName="bench-baseline", Item={"pk": {"S": key}, "size": {"N": str(len(body))}})
    return time.perf_counter() - started


@contextlib.contextmanager
def moto(in_process: bool):
    """The moto both the baseline and the handler use, with the local stack's patches to it.

    By default moto's server on loopback in this process, as `obsflow local serve` runs it:
    every request crosses a socket. ``in_process``: moto's mock, with no socket at all.
    """
    moto_patches.apply()  # transactions cost O(items), not O(table)
    if in_process:
        with mock_aws():
            yield
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"  # boto3, and pynamodb through Settings
    try:
        yield
    finally:
        os.environ.pop("AWS_ENDPOINT_URL", None)
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--large-frames", type=int, default=40, help="frames of 1024x1024 to show bytes read is size-independent")
    parser.add_argument("--in-process", action="store_true",
                        help="moto's mock (mock_aws) instead of its server on loopback: no request crosses a socket")
    args = parser.parse_args()
    logger.setLevel("ERROR")

    print(f"generating {args.frames} SPEC-0122 frames (64x64) and {args.large_frames} (1024x1024) ...", flush=True)
    ops = 4
    small = [f for i in range(ops) for f in frames_for(f"bench_op{i}", args.frames // ops, (64, 64), i)]
    large = frames_for("bench_large", args.large_frames, (1024, 1024), 9)

    print(f"moto: {'mock_aws, no socket' if args.in_process else 'server on loopback, as obsflow local serve runs it'}")
    with moto(args.in_process):
        # The uploads first, so that the baseline and the handler run against the same moto state.
        small_stack, large_stack = upload(small, "bench"), upload(large, "benchlarge")
        base_s = baseline(small)
        result = ingest(*small_stack, small, args.batch_size)
        large_result = ingest(*large_stack, large, args.batch_size)
        scans = sum(n for (svc, op), n in CALLS.items() if op == "Scan")

    n = len(small)
    requests = sum(result["dynamodb"].values())
    base_rate, rate = n / base_s, n / result["seconds"]
    small_size = sum(len(b) for _, b in small) / n
    large_size = sum(len(b) for _, b in large) / len(large)
    print()
    print(f"frames ingested            {n} in {result['invocations']} invocations (batch size {args.batch_size})")
    print(f"counted (exact?)           {result['received']} of {n}  -> {'exact' if result['received'] == n else 'DRIFT'}")
    print(f"baseline PutItem           {base_rate:8.1f} frames/s")
    print(f"ingest handler             {rate:8.1f} frames/s   ratio to baseline {rate / base_rate:.2f}  (target >= 0.25)")
    print(f"DynamoDB requests / frame  {requests / n:.3f}   {dict(sorted(result['dynamodb'].items()))}  (target <= 0.3)")
    print(f"S3 bytes read / frame      {result['s3_bytes'] / n:8.0f} of {small_size:.0f} B frames")
    print(f"S3 bytes read / frame      {large_result['s3_bytes'] / len(large):8.0f} of {large_size:.0f} B frames (target <= 32768)")
    print(f"Scan calls                 {scans}  (target 0)")
    ok = (result["received"] == n and requests / n <= 0.3 and scans == 0
          and max(result["s3_bytes"] / n, large_result["s3_bytes"] / len(large)) <= 32768)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
