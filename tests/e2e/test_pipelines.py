"""DKIST's published pipelines run unchanged on the local stack: `obsflow pipelines add` builds each one's own
environment (once per test run, in build/pipelines), its workflows become recipes, and candidates that name them
are processed by DKIST's own code, judged by DKIST's own validator and opened with DKIST's user package."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
from pathlib import Path

import boto3
import pytest
from astropy.io import fits
from click.testing import CliRunner

from obsflow import tables
from obsflow.cli import main as cli
from obsflow.local.stack import LocalStack
from obsflow.pipelines import environments
from obsflow.services import run_service
from obsflow.settings import Settings
from obsflow.simulate import simulate_candidate
from obsflow.tables import datasets, runs, tickets

pytestmark = pytest.mark.e2e
PIPELINES = ("dkist-processing-vbi==1.23.4", "dkist-processing-test==1.34.4")
ENVIRONMENTS = Path(__file__).resolve().parents[2] / "build" / "pipelines"
VBI, TEST_E2E, TEST_FAIL = ("l0-to-l1-vbi-no-speckle", "input-to-output-test-management-processes-e2e",
                            "input-to-output-test-fail")


@pytest.fixture(scope="module")
def stack():
    # Given the pipelines' own environments, built side by side (each a venv of about 1 GB, pip's cache warm or not)
    saved = os.environ.get("OBSFLOW_PIPELINES_DIR")
    os.environ["OBSFLOW_PIPELINES_DIR"] = str(ENVIRONMENTS)
    os.environ["OBSFLOW_AUTO_REDRIVES"] = "0"  # a redrive here is the operator's (it resumes on the kept scratch)
    settings = Settings(stage="pipes", pipelines_dir=str(ENVIRONMENTS))
    builders = [threading.Thread(target=environments.build, args=(settings, *environments.parse_requirement(p)),
                                 kwargs={"log": lambda _: None}) for p in PIPELINES]
    for builder in builders:
        builder.start()
    for builder in builders:
        builder.join()
    try:
        with LocalStack(port=0, stage="pipes", log_level="ERROR", submit_interval_s=0.5,
                        capacity={"default": 1, "high-memory": 1, "multi-core": 1}) as local:
            tables.bind(local.settings)
            # When an operator adds them
            for pipeline in PIPELINES:
                added = cli_run(local, "pipelines", "add", pipeline)
                assert "registered as recipes" in added
            yield local
    finally:
        os.environ.pop("OBSFLOW_AUTO_REDRIVES", None)
        if saved is None:
            os.environ.pop("OBSFLOW_PIPELINES_DIR", None)
        else:
            os.environ["OBSFLOW_PIPELINES_DIR"] = saved


def cli_run(stack, *arguments) -> str:
    result = CliRunner().invoke(cli, ["--endpoint-url", stack.endpoint_url, "--stage", stack.settings.stage,
                                      *arguments])
    assert result.exit_code == 0, result.output
    return result.output


def upload(stack, candidate) -> None:
    s3 = boto3.client("s3", endpoint_url=stack.endpoint_url, region_name=stack.settings.region)
    for key, body in [candidate.candidate_object(), *candidate.frame_objects(), candidate.manifest_object()]:
        s3.put_object(Bucket=stack.settings.ingest_bucket_name, Key=key, Body=body)


def candidate(candidate_id: str, recipe: str, seed: int, frames: int = 8, calibration_frames: int = 4):
    """A VBI observation as the summit sends it: darks, gains and a granulation time series, 64x64."""
    return simulate_candidate(candidate_id, n_dark=calibration_frames, n_gain=calibration_frames, n_observe=frames,
                              shape=(64, 64), seed=seed, recipe=recipe)


def wait_for(predicate, what: str, timeout_s: float = 400):
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; runs: "
                         f"{[(r.candidate_id, r.recipe, r.status) for r in runs.all_runs()]}")


def finished(candidate_id: str):
    return wait_for(lambda: next((r for r in runs.all_runs() if r.candidate_id == candidate_id
                                  and r.status in ("SUCCEEDED", "FAILED")), None), f"a finished run of {candidate_id}")


def planned_with_fault(stack, candidate_id: str, seed: int, task: str):
    """A run of the test pipeline's end-to-end workflow, planned while submission is paused, whose ``task`` fails
    once as an outage would make it. Its 10 observe frames: the test pipeline says in every L1 header that its dataset
    has 10 (DNAXIS3); it writes L1 frames of the calibration frames too."""
    service = run_service(stack.settings)
    service.pause()
    upload(stack, candidate(candidate_id, TEST_E2E, seed, frames=10, calibration_frames=2))
    run = wait_for(lambda: next((r for r in runs.all_runs() if r.candidate_id == candidate_id), None), "the run")
    service.inject_fault(run.run_id, task, "outage")
    service.resume()
    failed = finished(candidate_id)
    assert failed.status == "FAILED"
    return run


def test_the_workflows_are_recipes_with_their_dags_and_the_pipeline_is_listed(stack):
    listed = json.loads(cli_run(stack, "pipelines", "list", "--json"))
    assert {p["name"] for p in listed} == set(PIPELINES)
    vbi = json.loads(cli_run(stack, "pipelines", "show", "dkist-processing-vbi", "--json"))
    assert VBI in {w["recipe"] for w in vbi["workflows"]} and vbi["size_bytes"] > 300e6
    shown = cli_run(stack, "recipes", "show", VBI)
    assert "dkist_processing_vbi.tasks.dark:DarkCalibration" in shown
    assert "https://docs.dkist.nso.edu/projects/vbi/en/v1.23.4/l0_to_l1_vbi_no-speckle.html" in shown


def test_a_vbi_candidate_is_processed_by_dkists_own_code_and_judged_by_dkists_own_tools(stack, tmp_path):
    # Given a VBI candidate that names DKIST's L0 -> L1 workflow
    upload(stack, candidate("dkist_vbi", VBI, seed=11))
    # When it is processed
    run = finished("dkist_vbi")
    assert run.status == "SUCCEEDED", run.error
    dataset = datasets.get(run.dataset_id)
    # Then the dataset holds the pipeline's 8 L1 frames and movie, with the inventory, ASDF and quality report
    tags = [set(f["tags"]) for f in dataset.files]
    assert sum("l1" in t for t in tags) == dataset.frame_count == 8
    assert [sum(kind in t for t in tags) for kind in ("movie", "asdf", "inventory", "quality-report")] == [1] * 4
    # And it downloads with every SHA-256 checked, and every FITS checksum verifies
    cli_run(stack, "datasets", "download", run.dataset_id, "--to", str(tmp_path))
    folder = next(tmp_path.glob(f"*/{run.dataset_id}"))
    frames = sorted(folder.glob("*_L1.fits"))
    for frame in frames:  # the checksums cover the HDUs as stored: the tile-compressed table
        with fits.open(frame, disable_image_compression=True) as hdus:
            assert [(hdu.verify_checksum(), hdu.verify_datasum()) for hdu in hdus] == [(1, 1), (1, 1)]
    header = fits.getheader(frames[-1], 1)
    # And the L1 headers name the workflow, its exact version and its documentation; nothing was done by hand
    assert (header["WKFLNAME"], header["WKFLVERS"], header["MANPROCD"]) == ("l0_to_l1_vbi_no-speckle", "1.23.4", False)
    assert header["CAL_URL"] == "https://docs.dkist.nso.edu/projects/vbi/en/v1.23.4/l0_to_l1_vbi_no-speckle.html"
    # And every L1 frame passes DKIST's own SPEC-0214 validator, the one the pipeline pins
    python = environments.find(stack.settings, "dkist-processing-vbi", "1.23.4").python
    judged = subprocess.run([str(python), "-c", "import sys; from dkist_header_validator import spec214_validator\n"
                             "for path in sys.argv[1:]: spec214_validator.validate(path, extra=False)",
                             *map(str, frames)], capture_output=True, text=True)
    assert judged.returncode == 0, judged.stderr[-2000:]
    # And DKIST's user package opens the ASDF as an 8-frame time series of the calibrated data
    import dkist

    opened = dkist.load_dataset(next(folder.glob("*.asdf")))
    assert opened.data.shape == (8, 64, 64)
    assert float(opened.data[3].compute().mean()) == pytest.approx(float(fits.getdata(frames[3], 1).mean()), rel=1e-6)
    # And the quality report is a PDF of the pipeline's own metrics
    import pypdfium2

    report = pypdfium2.PdfDocument(next(folder.glob("*_quality_report.pdf")))
    text = "".join(report[i].get_textpage().get_text_range() for i in range(len(report)))
    assert len(report) >= 2 and "Fried" in text
    # And Teardown left nothing of the run in scratch: neither the pipeline's files nor the host's
    from obsflow.pipelines.records import recipe_run_id

    scratch = Path(stack.settings.scratch_dir)
    assert (scratch / ".obsflow-host").is_dir()  # where the host keeps what each run's nodes hand over
    assert not (scratch / str(recipe_run_id(run.run_id))).exists()
    assert not (scratch / ".obsflow-host" / str(recipe_run_id(run.run_id))).exists()
    # And the provenance names the pipeline's package version and every task the workflow ran
    provenance = json.loads((folder / "provenance.json").read_text())
    assert len(provenance["tasks"]) == 17 and provenance["recipe_version"] == "1.23.4"
    assert hashlib.sha256(frames[0].read_bytes()).hexdigest() in (folder / "SHA256SUMS").read_text()


def test_the_test_pipelines_failing_workflow_gives_one_ticket_quoting_its_own_log(stack):
    # Given a candidate for dkist-processing-test's workflow whose task always fails
    upload(stack, candidate("dkist_fail", TEST_FAIL, seed=12, frames=2))
    # When it runs
    run = finished("dkist_fail")
    # Then the run failed with one ticket, which quotes the task's own error from its log
    assert run.status == "FAILED"
    [ticket] = [t for t in tickets.all_tickets() if t.run_id == run.run_id]
    assert ticket.failed_task == "fail_task" and ticket.kind == "failure:science"
    assert "RuntimeError: Failure is guaranteed" in ticket.log_excerpt


def test_a_redrive_resumes_from_the_failed_task_on_the_scratch_and_inventory_the_run_kept(stack):
    # Given a run of the test pipeline that failed in write_l1_data, after its calibrated frames were written to
    # scratch and tagged in Redis
    run = planned_with_fault(stack, "dkist_redrive", 13, "write_l1_data")
    [ticket] = [t for t in tickets.all_tickets() if t.run_id == run.run_id]
    assert ticket.kind == "failure:infrastructure"
    # When the operator redrives it
    run_service(stack.settings).redrive(run.run_id)
    done = wait_for(lambda: (r := runs.get(run.run_id)).status in ("SUCCEEDED", "FAILED") and r, "the redrive", 300)
    # Then it succeeds: the tasks before the failure were not run again, and the ones after used what they left
    assert done.status == "SUCCEEDED", "\n".join(run_service(stack.settings).failure(run.run_id)["task_log"])
    redriven_at = next(h.at for h in done.history if h.detail == "redrive").isoformat()
    records = {r["task"]: r for r in datasets.get(done.dataset_id).provenance["tasks"]}
    assert records["generate_calibrated_data"]["finished_at"] < redriven_at
    assert records["write_l1_data"]["started_at"] > redriven_at
    assert datasets.get(done.dataset_id).frame_count == 14  # every L1 frame; 10 of them in the ASDF


def tags_of(stack, recipe_run: int) -> list[bytes]:
    """The keys DKIST's framework keeps in the scratch inventory for a recipe run, in any database."""
    import redis

    host, _, port = stack.settings.pipeline_services["scratch-inventory"].rpartition(":")
    return [key for db in range(16) for key in redis.Redis(host=host, port=int(port), db=db).keys(f"{recipe_run}:*")]


