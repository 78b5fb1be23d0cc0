"""A small night through the reference recipe vbi-l1 on the local stack, and its products checked
with the field's own tools: the SPEC-0214 validator, astropy checksums, asdf, a PDF and an H.264 movie."""

from __future__ import annotations

import io
import json
import tempfile
import time
from pathlib import Path

import asdf
import boto3
import imageio_ffmpeg
import numpy as np
import pytest
from astropy.io import fits
from dkist_header_validator import spec214_validator

from obsflow import tables
from obsflow.local.stack import LocalStack
from obsflow.services import run_service
from obsflow.simulate import simulate_candidate
from obsflow.tables import datasets, runs

pytestmark = pytest.mark.e2e
N_OBSERVE = 5


@pytest.fixture(scope="module")
def night():
    """Given two VBI candidates (2 darks, 2 gains, 5 observe frames of 64x64 each) uploaded to the local stack."""
    with LocalStack(port=0, stage="night", log_level="ERROR", submit_interval_s=0.5) as stack:
        tables.bind(stack.settings)
        session = boto3.Session(region_name=stack.settings.region)
        sqs, sns = session.client("sqs"), session.client("sns")
        queue_url = sqs.create_queue(QueueName="pi")["QueueUrl"]
        sns.subscribe(TopicArn=f"arn:aws:sns:us-east-1:123456789012:{stack.settings.topic_name('pi-notifications')}",
                      Protocol="sqs", Endpoint="arn:aws:sqs:us-east-1:123456789012:pi",
                      Attributes={"FilterPolicy": json.dumps({"proposal_id": ["pid_2_1"]}), "RawMessageDelivery": "true"})
        s3 = session.client("s3")
        for name, proposal in (("night_a", "pid_2_1"), ("night_b", "pid_2_2")):
            candidate = simulate_candidate(name, proposal_id=proposal, n_dark=2, n_gain=2, n_observe=N_OBSERVE,
                                           shape=(64, 64), seed=len(name) + ord(name[-1]))
            for key, body in [candidate.candidate_object(), *candidate.frame_objects(), candidate.manifest_object()]:
                s3.put_object(Bucket=stack.settings.ingest_bucket_name, Key=key, Body=body)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            done = [r for r in runs.all_runs() if r.status in ("SUCCEEDED", "FAILED")]
            if len(done) == 2:
                break
            time.sleep(0.5)
        yield stack, s3, sqs, queue_url, {r.candidate_id: r for r in runs.all_runs()}


def products(s3, dataset) -> dict[str, bytes]:
    return {f["name"]: s3.get_object(Bucket=dataset.bucket, Key=f["key"])["Body"].read() for f in dataset.files}


def test_both_candidates_are_processed_by_the_instrument_recipe(night):
    _, _, _, _, by_candidate = night
    assert {c: (r.recipe, r.status) for c, r in by_candidate.items()} == {
        "night_a": ("vbi-l1", "SUCCEEDED"), "night_b": ("vbi-l1", "SUCCEEDED")}


def test_l1_frames_pass_spec214_carry_provenance_and_verify_their_checksums(night):
    stack, s3, _, _, by_candidate = night
    dataset = datasets.get(by_candidate["night_a"].dataset_id)
    files = products(s3, dataset)
    l1 = sorted(name for name in files if name.endswith("_L1.fits"))
    assert len(l1) == N_OBSERVE == dataset.frame_count
    for name in l1:
        with fits.open(io.BytesIO(files[name]), checksum=True) as hdus:  # astropy raises on a bad CHECKSUM/DATASUM
            header = hdus[0].header
            assert "CHECKSUM" in header and "DATASUM" in header
            spec214_validator.validate(hdus, extra=False)
            for key in ("RRUNID", "RECIPEID", "RINSTID", "IDSOBSID", "IDSCALID", "IDSPARID", "WKFLNAME", "WKFLVERS",
                        "CALVERS", "CAL_URL", "HEAD_URL", "MANPROCD", "DSETID", "PRODUCT"):
                assert key in header, key
            assert (header["DSETID"], header["PRODUCT"], header["MANPROCD"]) == (dataset.dataset_id, dataset.product_id, False)
            assert header["ATMOS_R0"] == pytest.approx(0.1) and np.isnan(hdus[0].data).sum() == 3  # dead pixels
    sums = s3.get_object(Bucket=dataset.bucket, Key=dataset.prefix + "SHA256SUMS")["Body"].read().decode()
    assert len(sums.splitlines()) == len(files)


def test_the_asdf_pdf_and_movie_open_with_their_own_tools(night):
    _, s3, _, _, by_candidate = night
    files = products(s3, datasets.get(by_candidate["night_a"].dataset_id))
    asdf_name = next(name for name in files if name.endswith(".asdf"))
    with asdf.open(io.BytesIO(files[asdf_name])) as af:
        assert af["inventory"]["frame_count"] == N_OBSERVE
        assert len(af["headers"]["DSETID"]) == N_OBSERVE and af["configuration"]["options"]["movie_fps"] == 6
        assert len(af["input_dataset"]["frames"]) == N_OBSERVE + 4
    pdf = files["quality_report.pdf"]
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") >= 4
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "browse.mp4"
        path.write_bytes(files["browse.mp4"])
        reader = imageio_ffmpeg.read_frames(str(path))
        meta = reader.__next__()
        assert meta["codec"] == "h264" and meta["size"][0] == 64
        assert sum(1 for _ in reader) == N_OBSERVE
    metrics = json.loads(files["quality_metrics.json"])
    assert metrics["frame_counts"] == {"dark": 2, "gain": 2, "observe": N_OBSERVE} and len(metrics["frames"]) == N_OBSERVE


def test_the_pi_of_one_proposal_hears_only_about_their_dataset(night):
    _, _, sqs, queue_url, by_candidate = night
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    assert [json.loads(m["Body"])["dataset_id"] for m in messages] == [by_candidate["night_a"].dataset_id]


def test_reprocessing_keeps_the_product_id_and_deprecates_the_older_version(night):
    stack, _, _, _, by_candidate = night
    first = by_candidate["night_b"]
    # When the same observe frames are processed again with another movie frame rate
    again = run_service(stack.settings).retry(first.run_id, {"movie_fps": "4"})
    deadline = time.monotonic() + 180
    while (run := runs.get(again.run_id)).status not in ("SUCCEEDED", "FAILED") and time.monotonic() < deadline:
        time.sleep(0.5)
    # Then the new dataset has the same product id, a new version, and the old one is DEPRECATED
    old, new = datasets.get(first.dataset_id), datasets.get(run.dataset_id)
    assert run.status == "SUCCEEDED" and new.dataset_id != old.dataset_id
    assert new.product_id == old.product_id and new.version_key != old.version_key
    assert (old.status, old.superseded_by, new.status) == ("DEPRECATED", new.dataset_id, "ACTIVE")


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
    assert [t["task"] for t in provenance["tasks"]][0] == "parse" and len(provenance["tasks"]) == 9
    assert len(provenance["input_frames"]) == N_OBSERVE + 4 and provenance["runs"][0]["run_id"] == by_candidate["night_a"].run_id
    assert all(t["code_version"] and t["libraries"]["numpy"] for t in provenance["tasks"])
