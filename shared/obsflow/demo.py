"""`obsflow demo`: the whole system on the embedded local stack, on generated data."""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable

import boto3

from obsflow import queries
from obsflow.errors import NotFound
from obsflow.local.stack import LocalStack
from obsflow.simulate import SimulatedCandidate, simulate_candidate

Echo = Callable[..., None]  # click.echo


class Progress:
    """One line that redraws in a terminal; in a log, one line per change."""

    def __init__(self, echo: Echo, label: str, interactive: bool):
        self.echo, self.label, self.interactive, self.last = echo, label, interactive, ""

    def update(self, done: int, total: int, width: int = 30) -> None:
        filled = int(width * done / total) if total else width
        line = f"  {self.label:<16} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        if line != self.last:
            self.last = line
            if self.interactive:
                self.echo(f"\r{line}", nl=False)
            else:
                self.echo(line)

    def finish(self) -> None:
        if self.interactive:
            self.echo("")


def upload_like_the_summit(s3, bucket: str, candidate: SimulatedCandidate, rng: random.Random, progress: Progress) -> dict:
    """Frames in shuffled order with a few re-sent, the candidate early, one broken transfer, the manifest last."""
    frames = candidate.frame_objects()
    resent = rng.sample(frames, k=max(1, len(frames) // 10))
    uploads = rng.sample(frames, k=len(frames)) + resent
    s3.put_object(Bucket=bucket, Key=candidate.candidate_object()[0], Body=candidate.candidate_object()[1])
    for i, (key, body) in enumerate(uploads, 1):
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        if i % 8 == 0 or i == len(uploads):
            progress.update(i, len(uploads))
    progress.finish()
    broken_key, broken_body = frames[0]
    s3.put_object(Bucket=bucket, Key=broken_key.replace(".fits", "_partial.fits"), Body=broken_body[: len(broken_body) // 2])
    key, body = candidate.manifest_object()
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return {"frames": len(frames), "resent": len(resent), "broken": 1}


def wait_until_ready(candidate_id: str, expected_frames: int, progress: Progress, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            detail = queries.candidate_detail(candidate_id)
        except NotFound:  # its document has not been ingested yet
            detail = None
        received = sum(op["received"] for op in detail["ops"]) if detail else 0
        progress.update(min(received, expected_frames), expected_frames)
        if detail and detail["status"] == "READY":
            progress.finish()
            return detail
        time.sleep(0.3)
    progress.finish()
    raise TimeoutError(
        f"candidate {candidate_id} was not READY after {timeout_s:.0f} s; "
        "`obsflow candidates show` tells which OP is missing frames"
    )


def run_demo(echo: Echo, *, port: int = 0, seed: int = 7, shape=(256, 256), n_observe: int = 16) -> dict:
    interactive = sys.stdout.isatty()
    started = time.monotonic()
    echo("obsflow demo: the whole ingest path on the embedded local stack (moto on loopback)")
    with LocalStack(port=port, stage="demo", log_level="ERROR") as stack:
        echo(f"  local stack up at {stack.endpoint_url} (stage 'demo')")
        echo(f"  generating SPEC-0122 VBI frames ({shape[0]}x{shape[1]}): 4 dark, 4 gain, {n_observe} observe")
        candidate = simulate_candidate("demo_vbi_001", n_dark=4, n_gain=4, n_observe=n_observe, shape=shape, seed=seed)
        s3 = boto3.client("s3", endpoint_url=stack.endpoint_url, region_name=stack.settings.region)
        sent = upload_like_the_summit(s3, stack.settings.ingest_bucket_name, candidate, random.Random(seed),
                                      Progress(echo, "uploading frames", interactive))
        detail = wait_until_ready(candidate.candidate_id, sent["frames"], Progress(echo, "ingesting", interactive))
        stack.poller.drain(idle_polls=2)
        quarantined = queries.quarantine_rows()

        echo("")
        echo(f"candidate {detail['candidate_id']} is READY ({detail['ready_reason']}) at {detail['ready_at']:%H:%M:%S}")
        for op in detail["ops"]:
            echo(f"  {op['op_id']:<24} {op['task_type'] or '-':<8} {op['received']}/{op['expected']} frames")
        echo(f"  {sent['resent']} re-sent frame(s) counted once: {sum(op['received'] for op in detail['ops'])} frames "
             f"for {sent['frames']} unique")
        for item in quarantined:
            echo(f"  quarantined {item['key']}: {item['reason']}")
        echo(f"done in {time.monotonic() - started:.1f} s")
        return {"candidate": detail, "quarantined": quarantined, "uploads": sent}
