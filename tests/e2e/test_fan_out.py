"""A data-parallel task on the local stack: vbi-l1's frames task fans out over chunks of observe frames as
a Batch array job (its children side by side, up to the core count), whose last chunk to finish records them."""

from __future__ import annotations

import io
import json
import os
import time

import boto3
import numpy as np
import pytest
from astropy.io import fits

from obsflow import tables
from obsflow.local.stack import LocalStack
from obsflow.runs import layout
from obsflow.services import run_service
from obsflow.simulate import simulate_candidate
from obsflow.tables import datasets, runs, tickets

pytestmark = pytest.mark.e2e
N_OBSERVE = 7


def wait_until_ended(run_id: str, timeout_s: float = 240):
    deadline = time.monotonic() + timeout_s
    while (run := runs.get(run_id)).status not in ("SUCCEEDED", "FAILED"):
        assert time.monotonic() < deadline, f"run {run_id} is still {run.status}"
        time.sleep(0.25)
    return run


@pytest.fixture(scope="module")
def processed():
    """Given a VBI candidate of 7 observe frames processed in one chunk (chunk_frames defaults to 32)"""
    with LocalStack(port=0, stage="fanout", log_level="ERROR", submit_interval_s=0.5) as stack:
        tables.bind(stack.settings)
        s3 = boto3.Session(region_name=stack.settings.region).client("s3")
        candidate = simulate_candidate("fan_a", proposal_id="pid_3_1", n_dark=2, n_gain=2, n_observe=N_OBSERVE,
                                       shape=(64, 64), seed=53)
        for key, body in [candidate.candidate_object(), *candidate.frame_objects(), candidate.manifest_object()]:
            s3.put_object(Bucket=stack.settings.ingest_bucket_name, Key=key, Body=body)
        deadline = time.monotonic() + 240
        while not (science := [r for r in runs.all_runs() if r.recipe == "vbi-l1"]):
            assert time.monotonic() < deadline, "no vbi-l1 run"
            time.sleep(0.25)
        yield stack, s3, wait_until_ended(science[0].run_id)


def work_json(stack, s3, key: str) -> dict:
    return json.loads(s3.get_object(Bucket=stack.settings.bucket_name("work"), Key=key)["Body"].read())


def l1_frames(s3, dataset) -> dict[str, np.ndarray]:
    found = {}
    for f in dataset.files:
        if f["name"].endswith("_L1.fits"):
            body = s3.get_object(Bucket=dataset.bucket, Key=f["key"])["Body"].read()
            with fits.open(io.BytesIO(body)) as hdus:
                found[f["name"].split("_")[-2]] = (np.array(hdus[1].data), hdus[1].header["DINDEX3"], hdus[1].header["DATE-BEG"])
    return found


def test_chunks_run_side_by_side_and_make_the_same_products_as_one_job(processed):
    stack, s3, whole = processed
    assert whole.status == "SUCCEEDED", whole.error
    # When the same frames are processed again in chunks of 3 (3, 2 and 2 frames)
    again = run_service(stack.settings).retry(whole.run_id, {"chunk_frames": "3"})
    chunked = wait_until_ended(again.run_id)
    assert chunked.status == "SUCCEEDED", chunked.error
    # Then the frames task ran as three chunks, the last of them recording the task: one record listing every
    # chunk's outputs
    record = work_json(stack, s3, layout.task_record_key(chunked.run_id, "frames"))
    parts = [work_json(stack, s3, layout.chunk_record_key(chunked.run_id, "frames", i)) for i in range(3)]
    assert record["chunks"] == 3 and [p["chunk"] for p in parts] == [[0, 3], [1, 3], [2, 3]]
    assert sorted(o["name"] for o in record["outputs"]) == sorted(o["name"] for p in parts for o in p["outputs"])
    assert record["duration_s"] == pytest.approx(sum(p["duration_s"] for p in parts), abs=0.01)
    # And the chunks ran side by side, as many at a time as this machine has cores
    spans = [(p["started_at"], p["finished_at"]) for p in parts]
    overlapping = max(sum(start <= at < end for start, end in spans) for at, _ in spans)
    assert overlapping == min(3, os.cpu_count() or 1), spans
    # And every L1 frame is the same as the one-job run's, pixel for pixel, at the same place in the time series
    one_job, three_chunks = (l1_frames(s3, datasets.get(r.dataset_id)) for r in (whole, chunked))
    assert sorted(one_job) == sorted(three_chunks) == [f"{i:04d}" for i in range(N_OBSERVE)]
    for index, (data, dindex, date_obs) in one_job.items():
        other = three_chunks[index]
        assert np.array_equal(data, other[0], equal_nan=True) and (dindex, date_obs) == other[1:]
    assert [dindex for _, dindex, _ in (one_job[k] for k in sorted(one_job))] == list(range(1, N_OBSERVE + 1))
    # And the movie has every frame, and the metrics every frame in time order
    dataset = datasets.get(chunked.dataset_id)
    metrics = json.loads(s3.get_object(Bucket=dataset.bucket, Key=dataset.prefix + "quality_metrics.json")["Body"].read())
    assert [f["date_obs"] for f in metrics["frames"]] == sorted(f["date_obs"] for f in metrics["frames"])
    assert len(metrics["frames"]) == N_OBSERVE


