"""A calibration parameter change followed down the catalogue on the local stack, through the CLI: planned (the
master calibration, the science made on it, the night summary made from that), started as one campaign that runs
the chain in dependency order, decided by data quality, and the campaign accepted."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from click.testing import CliRunner

from obsflow import tables
from obsflow.cli import main as cli
from obsflow.local.stack import LocalStack
from obsflow.simulate import simulate_candidate
from obsflow.tables import campaigns, datasets, runs, tickets

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def night():
    """Given one VBI observation of 2026-11-20 processed: its master calibration, its science and the night summary."""
    with LocalStack(port=0, stage="calchange", log_level="ERROR", submit_interval_s=0.5) as stack:
        tables.bind(stack.settings)
        s3 = boto3.client("s3", endpoint_url=stack.endpoint_url, region_name=stack.settings.region)
        candidate = simulate_candidate("cal_change", proposal_id="pid_3_1", n_dark=2, n_gain=2, n_observe=3,
                                       shape=(48, 48), seed=61)
        for key, body in [candidate.candidate_object(), *candidate.frame_objects(), candidate.manifest_object()]:
            s3.put_object(Bucket=stack.settings.ingest_bucket_name, Key=key, Body=body)
        wait_for(lambda: len([r for r in runs.all_runs() if r.status == "SUCCEEDED"]) == 3, "the night's three runs")
        yield stack


def wait_for(predicate, what: str, timeout_s: float = 300):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}: {[(r.run_id, r.recipe, r.status) for r in runs.all_runs()]}")


def obsflow(stack, *args) -> str:
    said = CliRunner().invoke(cli, ["--endpoint-url", stack.endpoint_url, "--stage", stack.settings.stage, *args])
    assert said.exit_code == 0, said.output
    return said.output


def by_kind() -> dict[str, object]:
    return {d.kind: datasets.get(d.dataset_id) for d in datasets.with_status("ACTIVE")}


def test_a_calibration_parameter_change_is_planned_run_and_decided_down_to_a_new_summary(night):
    stack = night
    before = by_kind()
    assert set(before) == {"calibration", "science", "summary"}
    # When bad_pixel_high changes for observations from 2026-11-01 on, and the change is planned
    obsflow(stack, "recipes", "set-value", "vbi-calibration", "bad_pixel_high", "1.3", "--effective-from", "2026-11-01",
            "--reason", "the new camera's gain is flatter")
    plan = json.loads(obsflow(stack, "reprocess", "plan", "--parameter", "bad_pixel_high", "--json"))
    # Then the plan lists the calibration, the science made on it and the summary made from that, in that order
    items = plan["items"]
    assert [(i["kind"], i["dataset_id"], i.get("made_from")) for i in items] == [
        ("calibration", before["calibration"].dataset_id, None),
        ("science", before["science"].dataset_id, [before["calibration"].dataset_id]),
        ("summary", before["summary"].dataset_id, [before["science"].dataset_id])]
    assert items[0]["configuration_changes"] == {"bad_pixel_high": [1.5, 1.3]}
    assert plan["totals"]["downstream"] == 2 and plan["totals"]["cpu_seconds"] > 0
    shown = obsflow(stack, "reprocess", "plan", "--parameter", "bad_pixel_high")
    assert "2 of them made from others it re-makes" in shown
    # When it is started as one campaign
    obsflow(stack, "reprocess", "start", plan["plan_id"], "--name", "bph-13", "--reason", "flatter gain")
    # Then it runs the chain in dependency order, each copy made from its producer's copy, and ends COMPLETED
    wait_for(lambda: campaigns.get("bph-13").status == "COMPLETED", "the campaign to complete")
    made = {d.kind: datasets.get(d.dataset_id) for d in datasets.of_campaign("bph-13")}
    assert set(made) == {"calibration", "science", "summary"}
    upstream = {kind: [u["dataset_id"] for u in d.provenance["upstream_datasets"]] for kind, d in made.items()}
    assert upstream["science"] == [made["calibration"].dataset_id]
    assert upstream["summary"] == [made["science"].dataset_id]
    order = sorted(made.values(), key=lambda d: d.created_at)
    assert [d.kind for d in order] == ["calibration", "science", "summary"]
    # When data quality keeps the new calibration, then the new science and summary, and accepts the campaign
    obsflow(stack, "datasets", "decide", made["calibration"].dataset_id, "--deprecate", before["calibration"].dataset_id,
            "--reason", "fewer false bad pixels")
    ticket = tickets.get(f"TKT-superseded-{before['calibration'].dataset_id}")
    assert ticket.kind == "review:superseded" and "made again from" in ticket.suggested_action
    for kind in ("science", "summary"):
        obsflow(stack, "datasets", "decide", made[kind].dataset_id, "--deprecate", before[kind].dataset_id,
                "--reason", "on the new calibration")
    obsflow(stack, "campaigns", "accept", "bph-13", "--reason", "the night is better")
    # Then the ACTIVE datasets are the campaign's, the old ones DEPRECATED and superseded by them
    assert {kind: d.dataset_id for kind, d in by_kind().items()} == {kind: d.dataset_id for kind, d in made.items()}
    for kind, old in before.items():
        old = datasets.get(old.dataset_id)
        assert (old.status, old.superseded_by) == ("DEPRECATED", made[kind].dataset_id)
    assert campaigns.get("bph-13").status == "ACCEPTED"
    assert [s["replaced_by"] for s in datasets.get(before["science"].dataset_id).superseded_inputs] == [
        made["calibration"].dataset_id]