def test_a_retry_gives_up_the_failed_run_and_the_pipelines_own_purge_removes_its_scratch_and_tags(stack):
    from obsflow.pipelines.records import recipe_run_id

    # Given a run that failed in write_l1_data, its calibrated frames in scratch and their tags in Redis
    run = planned_with_fault(stack, "dkist_given_up", 15, "write_l1_data")
    earlier, scratch = recipe_run_id(run.run_id), Path(stack.settings.scratch_dir)
    assert (scratch / str(earlier)).is_dir() and tags_of(stack, earlier)
    # When the operator retries it (a new run) instead of redriving it
    retry = run_service(stack.settings).retry(run.run_id, {})
    done = wait_for(lambda: (r := runs.get(retry.run_id)).status in ("SUCCEEDED", "FAILED") and r, "the retry", 300)
    # Then the retry succeeds, and nothing of the given-up run is left in scratch or in Redis
    assert done.status == "SUCCEEDED", "\n".join(run_service(stack.settings).failure(done.run_id)["task_log"])
    assert not (scratch / str(earlier)).exists() and not (scratch / ".obsflow-host" / str(earlier)).exists()
    assert tags_of(stack, earlier) == []
    # And the given-up run is still shown as it ended
    assert runs.get(run.run_id).status == "FAILED"


