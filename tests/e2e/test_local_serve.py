"""End to end: `obsflow local serve` in its own process, boto3 and the CLI as outside clients."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import boto3
import pytest

from obsflow.local.stack import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture
def served_stack(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("AWS_ENDPOINT_URL", None)
    log = open(tmp_path / "serve.log", "w+")
    process = subprocess.Popen([sys.executable, "-m", "obsflow.cli", "local", "serve", "--port", str(port)],
                               stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while "Ctrl-C stops it" not in (tmp_path / "serve.log").read_text():
        assert process.poll() is None, (tmp_path / "serve.log").read_text()
        assert time.monotonic() < deadline, "local stack did not start within 60 s"
        time.sleep(0.2)
    yield f"http://127.0.0.1:{port}", process, tmp_path / "serve.log"
    if process.poll() is None:
        process.kill()


def run_cli(endpoint: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "obsflow.cli", "--endpoint-url", endpoint, *args],
                          capture_output=True, text=True, timeout=60)


def cli(endpoint: str, *args: str) -> str:
    result = run_cli(endpoint, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def candidate(endpoint: str, candidate_id: str) -> dict:
    """The candidate as the CLI shows it; {} until its document is ingested."""
    result = run_cli(endpoint, "candidates", "show", candidate_id, "--json")
    return json.loads(result.stdout) if result.returncode == 0 else {}


def test_uploads_from_an_outside_client_are_ingested_and_processed(served_stack, small_candidate):
    endpoint, process, log = served_stack
    # Given the local stack's resource names, as `obsflow info --json` prints them
    info = json.loads(cli(endpoint, "info", "--json"))
    assert info["endpoint_url"] == endpoint
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    # When the summit uploads the candidate, the frames and the manifest with boto3
    for key, body in [small_candidate.candidate_object(), *small_candidate.frame_objects(),
                      ("notes/stray.txt", b"not for obsflow"), small_candidate.manifest_object()]:
        s3.put_object(Bucket=info["buckets"]["ingest"], Key=key, Body=body)
    # Then the candidate becomes READY and its run succeeds, as the CLI shows
    deadline = time.monotonic() + 90
    while (detail := candidate(endpoint, "cand_small")).get("processing") != "SUCCEEDED":
        assert time.monotonic() < deadline and detail.get("processing") != "FAILED", log.read_text()
        time.sleep(0.5)
    assert detail["ready_reason"] == "complete"
    assert [op["received"] for op in detail["ops"]] == [4, 2, 2]
    assert len(json.loads(cli(endpoint, "frames", "list", "--op", "cand_small_dark", "--json"))) == 2
    run = json.loads(cli(endpoint, "runs", "show", detail["run_ids"][0], "--json"))
    assert [(t["task"], t["status"]) for t in run["tasks"]] == [
        ("inventory", "succeeded"), ("dark_level", "succeeded"), ("observe_stats", "succeeded"), ("summary", "succeeded")]
    assert "SUCCEEDED" in cli(endpoint, "runs", "list")
    # And the registered recipe explains itself
    assert [r["name"] for r in json.loads(cli(endpoint, "recipes", "list", "--json"))] == [
        "frame-census", "frame-census-manual", "vbi-calibration", "vbi-l1", "vbi-night-summary"]
    shown = cli(endpoint, "recipes", "show", "frame-census")
    assert "2. dark_level | observe_stats" in shown and "saturation_level" in shown and "62000 from 2026-06-01" in shown
    ops = {op["op_id"]: (op["received"], op["expected"], op["complete"]) for op in json.loads(cli(endpoint, "ops", "list", "--json"))}
    assert ops == {op.op_id: (len(op.frames), len(op.frames), True) for op in small_candidate.ops}
    while not (quarantined := json.loads(cli(endpoint, "frames", "list", "--quarantined", "--json"))):
        assert time.monotonic() < deadline, log.read_text()  # notifications need not arrive in upload order
        time.sleep(0.5)
    assert [(q["key"], q["code"]) for q in quarantined] == [("notes/stray.txt", "unknown-prefix")]
    # And Ctrl-C stops it cleanly
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=20) == 0
    assert "stopped." in log.read_text()


def test_the_cli_says_what_to_do_when_no_stack_answers():
    result = subprocess.run([sys.executable, "-m", "obsflow.cli", "--endpoint-url", f"http://127.0.0.1:{free_port()}",
                             "ops", "list"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "obsflow local serve" in result.stderr
