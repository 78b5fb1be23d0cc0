"""Cost figures: what `obsflow capacity` is built from, measured on this machine.

1. Ingest, per frame: the ingest function, metered (obsflow.metering), on moto's server in this process (every
   request crosses a socket, as `obsflow local serve` runs it), over N frames in batches of 10: its seconds and its
   S3 and DynamoDB requests. Ingest reads a ranged header, so the frames' pixels do not matter here.
2. An idle submitter pass (nothing to plan or start), metered, on the local stack.
3. Each recipe's runs: a VBI candidate (darks, gains and N observe frames of SxS uint16) uploaded to the local
   stack as the summit sends it; the discovery rules plan vbi-calibration and vbi-l1. Each run records what it
   used (runs.costs); capacity.recipe_figures takes the figures from those records.

Prints the figures as JSON; --write also writes them to shared/obsflow/capacity_figures.json (the shipped set).

    python bench/cost_figures.py [--frames 32] [--size 4096] [--ingest-frames 400] [--write]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import platform
import socket
import time

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"
os.environ.pop("AWS_ENDPOINT_URL", None)

import boto3  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

from obsflow import aws, capacity, metering, tables  # noqa: E402
from obsflow.ingest.batch import process_batch  # noqa: E402
from obsflow.ingest.objects import PrefetchingReader, S3ObjectReader  # noqa: E402
from obsflow.ingest.service import IngestService  # noqa: E402
from obsflow.ingest.store import DynamoIngestStore  # noqa: E402
from obsflow.local import moto_patches  # noqa: E402
from obsflow.local.poller import QueuePoller  # noqa: E402
from obsflow.local.resources import create_resources  # noqa: E402
from obsflow.local.stack import LocalStack  # noqa: E402
from obsflow.recipes.definitions import RECIPES  # noqa: E402
from obsflow.services import run_service  # noqa: E402
from obsflow.settings import Settings  # noqa: E402
from obsflow.simulate import many_frames, simulate_candidate  # noqa: E402
from obsflow.tables import runs  # noqa: E402

BATCH = 10


def where() -> str:
    load = os.getloadavg()[0]
    return (f"{dt.date.today().isoformat()} on the local stack ({platform.machine()}, {os.cpu_count()} cores, "
            f"load {load:.1f}) by bench/cost_figures.py")


@contextlib.contextmanager
def moto_server():
    moto_patches.apply()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
    try:
        yield
    finally:
        os.environ.pop("AWS_ENDPOINT_URL", None)
        server.stop()


def ingest_figures(frames: int) -> capacity.IngestFigures:
    """The ingest function, metered per invocation (its header reads' threads too), over ``frames`` frames."""
    with moto_server():
        settings = Settings(stage="figures")
        urls = create_resources(settings, boto3.Session(), processing=False)
        s3 = boto3.client("s3")
        for key, body in many_frames("OPFIG", "observe", frames, proposal_id="pid_figures", shape=(64, 64), seed=3):
            s3.put_object(Bucket=settings.ingest_bucket_name, Key=key, Body=body)
        # ingest's own S3 client is boto3's (not metered); the same service over a metered one
        tables.bind(settings)
        service = IngestService(PrefetchingReader(S3ObjectReader(aws.client(settings, "s3")),
                                                  settings.header_read_concurrency), DynamoIngestStore(settings), settings)
        entries = []

        def metered_handler(event, context):
            with metering.metering_process(kind="lambda", function="ingest") as meter:
                try:
                    return process_batch(service, event, context)[0]
                finally:
                    entries.append(meter.entry())

        poller = QueuePoller(boto3.client("sqs"), urls["queue_url"], metered_handler, batch_size=BATCH, window_s=0.2)
        poller.drain()
    return capacity.IngestFigures(
        source=f"measured {where()}: the ingest function over {frames} frames, {len(entries)} invocations",
        frames_per_invocation=frames / len(entries),
        lambda_s_per_frame=sum(e["seconds"] for e in entries) / frames,
        requests_per_frame={name: sum(e[name] for e in entries) / frames for name in metering.COUNTS})


def idle_pass(settings: Settings, passes: int = 5) -> capacity.PassFigures:
    service = run_service(settings)
    entries = []
    for _ in range(passes):
        with metering.metering(kind="lambda", function="submitter") as meter:
            service.submit()
        entries.append(meter.entry())
    return capacity.PassFigures(
        source=f"measured {where()}: {passes} submitter passes with nothing to do",
        lambda_s=sum(e["seconds"] for e in entries) / passes,
        requests={name: sum(e[name] for e in entries) / passes for name in metering.COUNTS})


def run_figures(n_observe: int, size: int) -> tuple[dict[str, capacity.RecipeFigures], capacity.PassFigures]:
    candidate = simulate_candidate("cand_figures", n_dark=4, n_gain=4, n_observe=n_observe, shape=(size, size),
                                   seed=11)
    with LocalStack(port=0, stage="figures", log_level="ERROR", submit_interval_s=0.5) as stack:
        tables.bind(stack.settings)
        s3 = boto3.client("s3", endpoint_url=stack.endpoint_url, region_name=stack.settings.region)
        for key, body in [candidate.candidate_object(), *candidate.frame_objects(), candidate.manifest_object()]:
            s3.put_object(Bucket=stack.settings.ingest_bucket_name, Key=key, Body=body)
        deadline = time.monotonic() + 3600
        while time.monotonic() < deadline:  # the calibration, the science, then the night's summary of it
            ended = {r.recipe for r in runs.all_runs() if r.status in ("SUCCEEDED", "FAILED")}
            if {"vbi-calibration", "vbi-l1", "vbi-night-summary"} <= ended:
                break
            time.sleep(1)
        else:
            raise SystemExit(f"the runs did not end within an hour: {ended} did")
        failed = [r for r in runs.all_runs() if r.status == "FAILED"]
        if failed:
            raise SystemExit(f"run(s) failed: {[(r.run_id, r.recipe, r.error) for r in failed]}")
        figures = {}
        for run in (r for r in runs.all_runs() if r.status == "SUCCEEDED"):
            recipe = next(r for r in RECIPES if r.key == f"{run.recipe}@{run.version}")
            found = capacity.recipe_figures(
                recipe, [(run.configuration, run.cost)],
                f"measured {where()}: a run of {run.recipe}@{run.version} over a VBI candidate of 4 darks, 4 gains and "
                f"{n_observe} observe frames of {size}x{size} uint16")
            if found is not None:
                figures[run.recipe] = found
        return figures, idle_pass(stack.settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=32, help="observe frames of the VBI candidate")
    parser.add_argument("--size", type=int, default=4096, help="frame width and height in pixels")
    parser.add_argument("--ingest-frames", type=int, default=400)
    parser.add_argument("--write", action="store_true", help="write them to " + str(capacity.SHIPPED))
    args = parser.parse_args()
    ingest = ingest_figures(args.ingest_frames)
    recipes, idle = run_figures(args.frames, args.size)
    figures = capacity.Figures(ingest=ingest, idle_pass=idle, recipes=recipes)
    text = capacity.figures_json(figures)
    print(text)
    if args.write:
        capacity.SHIPPED.write_text(text)
        print(f"written to {capacity.SHIPPED}")


if __name__ == "__main__":
    main()
