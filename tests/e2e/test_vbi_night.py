"""A small night through the processing catalogue on the local stack: master calibrations made once
and shared, science after them, a night summary after those; the products checked with the field's
own tools (the SPEC-0214 validator, astropy checksums, asdf, a PDF and an H.264 movie)."""

from __future__ import annotations

import datetime as dt
import io
import os
import json
import time
import warnings

import asdf
import av
import boto3
import numpy as np
import pypdfium2 as pdfium
import pytest
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning
from dkist_header_validator import spec214_validator

from obsflow import tables
from obsflow.local.stack import LocalStack
from obsflow.services import run_service
from obsflow.simulate import simulate_candidate
from obsflow.tables import datasets, recipe_instances, runs, tickets

pytestmark = pytest.mark.e2e
N_OBSERVE = 5
EXPECTED_RUNS = 7  # pid_2_1: 1 calibration, 2 science, 1 summary; pid_2_2: 1 calibration, 1 science, 1 summary


def science_runs() -> dict:
    return {r.candidate_id: r for r in runs.all_runs() if r.recipe == "vbi-l1"}


@pytest.fixture(scope="module")
def night():
    """Given three VBI candidates of one night uploaded to the local stack (2 darks, 2 gains, 5 observe frames of
    64x64): night_a and night_a2 of proposal pid_2_1 share one calibration set, night_b of pid_2_2 has its own."""
    os.environ["OBSFLOW_AUTO_REDRIVES"] = "0"  # a failed run waits for its operator (one is executed by hand)
    with LocalStack(port=0, stage="night", log_level="ERROR", submit_interval_s=0.5) as stack:
        tables.bind(stack.settings)
        session = boto3.Session(region_name=stack.settings.region)
        sqs, sns = session.client("sqs"), session.client("sns")
        queue_url = sqs.create_queue(QueueName="pi")["QueueUrl"]
        sns.subscribe(TopicArn=f"arn:aws:sns:us-east-1:123456789012:{stack.settings.topic_name('pi-notifications')}",
                      Protocol="sqs", Endpoint="arn:aws:sqs:us-east-1:123456789012:pi",
                      Attributes={"FilterPolicy": json.dumps({"proposal_id": ["pid_2_1"]}), "RawMessageDelivery": "true"})
        s3 = session.client("s3")
        simulated = {}
        for name, proposal, shares in (("night_a", "pid_2_1", None), ("night_a2", "pid_2_1", "night_a"),
                                       ("night_b", "pid_2_2", None)):
            simulated[name] = simulate_candidate(
                name, proposal_id=proposal, n_dark=2, n_gain=2, n_observe=N_OBSERVE, shape=(64, 64),
                seed=len(name) + ord(name[-1]), calibration_of=simulated.get(shares))
            candidate = simulated[name]
            for key, body in [candidate.candidate_object(), *candidate.frame_objects()]:
                s3.put_object(Bucket=stack.settings.ingest_bucket_name, Key=key, Body=body)
        for candidate in simulated.values():  # the transfer manifests at the end of the night
            s3.put_object(Bucket=stack.settings.ingest_bucket_name, Key=candidate.manifest_object()[0],
                          Body=candidate.manifest_object()[1])
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            done = [r for r in runs.all_runs() if r.status in ("SUCCEEDED", "FAILED")]
            if len(done) == EXPECTED_RUNS:
                break
            time.sleep(0.5)
        yield stack, s3, sqs, queue_url, science_runs()
    os.environ.pop("OBSFLOW_AUTO_REDRIVES", None)


def products(s3, dataset) -> dict[str, bytes]:
    return {f["name"]: s3.get_object(Bucket=dataset.bucket, Key=f["key"])["Body"].read() for f in dataset.files}


