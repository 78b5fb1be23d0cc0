"""The local stack's saved state: `obsflow local serve --state-dir` stopped and killed and started again, a
run that was running when it crashed failing with one ticket that says to redrive it (instead of staying
RUNNING forever), and a stack started empty saying so."""

from __future__ import annotations

import datetime as dt
import json
import signal
import time

import boto3
import pytest
from moto.core.base_backend import BackendDict

from obsflow import tables
from obsflow.local.stack import LocalStack, free_port
from obsflow.services import run_service
from obsflow.tables import runs, tickets

from tests.e2e.test_local_serve import candidate, cli, run_cli, serve
from tests.e2e.test_runs import census, upload, wait_for

pytestmark = pytest.mark.e2e


def test_a_run_running_when_the_stack_crashed_fails_with_one_ticket_and_is_redriven_by_itself(tmp_path):
    state = tmp_path / "state"
    # Given a run that was RUNNING when the stack's last snapshot was taken, and then the stack died
    crashed = LocalStack(port=0, stage="crash", log_level="ERROR", state_dir=state, submit_interval_s=0.5).start()
    try:
        tables.bind(crashed.settings)
        run_service(crashed.settings).pause()
        upload(crashed, census("cand_crash", seed=37))
        [run] = wait_for(lambda: [r for r in runs.all_runs() if r.candidate_id == "cand_crash"], "the planned run")
        store = run_service(crashed.settings).store
        now = dt.datetime.now(dt.timezone.utc)
        assert store.transition(run.run_id, "SUBMITTED", ("READY",), now)
        assert store.transition(run.run_id, "RUNNING", ("SUBMITTED",), now, execution_arn=f"arn:{run.run_id}")
        crashed.state.save()  # the periodic snapshot
        crashed.state = None  # no clean save: it crashed
    finally:
        crashed.stop()
    BackendDict.reset()  # the process is gone, and its memory with it
    # When the stack starts again from the saved state
    with LocalStack(port=0, stage="crash", log_level="ERROR", state_dir=state) as restarted:
        tables.bind(restarted.settings)
        # Then it says the stop was not clean and what may be missing
        assert not restarted.restored.clean
        assert "did not stop cleanly" in restarted.restored.describe()
        # And the interrupted run failed, not left RUNNING, with one ticket; a failure of infrastructure is expected
        # not to persist, so obsflow redrove it by itself
        interrupted = runs.get(run.run_id)
        assert interrupted.redrives == 1 and interrupted.status != "FAILED"
        statuses = [h.status for h in interrupted.history]
        assert statuses[statuses.index("FAILED") + 1] == "READY"
        [ticket] = [t for t in tickets.all_tickets() if t.run_id == run.run_id]
        assert ticket.kind == "failure:infrastructure" and "did not survive the restart" in ticket.error_message
        assert ticket.status == "RESOLVED" and ticket.resolution.startswith("redriven by obsflow (1 of 1)")


def test_a_restarted_stack_keeps_its_state_and_after_a_crash_says_what_may_be_missing(tmp_path, small_candidate):
    state = tmp_path / "state"
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    process, log = serve(tmp_path, port, "--state-dir", str(state))
    assert f"its state is kept in {state}" in log.read_text()
    # Given a candidate processed to a dataset, a candidate of a manual recipe waiting with a ticket, and
    # submission paused
    from obsflow.simulate import simulate_candidate

    manual = simulate_candidate("cand_by_hand", n_dark=2, n_gain=1, n_observe=3, shape=(16, 16), seed=31,
                                recipe="frame-census-manual")
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    bucket = json.loads(cli(endpoint, "info", "--json"))["buckets"]["ingest"]
    for observation in (small_candidate, manual):
        for key, body in [observation.candidate_object(), *observation.frame_objects(), observation.manifest_object()]:
            s3.put_object(Bucket=bucket, Key=key, Body=body)
    deadline = time.monotonic() + 90
    while (detail := candidate(endpoint, "cand_small")).get("processing") != "SUCCEEDED" or \
            not (tickets_before := json.loads(cli(endpoint, "tickets", "list", "--json"))):
        assert time.monotonic() < deadline and detail.get("processing") != "FAILED", log.read_text()
        time.sleep(0.5)
    [run_id] = detail["run_ids"]
    assert [t["kind"] for t in tickets_before] == ["manual"]
    cli(endpoint, "pause", "--reason", "kept across the restart")
    # When the stack is stopped with Ctrl-C and started again on another port
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    process, log = serve(tmp_path, port, "--state-dir", str(state), log_name="serve-2.log")
    try:
        # Then it says it restored its state, and the candidate, its run with every task, the dataset's files,
        # the tickets and the paused submission are all there
        assert "restored the state saved when the stack stopped" in log.read_text()
        assert candidate(endpoint, "cand_small")["processing"] == "SUCCEEDED"
        run = json.loads(cli(endpoint, "runs", "show", run_id, "--json"))
        assert run["status"] == "SUCCEEDED" and {t["status"] for t in run["tasks"]} == {"succeeded"}
        assert [h["status"] for h in run["history"]] == ["READY", "SUBMITTED", "RUNNING", "SUCCEEDED"]
        download = run_cli(endpoint, "datasets", "download", run["dataset_id"], "--to", str(tmp_path / "products"))
        assert download.returncode == 0, download.stderr  # the objects, their versions and SHA-256 kept
        assert json.loads(cli(endpoint, "tickets", "list", "--json")) == tickets_before
        ssm = boto3.client("ssm", endpoint_url=endpoint, region_name="us-east-1")
        assert ssm.get_parameter(Name="/obsflow/local/submission")["Parameter"]["Value"] == "paused"
        assert candidate(endpoint, "cand_by_hand")["processing"] == "MANUAL"
        # When it is killed (no clean stop) after its periodic snapshot and started again
        time.sleep(6)
        process.kill()
        process.wait(timeout=10)
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        process, log = serve(tmp_path, port, "--state-dir", str(state), log_name="serve-3.log")
        # Then it restores the last snapshot and says what may be missing
        banner = log.read_text()
        assert "did not stop cleanly: restored the last snapshot" in banner and "upload it again" in banner
        assert candidate(endpoint, "cand_small")["processing"] == "SUCCEEDED"
    finally:
        process.kill()


def test_an_empty_stack_says_why_what_is_asked_for_is_not_there(tmp_path):
    # Given a stack started without saved state
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    process, log = serve(tmp_path, port, "--no-state")
    try:
        assert "nothing is kept after Ctrl-C" in log.read_text()
        # When a user asks for a candidate an earlier stack had
        result = run_cli(endpoint, "candidates", "show", "cand_small")
        # Then the CLI says it is not there, and that this stack started empty and how to keep state
        assert result.returncode == 1
        assert "no candidate 'cand_small'" in result.stderr
        assert "started at" in result.stderr and "empty, without saved state" in result.stderr
        assert "--state-dir" in result.stderr
    finally:
        process.kill()