def test_a_failing_chunk_fails_the_run_with_one_ticket_naming_the_chunk(processed):
    stack, s3, whole = processed
    service = run_service(stack.settings)
    # Given a run in chunks of 2 (four chunks) whose second chunk fails, as a configuration error would
    service.pause()
    run = service.retry(whole.run_id, {"chunk_frames": "2"})
    service.inject_fault(run.run_id, "frames", "configuration", chunk=1)
    service.resume()
    # When it runs
    failed = wait_until_ended(run.run_id)
    # Then it fails with one ticket that names the task, the chunk, its exit code and its own log lines
    assert failed.status == "FAILED"
    [ticket] = [t for t in tickets.all_tickets() if t.run_id == run.run_id]
    assert (ticket.failed_task, ticket.exit_code, ticket.kind) == ("frames", 2, "failure:configuration")
    assert "chunk 2 of 4" in ticket.error_message
    assert "configuration fault is injected into frames" in ticket.log_excerpt
    assert f"obsflow runs retry {run.run_id}" in ticket.suggested_action
    # And the other chunks finished their own frames; none made a task record of a partial set
    bucket = stack.settings.bucket_name("work")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"runs/{run.run_id}/tasks/frames/")
    assert len([o for o in listed.get("Contents", []) if o["Key"].endswith(".json")]) == 4
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix=layout.task_record_key(run.run_id, "frames"))


def test_a_lossy_l1_option_records_its_measured_error_and_stays_within_it(processed):
    stack, s3, whole = processed
    # When the frames are processed again with L1 quantized at q = 16
    lossy = wait_until_ended(run_service(stack.settings).retry(whole.run_id, {"l1_quantize_level": "16"}).run_id)
    assert lossy.status == "SUCCEEDED", lossy.error
    # Then each L1 frame says so with its measured maximum error, which holds against the lossless frame
    lossless_dataset, lossy_dataset = datasets.get(whole.dataset_id), datasets.get(lossy.dataset_id)
    exact = l1_frames(s3, lossless_dataset)
    for f in lossy_dataset.files:
        if f["name"].endswith("_L1.fits"):
            body = s3.get_object(Bucket=lossy_dataset.bucket, Key=f["key"])["Body"].read()
            with fits.open(io.BytesIO(body)) as hdus:
                [card] = [line for line in hdus[1].header["HISTORY"] if "lossy RICE_1, q=16" in line]
                bound = float(card.rsplit(" ", 1)[1])
                assert 0 < np.nanmax(np.abs(hdus[1].data - exact[f["name"].split("_")[-2]][0])) <= bound
    # And the inventory reports the better compression
    ratios = [json.loads(s3.get_object(Bucket=d.bucket, Key=d.prefix + "inventory.json")["Body"].read())["compression_ratio"]
              for d in (lossless_dataset, lossy_dataset)]
    assert ratios[1] > ratios[0]