def test_a_pipeline_run_executed_by_hand_shows_the_manual_influence_in_its_products(stack, tmp_path):
    # Given a run of the test pipeline that failed in generate_calibrated_data
    run = planned_with_fault(stack, "dkist_manual", 14, "generate_calibrated_data")
    # When an operator executes it by hand
    done = run_service(stack.settings).execute_manually(run.run_id, "checked the calibrated frames", "ana",
                                                        echo=lambda _: None)
    # Then it is catalogued, the tasks run by hand say so in obsflow's provenance and in DKIST's own L1 headers
    assert done.status == "SUCCEEDED"
    records = {r["task"]: r for r in datasets.get(done.dataset_id).provenance["tasks"]}
    assert (records["generate_calibrated_data"]["manual"], records["write_l1_data"]["operator"]) == (True, "ana")
    assert records["parse_l0_test_input_data"]["manual"] is False
    cli_run(stack, "datasets", "download", done.dataset_id, "--to", str(tmp_path))
    folder = next(tmp_path.glob(f"*/{done.dataset_id}"))
    assert fits.getheader(next(folder.glob("*_L1.fits")), 1)["MANPROCD"] is True
    # and in the provenance the pipeline itself recorded, task by task
    recorded = {p["taskName"]: p["isTaskManual"] for p in
                json.loads(next(folder.glob("*_pipeline_provenance.json")).read_text())}
    assert recorded["GenerateCalibratedData"] is True and recorded["WriteL1Data"] is True


