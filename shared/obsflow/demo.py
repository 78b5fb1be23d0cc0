"""`obsflow demo`: the whole system on the embedded local stack, on generated data."""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable

import boto3

from obsflow import queries
from obsflow.local.stack import LocalStack
from obsflow.simulate import SimulatedCandidate, simulate_candidate

Echo = Callable[[str], None]


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = int(width * done / total) if total else width
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


def upload_like_the_summit(s3, bucket: str, candidate: SimulatedCandidate, rng: random.Random, echo: Echo) -> dict:
    """Frames in shuffled order with a few re-sent, the candidate early, one broken transfer, the manifest last."""
    frames = candidate.frame_objects()
    order = frames[:]
    rng.shuffle(order)
    resent = rng.sample(frames, k=max(1, len(frames) // 10))
    s3.put_object(Bucket=bucket, Key=candidate.candidate_object()[0], Body=candidate.candidate_object()[1])
    uploads = order + resent
    for i, (key, body) in enumerate(uploads, 1):
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        if i % 8 == 0 or i == len(uploads):
            echo(f"\r  uploading frames {_bar(i, len(uploads))}", end=True)
    echo("", end=True)
    broken_key, broken_body = frames[0]
    s3.put_object(Bucket=bucket, Key=broken_key.replace(".fits", "_partial.fits"), Body=broken_body[: len(broken_body) // 2])
    key, body = candidate.manifest_object()
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return {"frames": len(frames), "resent": len(resent), "broken": 1}


def wait_until_ready(candidate_id: str, expected_frames: int, echo: Echo, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        detail = queries.candidate_detail(candidate_id) if _exists(candidate_id) else None
        received = sum(op["received"] for op in detail["ops"]) if detail else 0
        echo(f"\r  ingesting        {_bar(min(received, expected_frames), expected_frames)}", end=True)
        if detail and detail["status"] == "READY":
            echo("", end=True)
            return detail
        time.sleep(0.3)
    echo("", end=True)
    raise TimeoutError(
        f"candidate {candidate_id} was not READY after {timeout_s:.0f} s; "
        "`obsflow candidates show` tells which OP is missing frames"
    )


def _exists(candidate_id: str) -> bool:
    from obsflow.tables import candidates

    return candidates.get(candidate_id) is not None


def run_demo(echo_line: Callable[..., None], *, port: int = 0, seed: int = 7, shape=(256, 256), n_observe: int = 16) -> dict:
    interactive = sys.stdout.isatty()
    last_progress = [""]

    def echo(text: str, end: bool = False) -> None:
        if not end:
            echo_line(text)
        elif not text.strip():  # the end of a progress line
            if interactive:
                echo_line("")
        elif interactive:
            echo_line(text, nl=False)
        elif text.strip() != last_progress[0]:  # a log, not a terminal: one line per change
            last_progress[0] = text.strip()
            echo_line(last_progress[0])

    started = time.monotonic()
    echo("obsflow demo: the whole ingest path on the embedded local stack (moto on loopback)")
    with LocalStack(port=port, stage="demo", log_level="ERROR") as stack:
        echo(f"  local stack up at {stack.endpoint_url} (stage 'demo')")
        echo(f"  generating SPEC-0122 VBI frames ({shape[0]}x{shape[1]}): 4 dark, 4 gain, {n_observe} observe")
        candidate = simulate_candidate("demo_vbi_001", n_dark=4, n_gain=4, n_observe=n_observe, shape=shape, seed=seed)
        s3 = boto3.client("s3", endpoint_url=stack.endpoint_url, region_name=stack.settings.region)
        sent = upload_like_the_summit(s3, stack.settings.ingest_bucket_name, candidate, random.Random(seed), echo)
        detail = wait_until_ready(candidate.candidate_id, sent["frames"], echo)
        stack.poller.drain(idle_polls=2)
        quarantined = queries.quarantine_rows()
        ops = {op["op_id"]: op for op in queries.op_rows()}

        echo("")
        echo(f"candidate {detail['candidate_id']} is READY ({detail['ready_reason']}) at {detail['ready_at']:%H:%M:%S}")
        for op in detail["ops"]:
            echo(f"  {op['op_id']:<24} {op['task_type'] or '-':<8} {op['received']}/{op['expected']} frames")
        echo(f"  {sent['resent']} re-sent frame(s) counted once: {sum(op['received'] for op in ops.values())} frames "
             f"for {sent['frames']} unique")
        for item in quarantined:
            echo(f"  quarantined {item['key']}: {item['reason']}")
        echo(f"done in {time.monotonic() - started:.1f} s")
        return {"candidate": detail, "quarantined": quarantined, "uploads": sent}
