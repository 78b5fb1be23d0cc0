"""`obsflow demo`: the whole system on the embedded local stack, on generated data."""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable

import boto3

from obsflow import aws, queries
from obsflow.errors import NotFound
from obsflow.local.stack import LocalStack
from obsflow.simulate import SimulatedCandidate, simulate_candidate
from obsflow.tables import datasets

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


def subscribe_pi(session, settings, proposal_id: str) -> str:
    """What a PI does: an SQS queue subscribed to the notifications of their proposal only."""
    sqs, sns = session.client("sqs"), session.client("sns")
    queue_url = sqs.create_queue(QueueName=f"pi-{proposal_id}".replace("_", "-"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=aws.topic_arn(settings, "pi-notifications"), Protocol="sqs", Endpoint=queue_arn,
                  Attributes={"FilterPolicy": json.dumps({"proposal_id": [proposal_id]}), "RawMessageDelivery": "true"})
    return queue_url


def wait_for_run(candidate_id: str, echo: Echo, sfn, timeout_s: float = 120) -> dict:
    """Follow the candidate's run task by task until it ends."""
    deadline, shown = time.monotonic() + timeout_s, set()
    while time.monotonic() < deadline:
        detail = queries.candidate_detail(candidate_id)
        run_ids = detail["run_ids"]
        if run_ids:
            run = queries.run_detail(run_ids[-1], sfn)
            for task in run["tasks"]:
                if (task["task"], task["status"]) not in shown and task["status"] != "pending":
                    shown.add((task["task"], task["status"]))
                    echo(f"  {task['task']:<16} {task['status']:<10} ({task['resource_class']} queue)")
            if run["status"] in ("SUCCEEDED", "FAILED"):
                return run
        time.sleep(0.3)
    raise TimeoutError(f"the run of candidate {candidate_id} did not end within {timeout_s:.0f} s; "
                       "`obsflow runs list` shows where it is")


def run_demo(echo: Echo, *, port: int = 0, seed: int = 7, shape=(256, 256), n_observe: int = 16) -> dict:
    interactive = sys.stdout.isatty()
    started = time.monotonic()
    echo("obsflow demo: the whole system on the embedded local stack (moto on loopback)")
    with LocalStack(port=port, stage="demo", log_level="ERROR", submit_interval_s=1.0) as stack:
        echo(f"  local stack up at {stack.endpoint_url} (stage 'demo')")
        echo(f"  generating SPEC-0122 VBI frames ({shape[0]}x{shape[1]}): 4 dark, 4 gain, {n_observe} observe")
        candidate = simulate_candidate("demo_vbi_001", n_dark=4, n_gain=4, n_observe=n_observe, shape=shape, seed=seed,
                                       recipe="frame-census")
        session = boto3.Session(region_name=stack.settings.region)
        pi_queue = subscribe_pi(session, stack.settings, candidate.proposal_id)
        s3 = session.client("s3")
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

        echo("")
        echo(f"processing with recipe {candidate.candidate['recipe']} (Step Functions on moto, tasks as subprocesses):")
        run = wait_for_run(candidate.candidate_id, echo, session.client("stepfunctions"))
        echo(f"run {run['run_id']} {run['status']} in {run['duration_s']} s")
        messages = session.client("sqs").receive_message(QueueUrl=pi_queue, MaxNumberOfMessages=10,
                                                          WaitTimeSeconds=2).get("Messages", [])
        if run["dataset_id"]:
            dataset = datasets.get(run["dataset_id"])
            echo(f"  dataset {dataset.dataset_id}: s3://{dataset.bucket}/{dataset.prefix}")
            for item in dataset.files:
                echo(f"    {item['name']:<24} {item['size']:>9} bytes  sha256 {item['sha256'][:16]}...")
        for message in messages:
            echo(f"  PI notified (proposal {candidate.proposal_id}): {json.loads(message['Body'])['summary']}")
        echo(f"done in {time.monotonic() - started:.1f} s")
        return {"candidate": detail, "quarantined": quarantined, "uploads": sent, "run": run,
                "notifications": [json.loads(m["Body"]) for m in messages]}