RULES = """
- name: dkist-vbi
  description: VBI from L0 to L1 by DKIST's own pipeline, on the candidate's own darks and gains
  instrument: VBI
  task_types: [observe]
  recipe: l0-to-l1-vbi-no-speckle
  group_by: candidate
  inputs:
  - {source: observe_op, role: observe}
  - {source: calibration_ops}
"""


def test_discovery_rules_registered_as_data_choose_the_pipelines_recipe_for_an_instrument(stack, tmp_path):
    # Given rules that choose DKIST's VBI pipeline for VBI, put in force instead of the shipped ones
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    assert "1 discovery rule(s)" in cli_run(stack, "rules", "register", str(rules))
    assert "dkist-vbi" in cli_run(stack, "rules", "show") and "registered by" in cli_run(stack, "rules", "show")
    try:
        # When a VBI candidate that names no recipe becomes READY
        upload(stack, candidate("dkist_rule", None, seed=15, frames=4))
        run = finished("dkist_rule")
        # Then the rule chose the pipeline's recipe, which processed it
        assert (run.recipe, run.status) == (VBI, "SUCCEEDED")
        assert datasets.get(run.dataset_id).frame_count == 4
    finally:
        assert "shipped" in cli_run(stack, "rules", "register", "--shipped")
    assert "vbi-science" in cli_run(stack, "rules", "show")


def test_rules_that_name_a_recipe_nobody_registered_are_refused(stack, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.replace("l0-to-l1-vbi-no-speckle", "l0-to-l1-vbi-imaginary"))
    result = CliRunner().invoke(cli, ["--endpoint-url", stack.endpoint_url, "--stage", stack.settings.stage,
                                      "rules", "register", str(rules)])
    assert result.exit_code == 1 and "l0-to-l1-vbi-imaginary" in result.output
    assert "vbi-science" in cli_run(stack, "rules", "show")  # the shipped rules stay in force
