"""`obsflow demo`: a small night through the whole system on the embedded local stack."""

from __future__ import annotations

import datetime as dt
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import boto3

from obsflow import aws, console, products, services
from obsflow.errors import NotFound
from obsflow.local.stack import LocalStack
from obsflow.reads.catalogue import Catalogue
from obsflow.reads.queries import Queries
from obsflow.simulate import SimulatedCandidate, simulate_candidate
from obsflow.statuses import ERROR, FAILED, INSTANCE_SUCCEEDED, SUCCEEDED
from obsflow.tables import datasets

Echo = Callable[..., None]  # click.echo
# (candidate, proposal, the candidate whose calibration set it shares): 001 and 002 share one.
NIGHT = (("demo_vbi_001", "pid_1_23", None), ("demo_vbi_002", "pid_1_23", "demo_vbi_001"),
         ("demo_vbi_003", "pid_1_42", None))
OBSERVED = dt.datetime(2026, 11, 20, 18)
# pid_1_23's data stay private a year after observation; pid_1_42's are public from the night itself.
RELEASE_DATES = {"pid_1_42": OBSERVED.date().isoformat()}


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


def upload_like_the_summit(s3, bucket: str, night: list[SimulatedCandidate], rng: random.Random, progress: Progress) -> dict:
    """Proposals and candidates first, frames shuffled with a few re-sent, one broken transfer, the manifests last."""
    frames = [frame for candidate in night for frame in candidate.frame_objects()]
    resent = rng.sample(frames, k=max(1, len(frames) // 20))
    uploads = rng.sample(frames, k=len(frames)) + resent
    proposals = {c.proposal_id: c.proposal_object(RELEASE_DATES.get(c.proposal_id)) for c in night}
    for key, body in [*proposals.values(), *(candidate.candidate_object() for candidate in night)]:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    for i, (key, body) in enumerate(uploads, 1):
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        if i % 16 == 0 or i == len(uploads):
            progress.update(i, len(uploads))
    progress.finish()
    broken_key, broken_body = frames[0]
    s3.put_object(Bucket=bucket, Key=broken_key.replace(".fits", "_partial.fits"), Body=broken_body[: len(broken_body) // 2])
    for candidate in night:
        key, body = candidate.manifest_object()
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    return {"frames": len(frames), "resent": len(resent), "broken": 1}


def _details(queries: Queries, candidate_ids: list[str]) -> list[dict | None]:
    found = []
    for candidate_id in candidate_ids:
        try:
            found.append(queries.candidate_detail(candidate_id))
        except NotFound:  # its document has not been ingested yet
            found.append(None)
    return found


def wait_until_ready(queries: Queries, candidate_ids: list[str], expected_frames: int, progress: Progress,
                     timeout_s: float = 180) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        details = _details(queries, candidate_ids)
        received = sum(op["received"] for d in details if d for op in d["ops"])
        progress.update(min(received, expected_frames), expected_frames)
        if all(d and d.get("ready_at") for d in details):
            progress.finish()
            return details
        time.sleep(0.3)
    progress.finish()
    raise TimeoutError(f"not every candidate was READY after {timeout_s:.0f} s; "
                       "`obsflow candidates show ID` tells which OP is missing frames")


def subscribe_pi(session, settings, proposal_id: str) -> str:
    """What a PI does: an SQS queue subscribed to the notifications of their proposal only."""
    sqs, sns = session.client("sqs"), session.client("sns")
    queue_url = sqs.create_queue(QueueName=f"pi-{proposal_id}".replace("_", "-"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=aws.topic_arn(settings, "pi-notifications"), Protocol="sqs", Endpoint=queue_arn,
                  Attributes={"FilterPolicy": json.dumps({"proposal_id": [proposal_id]}), "RawMessageDelivery": "true"})
    return queue_url


def follow_runs(echo: Echo, sfn, queries: Queries, catalogue: Catalogue, timeout_s: float = 600) -> list[dict]:
    """Print each task of every run as it starts and ends, until the night's catalogue has settled."""
    deadline, shown, started = time.monotonic() + timeout_s, set(), time.monotonic()
    while time.monotonic() < deadline:
        rows = queries.run_rows()
        for row in rows:
            run = queries.run_detail(row["run_id"], sfn)
            for task in run["tasks"]:
                if task["status"] != "pending" and (run["run_id"], task["task"], task["status"]) not in shown:
                    shown.add((run["run_id"], task["task"], task["status"]))
                    echo(f"  {time.monotonic() - started:6.1f} s  {run['recipe']:<18} {run['candidate_id']:<13} "
                         f"{task['task']:<16} {task['status']:<10} ({task['resource_class']})")
        instances = catalogue.instance_rows()
        # Ended: every run ended, every instance succeeded or failed, or waits on one that failed (an ERROR upstream)
        if instances and all(i["state"] in (INSTANCE_SUCCEEDED, ERROR) or ERROR in (i.get("state_reason") or "")
                             for i in instances) and all(r["status"] in (SUCCEEDED, FAILED) for r in rows):
            return [queries.run_detail(r["run_id"]) for r in rows]
        time.sleep(0.5)
    raise TimeoutError(f"the night's runs did not end within {timeout_s:.0f} s; "
                       "`obsflow catalogue list` shows what each instance waits for")


def run_demo(echo: Echo, *, port: int = 0, seed: int = 7, shape=(512, 512), n_calibration: int = 8,
             n_observe: int = 48, output: Path = Path("obsflow-demo-output")) -> dict:
    interactive = sys.stdout.isatty()
    started = time.monotonic()
    echo("obsflow demo: a small night through the whole system, on the embedded local stack (moto on loopback)")
    with LocalStack(port=port, stage="demo", log_level="ERROR", submit_interval_s=1.0) as stack:
        echo(f"  local stack up at {stack.endpoint_url} (stage 'demo')")
        echo(f"  generating {len(NIGHT)} VBI candidates of SPEC-0122 frames ({shape[0]}x{shape[1]}), {n_observe} observe "
             f"frames each; calibration sets of {n_calibration} dark and {n_calibration} gain frames, "
             f"one shared by {NIGHT[0][0]} and {NIGHT[1][0]}")
        simulated: dict[str, SimulatedCandidate] = {}
        for i, (name, proposal, shares) in enumerate(NIGHT):
            simulated[name] = simulate_candidate(
                name, proposal_id=proposal, n_dark=n_calibration, n_gain=n_calibration, n_observe=n_observe,
                shape=shape, seed=seed + i, start=OBSERVED + dt.timedelta(hours=i), calibration_of=simulated.get(shares))
        night = list(simulated.values())
        session = boto3.Session(region_name=stack.settings.region)
        pi_queues = {c.proposal_id: subscribe_pi(session, stack.settings, c.proposal_id) for c in night}
        s3 = session.client("s3")
        sent = upload_like_the_summit(s3, stack.settings.ingest_bucket_name, night, random.Random(seed),
                                      Progress(echo, "uploading frames", interactive))
        ids = [c.candidate_id for c in night]
        queries, catalogue = services.queries(stack.settings), services.catalogue(stack.settings)
        ready = wait_until_ready(queries, ids, sent["frames"], Progress(echo, "ingesting", interactive))
        echo(f"  {sent['resent']} re-sent frame(s) counted once; every candidate READY:")
        for detail in ready:
            echo(f"    {detail['candidate_id']} ({detail['proposal_id']}): "
                 + ", ".join(f"{op['task_type']} {op['received']}/{op['expected']}" for op in detail["ops"]))
        for item in queries.quarantine_rows():
            echo(f"  quarantined {item['key']}: {item['reason']}")

        echo("")
        echo("processing (discovery rules plan master calibrations, science after them, a summary per night and "
             "proposal; Step Functions on moto, each task a subprocess):")
        runs = follow_runs(echo, session.client("stepfunctions"), queries, catalogue)
        echo("")
        echo(f"the processing catalogue of {NIGHT[0][0]} (`obsflow catalogue tree {NIGHT[0][0]}`; * marks its instances):")
        for line in catalogue.tree(NIGHT[0][0]):
            echo(f"  {line}")
        echo("")
        echo(f"products downloaded to {output}/:")
        summary = []
        for run in runs:
            dataset = datasets.get(run["dataset_id"]) if run["dataset_id"] else None
            echo(f"  run {run['run_id']} ({run['recipe']}@{run['version']}) {run['status']} in {run['duration_s']} s")
            if dataset is None:
                continue
            folder = products.download(s3, dataset, output)
            l1 = sorted(f["name"] for f in dataset.files if "l1" in f["tags"])
            if dataset.kind != "science":
                echo(f"    {dataset.kind} dataset {dataset.dataset_id}: "
                     + ", ".join(str(folder / f["name"]) for f in dataset.files))
                continue
            echo(f"    dataset {dataset.dataset_id} (product {dataset.product_id}, version {dataset.version_key}): "
                 f"{len(l1)} L1 frames, e.g. {folder / l1[0]}")
            for name in ("quality_report.pdf", "browse.mp4", f"VBI_{dataset.dataset_id}_metadata.asdf"):
                echo(f"    {folder / name}")
            summary.append({"run": run, "dataset_id": dataset.dataset_id, "folder": str(folder)})
        notifications = []
        for proposal, queue_url in pi_queues.items():
            for message in session.client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                                                  WaitTimeSeconds=1).get("Messages", []):
                body = json.loads(message["Body"])
                notifications.append(body)
                echo(f"  SNS to the PI of {proposal}: {body['summary']}. {body['access']}")
        embargoed = datasets.under_embargo()
        echo(f"  {len(embargoed)} dataset(s) under embargo, readable only by their proposal's principals until their "
             "release date (`obsflow datasets list --embargoed`); the daily release job opens them (`obsflow release`)")
        plan = second_day(echo, stack.settings)
        echo(f"done in {time.monotonic() - started:.1f} s; the demo's stack stops with it. The commands above work on "
             "a stack that keeps running: `obsflow local serve` (README, \"Using it\")")
        return {"candidates": ready, "uploads": sent, "runs": summary, "notifications": notifications, "plan": plan}


def second_day(echo: Echo, settings) -> dict:
    """The data center's second day, as a dry run: a parameter changes, and the plan says what that means."""
    import getpass

    from obsflow.recipes import registry
    from obsflow.runs.reprocessing import Change
    from obsflow.services import campaign_service

    registry.set_value("vbi-l1", "light_level_tolerance", 0.1, dt.date(2020, 1, 1), getpass.getuser(),
                       "demo: a stricter light-level warning")
    plan = campaign_service(settings).planner.plan(Change(parameter="light_level_tolerance"), getpass.getuser())
    totals = plan["totals"]
    echo("")
    echo("the second day: vbi-l1's light_level_tolerance becomes 0.1; `obsflow reprocess plan --parameter "
         "light_level_tolerance` says, running nothing:")
    for item in plan["items"]:
        echo(f"  {item['dataset_id']} ({item['proposal_id']}): re-run {', '.join(item['tasks_rerun'])}; "
             f"reuse {', '.join(item['tasks_reused']) or 'nothing'}")
    echo(f"  {totals['datasets']} dataset(s), about {console.cpu_time(totals['cpu_seconds'])}, "
         f"{totals['output_bytes'] / 1e6:.1f} MB, ${totals['usd']:.4f}; plan {plan['plan_id']} "
         "(`obsflow reprocess start` would run it as a campaign)")
    return plan
