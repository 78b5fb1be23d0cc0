"""Operations control on the local stack, through the CLI: resuming without the backlog, processing windows."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from zoneinfo import ZoneInfo

import boto3
import pytest
from click.testing import CliRunner

from obsflow import tables
from obsflow.cli import main as cli
from obsflow.local.stack import LocalStack
from obsflow.services import run_service
from obsflow.simulate import simulate_candidate
from obsflow.tables import candidates, runs, tickets

pytestmark = pytest.mark.e2e
HAWAII = ZoneInfo("Pacific/Honolulu")


def closed_hours() -> str:
    """One hour that starts three hours from now at the site (DKIST's, the default): closed for this whole test."""
    start = dt.datetime.now(HAWAII) + dt.timedelta(hours=3)
    return f"{start:%H}:00-{start + dt.timedelta(hours=1):%H}:00"


SCIENCE_WINDOW = closed_hours()


@pytest.fixture(scope="module")
def stack():
    saved = os.environ.get("OBSFLOW_WINDOWS")
    os.environ["OBSFLOW_WINDOWS"] = json.dumps({"vbi-l1": SCIENCE_WINDOW})  # science waits; calibrations any time
    try:
        with LocalStack(port=0, stage="ops", log_level="ERROR", submit_interval_s=0.5) as local:
            tables.bind(local.settings)
            yield local
    finally:
        os.environ.pop("OBSFLOW_WINDOWS") if saved is None else os.environ.update(OBSFLOW_WINDOWS=saved)


def obsflow(stack, *args) -> str:
    said = CliRunner().invoke(cli, ["--endpoint-url", stack.endpoint_url, "--stage", stack.settings.stage, *args])
    assert said.exit_code == 0, said.output
    return said.output


def upload(stack, candidate) -> None:
    s3 = boto3.client("s3", endpoint_url=stack.endpoint_url, region_name=stack.settings.region)
    for key, body in [candidate.candidate_object(), *candidate.frame_objects(), candidate.manifest_object()]:
        s3.put_object(Bucket=stack.settings.ingest_bucket_name, Key=key, Body=body)


def wait_for(predicate, what: str, timeout_s: float = 240):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}; runs: "
                         f"{[(r.run_id, r.recipe, r.status, r.waiting_reason) for r in runs.all_runs()]}")


def runs_of(candidate_id: str):
    return [r for r in runs.all_runs() if r.candidate_id == candidate_id]


def test_resume_skipping_the_backlog_then_requeue_runs_them(stack):
    # Given two census candidates received and planned while submission was paused
    run_service(stack.settings).pause("summit link maintenance")
    for index, name in enumerate(("cand_backlog_1", "cand_backlog_2")):
        upload(stack, simulate_candidate(name, n_dark=1, n_gain=1, n_observe=2, shape=(16, 16), seed=40 + index,
                                         recipe="frame-census"))
    queued = wait_for(lambda: (found := [r.run_id for n in ("cand_backlog_1", "cand_backlog_2") for r in runs_of(n)
                                         if r.status == "READY"]) and len(found) == 2 and found, "two queued runs")
    # When the operator resumes without the backlog
    said = obsflow(stack, "resume", "--skip-backlog", "--reason", "the night's data came back from the archive")
    # Then both are SKIPPED with who and why, one ticket lists them, and nothing starts
    assert "skipped 2 queued run(s)" in said
    assert {runs.get(r).status for r in queued} == {"SKIPPED"}
    [ticket] = [t for t in tickets.all_tickets() if t.kind == "skipped-backlog"]
    assert all(r in ticket.log_excerpt for r in queued)
    time.sleep(1.5)  # three submitter passes
    assert {runs.get(r).status for r in queued} == {"SKIPPED"}
    listed = json.loads(obsflow(stack, "runs", "list", "--status", "SKIPPED", "--json"))
    assert sorted(row["run_id"] for row in listed) == sorted(queued)
    # When they are queued again
    assert "queued 2 run(s) again" in obsflow(stack, "runs", "requeue", "--skipped", "--reason", "wanted after all")
    # Then both run to the end
    wait_for(lambda: {runs.get(r).status for r in queued} == {"SUCCEEDED"}, "both runs to succeed")


def test_a_science_run_waits_for_its_window_while_its_calibration_runs(stack):
    # Given vbi-l1 runs only in an hour that is hours away, and a VBI observation with its darks and gains arrives
    upload(stack, simulate_candidate("cand_window", n_dark=2, n_gain=2, n_observe=2, shape=(32, 32), seed=44))
    wait_for(lambda: (c := candidates.get("cand_window")) and c.status == "PLANNED", "the candidate to be planned")
    # When the submitter has run: the calibration runs to the end
    calibration = wait_for(lambda: next((r for r in runs.all_runs() if r.recipe == "vbi-calibration"
                                         and r.status in ("SUCCEEDED", "FAILED")), None), "the calibration run")
    assert calibration.status == "SUCCEEDED"
    # Then the science run waits, saying which window and when it opens
    science = wait_for(lambda: next((r for r in runs_of("cand_window") if r.recipe == "vbi-l1"
                                     and (r.waiting_reason or "").startswith("outside its processing window")), None),
                       "the science run to wait for its window")
    assert science.status == "READY" and f"vbi-l1 runs {SCIENCE_WINDOW} Pacific/Honolulu; opens at" in \
        science.waiting_reason
    # And `windows show` lists the window closed, when it opens, and the one run waiting for it
    [row] = json.loads(obsflow(stack, "windows", "show", "--json"))
    assert (row["key"], row["open"], row["runs_waiting"]) == ("vbi-l1", False, 1)
    assert "vbi-l1" in obsflow(stack, "windows", "show") and "closed" in obsflow(stack, "windows", "show")
