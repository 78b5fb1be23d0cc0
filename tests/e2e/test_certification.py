"""An uncertified master calibration holding science on the local stack, then certification releasing it, through
the CLI: the calibration's QC gate fails on the simulated flats, the science waits saying why, and data quality's
`calibrations certify` lets it run, each association with its score."""

from __future__ import annotations

import json
import time

import boto3
import pytest

from obsflow import tables
from obsflow.local.stack import LocalStack
from obsflow.simulate import simulate_candidate
from obsflow.tables import datasets, recipe_instances, runs, tickets
from tests.e2e.test_calibration_change import obsflow, wait_for

pytestmark = pytest.mark.e2e


def science_instance():
    return next((i for i in recipe_instances.with_state("WAITING") if i.recipe == "vbi-l1"), None)


@pytest.fixture(scope="module")
def stack():
    with LocalStack(port=0, stage="certify", log_level="ERROR", submit_interval_s=0.5) as stack:
        tables.bind(stack.settings)
        yield stack


def test_an_uncertified_calibration_holds_the_science_until_data_quality_certifies_it(stack):
    # Given bad pixels called below 95 % of the median response, for observations from 2026-11-01 on (the
    # simulated flats are vignetted: about a third of their pixels fall below)
    obsflow(stack, "recipes", "set-value", "vbi-calibration", "bad_pixel_low", "0.95", "--effective-from",
            "2026-11-01", "--reason", "a strict mask for the test")
    # When an observation arrives
    s3 = boto3.client("s3", endpoint_url=stack.endpoint_url, region_name=stack.settings.region)
    candidate = simulate_candidate("certify_me", proposal_id="pid_4_2", n_dark=2, n_gain=2, n_observe=3,
                                   shape=(48, 48), seed=71)
    for key, body in [candidate.candidate_object(), *candidate.frame_objects(), candidate.manifest_object()]:
        s3.put_object(Bucket=stack.settings.ingest_bucket_name, Key=key, Body=body)
    # Then the master calibration is made with vbi-calibration 1.1.0, and its bad-pixel gate fails
    [calibration] = wait_for(lambda: [d for d in datasets.of_kind("calibration")], "the master calibration")
    assert calibration.recipe == "vbi-calibration@1.1.0" and calibration.certification == "UNCERTIFIED"
    failed = {g["metric"]: g for g in calibration.certification_gates if not g["passed"]}
    assert set(failed) == {"bad_pixel_fraction"} and failed["bad_pixel_fraction"]["value"] > 0.3
    # (the ticket is filed once the calibration is recorded: a moment later)
    ticket = wait_for(lambda: tickets.get(f"TKT-certify-{calibration.dataset_id}"), "the certification ticket")
    assert ticket.kind == "review:certification" and "gate bad_pixel_fraction" in ticket.summary
    # And the science waits, saying for which calibration, which gate and the command that releases it
    reason = wait_for(lambda: (i := science_instance()) and "to be certified" in (i.state_reason or "") and i.state_reason,
                      "the science to wait for certification")
    assert reason.startswith(f"waiting for calibration {calibration.dataset_id} to be certified (gate bad_pixel_fraction ")
    assert f"obsflow calibrations certify {calibration.dataset_id} --reason TEXT" in reason
    time.sleep(2)  # a few submitter passes: nothing runs the science meanwhile
    assert [r.recipe for r in runs.all_runs()] == ["vbi-calibration"]
    shown = obsflow(stack, "calibrations", "for", "certify_me")
    assert f"dataset {calibration.dataset_id}: UNCERTIFIED (bad_pixel_fraction" in shown and "FAILED" in shown

    # When data quality certifies it by the CLI
    said = obsflow(stack, "calibrations", "certify", calibration.dataset_id, "--reason", "strict mask: the vignetting")
    assert f"calibration {calibration.dataset_id} is CERTIFIED" in said
    # Then the science and the night summary run on it, and the ticket is resolved with who and why
    wait_for(lambda: len([r for r in runs.all_runs() if r.status == "SUCCEEDED"]) == 3, "the science and the summary")
    assert tickets.get(f"TKT-certify-{calibration.dataset_id}").status == "RESOLVED"
    history = datasets.get(calibration.dataset_id).certification_history
    assert [(h["move"], h["reason"]) for h in history] == [("certify", "strict mask: the vignetting")]
    # And the science dataset records the association's score: same setup, minutes apart
    [science] = datasets.of_kind("science")
    [upstream] = datasets.get(science.dataset_id).provenance["upstream_datasets"]
    association = upstream["association"]
    assert upstream["dataset_id"] == calibration.dataset_id and association["setup_match"] == 1.0
    assert 0 < association["hours"] < 1 and 0.95 < association["score"] < 1
    listed = json.loads(obsflow(stack, "calibrations", "for", "certify_me", "--json"))
    assert listed[0]["certification"] == "CERTIFIED" and listed[0]["association"] == association
    assert "setup 3/3 matched (exposure_ms, filter, camera)" in obsflow(stack, "calibrations", "for", "certify_me")