def test_shared_calibration_runs_once_then_the_science_of_both_candidates_then_one_night_summary(night):
    _, _, _, _, by_candidate = night
    every = runs.all_runs()
    assert not [(r.run_id, r.recipe, r.error) for r in every if r.status == "FAILED"]
    assert {c: (r.recipe, r.version, r.status) for c, r in by_candidate.items()} == {
        name: ("vbi-l1", "3.1.0", "SUCCEEDED") for name in ("night_a", "night_a2", "night_b")}
    of_proposal = [r for r in every if r.proposal_id == "pid_2_1"]
    # One calibration run for the two candidates of pid_2_1, both science runs after it, one summary after both
    [calibration] = [r for r in of_proposal if r.recipe == "vbi-calibration"]
    [summary] = [r for r in of_proposal if r.recipe == "vbi-night-summary"]
    science = [r for r in of_proposal if r.recipe == "vbi-l1"]
    assert len(science) == 2 and all(r.status == "SUCCEEDED" for r in [calibration, summary, *science])
    assert all(calibration.finished_at <= r.started_at for r in science)
    assert all(r.finished_at <= summary.started_at for r in science)
    # And every instance of the night is SUCCEEDED, grouped by its reference
    instances = recipe_instances.of_reference("2026-11-20/pid_2_1")
    assert sorted(i.recipe for i in instances) == ["vbi-calibration", "vbi-l1", "vbi-l1", "vbi-night-summary"]
    assert {i.state for i in instances} == {"SUCCEEDED"}
    # And the master calibrations are catalogued once, as calibration datasets, and consumed by both science runs
    masters = datasets.get(calibration.dataset_id)
    assert masters.kind == "calibration" and masters.prefix.startswith("calibrations/pid_2_1/")
    assert {f["name"] for f in masters.files} == {"dark_4ms.fits", "gain.fits", "bad_pixels.fits",
                                                  "calibration_quality.json"}
    # And certified by its QC gates, which the simulated frames pass
    assert masters.certification == "CERTIFIED" and all(g["passed"] for g in masters.certification_gates)
    for run in science:
        used = datasets.get(run.dataset_id).provenance["upstream_datasets"]
        assert [(u["role"], u["dataset_id"]) for u in used] == [("calibration", masters.dataset_id)]
    # And the night summary covers both science datasets of pid_2_1
    summary_files = datasets.get(summary.dataset_id)
    table = json.loads(products(night[1], summary_files)["night_summary.json"])
    assert sorted(row["dataset_id"] for row in table["datasets"]) == sorted(r.dataset_id for r in science)
    assert table["totals"]["observe_frames"] == 2 * N_OBSERVE


def stored_losslessly_with_checksums(data: bytes) -> bool:
    """The compressed table as stored: GZIP_2 (lossless for float32), CHECKSUM and DATASUM that verify."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", AstropyUserWarning)  # astropy warns on a checksum that does not verify
        with fits.open(io.BytesIO(data), checksum=True, disable_image_compression=True) as hdus:
            stored = hdus[1].header
            hdus[1].data  # noqa: B018 - reading the table verifies DATASUM
            return stored["ZCMPTYPE"] == "GZIP_2" and "CHECKSUM" in stored and "DATASUM" in stored


def test_l1_frames_pass_spec214_carry_provenance_and_verify_their_checksums(night):
    stack, s3, _, _, by_candidate = night
    dataset = datasets.get(by_candidate["night_a"].dataset_id)
    files = products(s3, dataset)
    l1 = sorted(name for name in files if name.endswith("_L1.fits"))
    assert len(l1) == N_OBSERVE == dataset.frame_count
    for name in l1:
        assert stored_losslessly_with_checksums(files[name])
        with fits.open(io.BytesIO(files[name])) as hdus:
            # DKIST's layout: an empty primary, then the image tile-compressed with the SPEC-0214 header
            assert [type(hdu).__name__ for hdu in hdus] == ["PrimaryHDU", "CompImageHDU"] and hdus[0].data is None
            header = hdus[1].header
            spec214_validator.validate(hdus, extra=False)
            for key in ("RRUNID", "RECIPEID", "RINSTID", "IDSOBSID", "IDSCALID", "IDSPARID", "WKFLNAME", "WKFLVERS",
                        "CALVERS", "CAL_URL", "HEAD_URL", "MANPROCD", "DSETID", "PRODUCT"):
                assert key in header, key
            assert (header["DSETID"], header["PRODUCT"], header["MANPROCD"]) == (dataset.dataset_id, dataset.product_id, False)
            assert header["ATMOS_R0"] == pytest.approx(0.1) and np.isnan(hdus[1].data).sum() == 3  # dead pixels
            # the processing history once each, in processing order: calibration, then Level 1
            history = list(header["HISTORY"])
            ours = [line.split(": ", 1)[1].split()[0] for line in history if line.startswith("obsflow ")]
            assert ours == ["dark", "divided", "Level"] and len(set(history)) == len(history), history
    sums = s3.get_object(Bucket=dataset.bucket, Key=dataset.prefix + "SHA256SUMS")["Body"].read().decode()
    assert len(sums.splitlines()) == len(files)


def test_the_asdf_pdf_and_movie_open_with_their_own_tools(night):
    _, s3, _, _, by_candidate = night
    files = products(s3, datasets.get(by_candidate["night_a"].dataset_id))
    asdf_name = next(name for name in files if name.endswith(".asdf"))
    with asdf.open(io.BytesIO(files[asdf_name])) as af:
        assert af["inventory"]["frame_count"] == N_OBSERVE
        stored = sum(len(body) for name, body in files.items() if name.endswith("_L1.fits"))
        assert af["inventory"]["compression_ratio"] == round(N_OBSERVE * 64 * 64 * 4 / stored, 3)
        assert len(af["headers"]["DSETID"]) == N_OBSERVE and af["configuration"]["options"]["movie_fps"] == 6
        assert len(af["input_dataset"]["frames"]) == N_OBSERVE and len(af["input_dataset"]["upstream"]) == 1
    pdf = files["quality_report.pdf"]
    with av.open(io.BytesIO(files["browse.mp4"])) as movie:
        stream = movie.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 64, 64)
        assert sum(1 for _ in movie.decode(video=0)) == N_OBSERVE
    metrics = json.loads(files["quality_metrics.json"])
    assert metrics["frame_counts"] == {"observe": N_OBSERVE} and len(metrics["frames"]) == N_OBSERVE
    # the seeing measured from the data: the simulated granulation's 10 % RMS contrast, through dark, gain and noise
    assert all(0.09 < f["granulation_rms_contrast"] < 0.11 for f in metrics["frames"])
    qc = {row["name"]: row["value"] for row in metrics["qc"]}
    assert qc["bad pixels"] == 3 and qc["observe frames"] == N_OBSERVE
    report = pdfium.PdfDocument(pdf)
    first = report[0].get_textpage().get_text_range()
    assert "Warnings (0)" in first and "granulation RMS contrast, median" in first and len(report) == 4


def test_the_pi_of_one_proposal_hears_only_about_their_science_datasets(night):
    _, _, sqs, queue_url, by_candidate = night
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    # Of the night's seven datasets: the two science datasets of pid_2_1, not its calibration or summary (each at
    # least once: a publish retried on a loaded machine may repeat one, under the same dataset id)
    assert sorted({json.loads(m["Body"])["dataset_id"] for m in messages}) == sorted(
        by_candidate[name].dataset_id for name in ("night_a", "night_a2"))


def test_reprocessing_keeps_the_product_id_and_both_versions_until_data_quality_decides(night):
    from click.testing import CliRunner

    from obsflow.cli import main as cli

    stack, _, _, _, by_candidate = night
    first = by_candidate["night_b"]
    # When the same observe frames are processed again with another movie frame rate
    again = run_service(stack.settings).retry(first.run_id, {"movie_fps": "4"})
    deadline = time.monotonic() + 180
    while (run := runs.get(again.run_id)).status not in ("SUCCEEDED", "FAILED") and time.monotonic() < deadline:
        time.sleep(0.5)
    # Then the new dataset has the same product id and a new version, and both are ACTIVE
    old, new = datasets.get(first.dataset_id), datasets.get(run.dataset_id)
    assert run.status == "SUCCEEDED" and new.dataset_id != old.dataset_id
    assert new.product_id == old.product_id and new.version_key != old.version_key
    assert (old.status, new.status) == ("ACTIVE", "ACTIVE")
    # And a review ticket asks data quality to decide
    assert tickets.get(f"TKT-{new.dataset_id}-decision").kind == "review:decision"
    # When data quality deprecates the old version from the CLI
    base = ["--endpoint-url", stack.endpoint_url, "--stage", stack.settings.stage]
    decided = CliRunner().invoke(cli, [*base, "datasets", "decide", new.dataset_id, "--deprecate", old.dataset_id,
                                       "--reason", "4 fps browse movie preferred"])
    assert decided.exit_code == 0, decided.output
    old = datasets.get(first.dataset_id)
    assert (old.status, old.superseded_by, old.decisions[0]["reason"]) == (
        "DEPRECATED", new.dataset_id, "4 fps browse movie preferred")
    assert "data-quality decisions" in CliRunner().invoke(cli, [*base, "datasets", "show", old.dataset_id]).output
    # And the night summary made from the old dataset is marked, not re-run: one ticket gives the plan
    [summary] = [i for i in recipe_instances.of_reference("2026-11-20/pid_2_2") if i.recipe == "vbi-night-summary"]
    marked = datasets.get(recipe_instances.get(summary.instance_id).dataset_id)
    assert [(s["dataset_id"], s["replaced_by"]) for s in marked.superseded_inputs] == [(old.dataset_id, new.dataset_id)]
    ticket = tickets.get(f"TKT-superseded-{old.dataset_id}")
    assert ticket.kind == "review:superseded" and len(recipe_instances.get(summary.instance_id).run_ids) == 1
    plan_id = ticket.suggested_action.split("reprocess start ")[1].split()[0]
    # When the plan is started from the CLI
    started = CliRunner().invoke(cli, [*base, "reprocess", "start", plan_id, "--name", "summary-4fps", "--reason",
                                       "the summary on the kept version"])
    assert started.exit_code == 0, started.output
    # Then a copy of the summary is made from the new science dataset
    while not (copies := [i for i in recipe_instances.of_reference("2026-11-20/pid_2_2")
                          if i.recipe == "vbi-night-summary" and i.campaign == "summary-4fps"
                          and i.state == "SUCCEEDED"]):
        assert time.monotonic() < deadline, "the summary's copy to succeed"
        time.sleep(0.5)
    remade = datasets.get(copies[0].dataset_id)
    assert [u["dataset_id"] for u in remade.provenance["upstream_datasets"]] == [new.dataset_id]


def test_an_operator_reads_datasets_and_their_provenance_with_the_cli(night):
    from click.testing import CliRunner

    from obsflow.cli import main as cli

    stack, _, _, _, by_candidate = night
    base = ["--endpoint-url", stack.endpoint_url, "--stage", stack.settings.stage]
    dataset_id = by_candidate["night_a"].dataset_id
    listed = json.loads(CliRunner().invoke(cli, [*base, "datasets", "list", "--json"]).output)
    assert dataset_id in [d["dataset_id"] for d in listed]
    shown = CliRunner().invoke(cli, [*base, "datasets", "show", dataset_id])
    assert shown.exit_code == 0 and "quality_report.pdf" in shown.output and "versions of this product" in shown.output
    provenance = json.loads(CliRunner().invoke(cli, [*base, "datasets", "provenance", dataset_id, "--json"]).output)
    assert [t["task"] for t in provenance["tasks"]][0] == "parse" and len(provenance["tasks"]) == 7
    assert len(provenance["input_frames"]) == N_OBSERVE and provenance["runs"][0]["run_id"] == by_candidate["night_a"].run_id
    assert all(t["code_version"] and t["libraries"]["numpy"] for t in provenance["tasks"])


def test_an_operator_follows_the_catalogue_with_the_cli(night):
    from click.testing import CliRunner

    from obsflow.cli import main as cli

    stack, _, _, _, by_candidate = night
    base = ["--endpoint-url", stack.endpoint_url, "--stage", stack.settings.stage]

    def run(*args):
        result = CliRunner().invoke(cli, [*base, *args])
        assert result.exit_code == 0, result.output
        return result.output

    listed = json.loads(run("catalogue", "list", "--reference", "2026-11-20/pid_2_1", "--json"))
    assert sorted(r["recipe"] for r in listed) == ["vbi-calibration@1.1.0", "vbi-l1@3.1.0", "vbi-l1@3.1.0",
                                                   "vbi-night-summary@1.0.0"]
    calibration = next(r["instance_id"] for r in listed if r["recipe"].startswith("vbi-calibration"))
    # The tree of a candidate: the shared calibration on top, both science instances below it, the summary below those
    tree = run("catalogue", "tree", "night_a2").splitlines()
    assert tree[0].startswith(f"*{calibration}  vbi-calibration@1.1.0  SUCCEEDED  [dark night_a_dark, gain night_a_gain]")
    assert sum("vbi-l1@3.1.0" in line for line in tree) == 2 and "vbi-night-summary@1.0.0" in "\n".join(tree)
    assert "(drawn above)" in tree[-1]
    shown = json.loads(run("catalogue", "show", calibration, "--json"))
    assert shown["inputs"] == {"dark": ["op:night_a_dark"], "gain": ["op:night_a_gain"]}
    assert len(shown["downstream"]) == 2 and shown["runs"][0]["measured_cpu_s"] > 0
    # Which calibration files a candidate's dataset needs
    [needed] = json.loads(run("calibrations", "for", "night_a2", "--json"))
    assert needed["instance_id"] == calibration and needed["state"] == "SUCCEEDED"
    assert {f["name"] for f in needed["files"]} == {"dark_4ms.fits", "gain.fits", "bad_pixels.fits",
                                                    "calibration_quality.json"}
    assert len(json.loads(run("calibrations", "list", "--json"))) == 2
    # Which instances use a frame, an OP, a dataset: the reverse index answers
    a_dark = json.loads(run("frames", "list", "--op", "night_a_dark", "--json"))[0]["file_id"]
    assert [r["instance_id"] for r in json.loads(run("catalogue", "list", "--uses", a_dark, "--json"))] == [calibration]
    assert [r["instance_id"] for r in json.loads(run("catalogue", "list", "--uses", "night_a_gain", "--json"))] == [calibration]
    users = json.loads(run("catalogue", "list", "--uses", shown["dataset_id"], "--json"))
    assert sorted(r["instance_id"] for r in users) == sorted(d["instance_id"] for d in shown["downstream"])

    # Provenance queries: which datasets a frame, a calibration, a recipe or a code version made, and back
    science = sorted(r.dataset_id for name, r in by_candidate.items() if name in ("night_a", "night_a2"))
    summary = next(r["dataset_id"] for r in listed if r["recipe"].startswith("vbi-night-summary"))

    def datasets_where(*filters):
        return sorted(d["dataset_id"] for d in json.loads(run("datasets", "list", *filters, "--json")))

    assert datasets_where("--uses-frame", a_dark) == sorted([shown["dataset_id"], *science, summary])
    assert datasets_where("--calibration", shown["dataset_id"]) == science
    assert datasets_where("--recipe", "vbi-l1@3.1.0", "--calibration", shown["dataset_id"]) == science
    assert datasets_where("--recipe", "vbi-calibration") == sorted(
        d["dataset_id"] for d in json.loads(run("calibrations", "list", "--json")))
    assert set(science) <= set(datasets_where("--code-version", "0.1.0", "--status", "ACTIVE"))
    used = json.loads(run("frames", "list", "--used-by", science[0], "--json"))
    assert sorted({(f["role"], f["via"] is None) for f in used}) == [("dark", False), ("gain", False), ("observe", True)]
    assert len(used) == N_OBSERVE + 4 and a_dark in {f["file_id"] for f in used}


def test_a_failing_calibration_gives_one_ticket_its_dependents_wait_saying_why_and_a_retry_lets_all_proceed(night):
    from obsflow.tables import tickets

    stack, s3, _, _, _ = night
    service = run_service(stack.settings)

    def instances(recipe: str) -> list:
        return [i for i in recipe_instances.of_reference("2026-11-23/pid_2_9") if i.recipe == recipe]

    def wait(predicate, what: str):
        deadline = time.monotonic() + 180
        while not (value := predicate()):
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.5)
        return value

    # Given two candidates of another night sharing a calibration set, whose calibration run will fail
    service.pause()
    first = simulate_candidate("late_a", proposal_id="pid_2_9", n_dark=2, n_gain=2, n_observe=3, shape=(64, 64),
                               seed=41, start=dt.datetime(2026, 11, 23, 18))
    second = simulate_candidate("late_b", proposal_id="pid_2_9", n_dark=2, n_gain=2, n_observe=3, shape=(64, 64),
                                seed=43, start=dt.datetime(2026, 11, 23, 20), calibration_of=first)
    for candidate in (first, second):
        for key, body in [candidate.candidate_object(), *candidate.frame_objects()]:
            s3.put_object(Bucket=stack.settings.ingest_bucket_name, Key=key, Body=body)
    for candidate in (first, second):
        s3.put_object(Bucket=stack.settings.ingest_bucket_name, Key=candidate.manifest_object()[0],
                      Body=candidate.manifest_object()[1])
    [calibration] = wait(lambda: [i for i in instances("vbi-calibration") if i.run_ids], "the calibration run")
    [failing] = sorted(calibration.run_ids)
    service.inject_fault(failing, "dark", "configuration")
    service.resume()
    # When it fails
    wait(lambda: runs.get(failing).status == "FAILED", "the calibration run to fail")
    # Then one ticket, and both science instances wait, naming the calibration instance and its error
    assert [t.run_id for t in tickets.all_tickets() if t.proposal_id == "pid_2_9"] == [failing]
    science = wait(lambda: [i for i in instances("vbi-l1") if "ERROR" in (i.state_reason or "")] or None, "WAITING")
    assert len(instances("vbi-l1")) == 2
    for instance in instances("vbi-l1"):
        assert instance.state == "WAITING" and calibration.instance_id in instance.state_reason, instance.state_reason
        assert not instance.run_ids
    assert science
    # When the operator retries the calibration run, everything proceeds: both science runs and the summary succeed
    service.retry(failing, {"bad_pixel_high": "1.8"})
    wait(lambda: {i.state for i in recipe_instances.of_reference("2026-11-23/pid_2_9")} == {"SUCCEEDED"}
         and len(recipe_instances.of_reference("2026-11-23/pid_2_9")) == 4, "every instance to succeed")


def test_an_experimental_calibration_serves_a_developer_campaign_and_is_kept_while_in_use(night, tmp_path):
    from click.testing import CliRunner

    from obsflow.cli import main as cli
    from obsflow.tables import campaigns

    stack, s3, _, _, by_candidate = night
    base = ["--endpoint-url", stack.endpoint_url, "--stage", stack.settings.stage]

    def run(*args):
        result = CliRunner().invoke(cli, [*base, *args])
        assert result.exit_code == 0, result.output
        return result.output

    def finished(name):
        deadline = time.monotonic() + 240
        while not (states := {recipe_instances.get(i).state for i in campaigns.get(name).instance_ids}) <= {"SUCCEEDED"}:
            assert time.monotonic() < deadline and "ERROR" not in states, states
            time.sleep(0.5)
        [made] = json.loads(run("datasets", "list", "--campaign", name, "--json"))
        return made

    science = datasets.get(by_candidate["night_b"].dataset_id)
    [production] = [u["dataset_id"] for u in science.provenance["upstream_datasets"] if u["kind"] == "calibration"]
    # When a developer remakes night_b's calibration with a stricter bad-pixel threshold
    printed = run("runs", "rerun", production, "--keep-intermediates", "--set", "bad_pixel_high=1.2")
    experimental = finished(printed.split("developer campaign ")[1].split()[0])
    assert experimental["status"] == "DEVELOPMENT" and experimental["kind"] == "calibration"
    # And runs night_b's science on it in a developer campaign, on the previous version of vbi-l1 (still registered)
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps({"datasets": [science.dataset_id]}))
    run("campaigns", "create", "dev-cal", "--type", "developer", "--recipe", "vbi-l1@3.0.0", "--ids", str(ids),
        "--calibration", experimental["dataset_id"], "--retention-days", "1", "--reason", "try the stricter mask")
    run("campaigns", "start", "dev-cal")
    made = finished("dev-cal")
    # Then the new science dataset was made on the experimental calibration, under dev/
    upstream = datasets.get(made["dataset_id"]).provenance["upstream_datasets"]
    assert [u["dataset_id"] for u in upstream if u["kind"] == "calibration"] == [experimental["dataset_id"]]
    assert made["recipe"] == "vbi-l1@3.0.0"
    assert made["prefix"].startswith("dev/dev-cal/pid_2_2/") and made["status"] == "DEVELOPMENT"
    # When the sweep runs after both retentions: the calibration is in use by dev-cal, so it is kept and the user named
    later = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30)).isoformat()
    first = run("campaigns", "sweep", "--now", later)
    assert f"refused to delete {experimental['dataset_id']}: in use by" in first and "campaign dev-cal" in first
    assert datasets.get(made["dataset_id"]).status == "EXPIRED"
    # And once dev-cal's dataset is gone, the next sweep deletes the calibration too
    assert experimental["dataset_id"] in run("campaigns", "sweep", "--now", later).split("refused")[0]
    assert datasets.get(experimental["dataset_id"]).status == "EXPIRED"


def test_a_run_executed_by_hand_says_so_in_every_l1_header_and_the_asdf_table(night):
    from types import SimpleNamespace

    stack, s3, _, _, _ = night
    service = run_service(stack.settings)
    # Given a science candidate on night_b's calibration whose run fails once in its frames task, as an outage would
    # (this stack leaves such a failure to its operator: OBSFLOW_AUTO_REDRIVES=0)
    service.pause()
    shared = SimpleNamespace(ops=[SimpleNamespace(op_id="night_b_dark"), SimpleNamespace(op_id="night_b_gain")])
    candidate = simulate_candidate("by_hand", proposal_id="pid_2_2", n_observe=3, shape=(64, 64), seed=47,
                                   start=dt.datetime(2026, 11, 24, 19), calibration_of=shared)
    for key, body in [candidate.candidate_object(), *candidate.frame_objects(), candidate.manifest_object()]:
        s3.put_object(Bucket=stack.settings.ingest_bucket_name, Key=key, Body=body)
    deadline = time.monotonic() + 120
    while not (planned := [r for r in runs.all_runs() if r.candidate_id == "by_hand"]):
        assert time.monotonic() < deadline, "no run planned for by_hand"
        time.sleep(0.25)
    [run] = planned
    service.inject_fault(run.run_id, "frames", "outage")
    service.resume()
    while runs.get(run.run_id).status != "FAILED":
        assert time.monotonic() < deadline + 120, runs.get(run.run_id).status
        time.sleep(0.25)
    # When an operator executes it by hand
    done = service.execute_manually(run.run_id, "checked the flat by eye", "ana", echo=lambda _: None)
    # Then every L1 frame says it was processed manually, and so does the ASDF table of headers
    assert done.status == "SUCCEEDED"
    files = products(s3, datasets.get(done.dataset_id))
    l1 = [body for name, body in files.items() if name.endswith("_L1.fits")]
    assert len(l1) == 3
    for body in l1:
        with fits.open(io.BytesIO(body)) as hdus:
            assert hdus[1].header["MANPROCD"] is True
    with asdf.open(io.BytesIO(next(body for name, body in files.items() if name.endswith(".asdf")))) as af:
        assert list(af["headers"]["MANPROCD"]) == [True] * 3


def obsflow(stack, *args) -> str:
    """An obsflow command against the stack, as an operator types it: its output (it must succeed)."""
    from click.testing import CliRunner

    from obsflow.cli import main as cli

    result = CliRunner().invoke(cli, ["--endpoint-url", stack.endpoint_url, "--stage", stack.settings.stage, *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_quality_report_change_re_runs_only_the_quality_tasks_and_the_stamping(night, tmp_path):
    from obsflow.runs import documents, layout
    from obsflow.tables import campaigns

    stack, s3, _, _, by_candidate = night
    first = by_candidate["night_a"]
    old = datasets.get(first.dataset_id)
    # Given night_a's dataset, and a stricter light-level tolerance for the quality report from its night on
    obsflow(stack, "recipes", "set-value", "vbi-l1", "light_level_tolerance", "0.05", "--effective-from", "2026-11-20",
        "--reason", "stricter light-level warning")
    ids = tmp_path / "night_a.json"
    ids.write_text(json.dumps([old.dataset_id]))
    # When the change is planned
    plan = json.loads(obsflow(stack, "reprocess", "plan", "--parameter", "light_level_tolerance", "--datasets", str(ids), "--json"))
    # Then night_a's copy reuses parse, the calibrated frames and the movie, and re-runs only the quality tasks and
    # the tasks that stamp the new dataset's identity (the night summary below it is made again from the copy)
    [item] = [i for i in plan["items"] if i["dataset_id"] == old.dataset_id]
    assert item["configuration_changes"] == {"light_level_tolerance": [0.2, 0.05]}
    assert item["tasks_reused"] == ["parse", "frames", "browse_movie"]
    assert item["tasks_rerun"] == ["quality_metrics", "quality_report", "stamp", "asdf_inventory"]
    assert [i["recipe_to"] for i in plan["items"]] == ["vbi-l1@3.1.0", "vbi-night-summary@1.0.0"]
    # When it is started as a campaign
    obsflow(stack, "reprocess", "start", plan["plan_id"], "--name", "light-005", "--reason", "stricter light-level warning")
    deadline = time.monotonic() + 240
    while {recipe_instances.get(i).state for i in campaigns.get("light-005").instance_ids} != {"SUCCEEDED"}:
        assert time.monotonic() < deadline, "the campaign's instances to succeed"
        time.sleep(0.5)
    [copy] = [r for r in runs.all_runs() if r.instance_id == item["copy_instance_id"]]
    # Then its task records show parse, frames (every chunk) and browse_movie reused from night_a's run
    work = stack.settings.bucket_name("work")
    records = {t: documents.get_json(s3, work, layout.task_record_key(copy.run_id, t))
               for t in ("parse", "frames", "quality_metrics", "browse_movie", "quality_report", "stamp", "asdf_inventory")}
    assert {t: r["reused_from"]["run_id"] for t, r in records.items() if "reused_from" in r} == {
        "parse": first.run_id, "frames": first.run_id, "browse_movie": first.run_id}
    assert copy.cost["tasks_reused"] == 3
    # And the new dataset is another version of the same product, its L1 frames carrying its own identity: they
    # pass SPEC-0214, their checksums verify, and their pixels are night_a's calibrated pixels
    new = datasets.get(copy.dataset_id)
    assert new.product_id == old.product_id and new.dataset_id != old.dataset_id
    made, before = products(s3, new), products(s3, old)
    l1 = sorted(name for name in made if name.endswith("_L1.fits"))
    assert len(l1) == N_OBSERVE and all(new.dataset_id in name for name in l1)
    for name, earlier in zip(l1, sorted(n for n in before if n.endswith("_L1.fits"))):
        assert stored_losslessly_with_checksums(made[name])
        with fits.open(io.BytesIO(made[name])) as hdus, fits.open(io.BytesIO(before[earlier])) as old_hdus:
            spec214_validator.validate(hdus, extra=False)
            header = hdus[1].header
            assert (header["DSETID"], header["PRODUCT"], header["FILENAME"]) == (new.dataset_id, new.product_id, name)
            assert header["RRUNID"] != old_hdus[1].header["RRUNID"]
            np.testing.assert_array_equal(hdus[1].data, old_hdus[1].data)
    with asdf.open(io.BytesIO(next(body for name, body in made.items() if name.endswith(".asdf")))) as af:
        assert list(af["headers"]["DSETID"]) == [new.dataset_id] * N_OBSERVE
    assert json.loads(made["quality_metrics.json"])["frames"] == json.loads(before["quality_metrics.json"])["frames"]
