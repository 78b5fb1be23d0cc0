"""Runs end to end on the in-process local stack: Step Functions on moto, Lambdas in-process,
every Batch job a subprocess of the task entrypoint. Run slots: one per resource class."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import threading
import time

from pathlib import Path

import boto3
import pytest
import yaml
from click.testing import CliRunner

from obsflow import aws, services, tables
from obsflow.cli import main as cli
from obsflow.errors import NotFound
from obsflow.local.lambda_runtime import invoke_local
from obsflow.local.stack import LocalStack
from obsflow.recipes.model import RecipeError
from obsflow.services import run_service
from obsflow.simulate import simulate_candidate
from obsflow.tables import candidates, datasets, runs, tickets
from obsflow.tables.candidates import CandidateItem
from obsflow.tables.runs import RunItem

pytestmark = pytest.mark.e2e
SHIPPED = Path(__file__).resolve().parents[2] / "shared" / "obsflow" / "recipes" / "shipped" / "recipes"


@pytest.fixture(scope="module")
def stack():
    with LocalStack(port=0, stage="e2e", log_level="ERROR", submit_interval_s=0.5,
                    capacity={"default": 1, "high-memory": 1, "multi-core": 1}) as local:
        tables.bind(local.settings)
        yield local


def client(stack, service):
    return boto3.client(service, endpoint_url=stack.endpoint_url, region_name=stack.settings.region)


def upload(stack, candidate) -> None:
    s3 = client(stack, "s3")
    for key, body in [candidate.candidate_object(), *candidate.frame_objects(), candidate.manifest_object()]:
        s3.put_object(Bucket=stack.settings.ingest_bucket_name, Key=key, Body=body)


def wait_for(predicate, what: str, timeout_s: float = 180):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.25)
    state = [(r.candidate_id, r.run_id, r.status, r.waiting_reason, (r.error or {}).get("Cause", "")[-600:])
             for r in runs.all_runs()]
    raise AssertionError(f"timed out waiting for {what}; runs: {state}")


def obsflow(stack, *args) -> str:
    result = CliRunner().invoke(cli, ["--endpoint-url", stack.endpoint_url, "--stage", stack.settings.stage, *args])
    assert result.exit_code == 0, result.output
    return result.output


def input_dataset(stack, run: RunItem) -> dict:
    return json.loads(client(stack, "s3").get_object(Bucket=stack.settings.bucket_name("work"),
                                                     Key=run.input_dataset_key)["Body"].read())


def frame_ids(stack, run: RunItem) -> list[str]:
    return [f["file_id"] for f in input_dataset(stack, run)["frames"]]


def runs_of(candidate_id: str) -> list[RunItem]:
    return [r for r in runs.all_runs() if r.candidate_id == candidate_id]


def finished_run(candidate_id: str) -> RunItem:
    return wait_for(lambda: next((r for r in runs_of(candidate_id) if r.status in ("SUCCEEDED", "FAILED")), None),
                    f"a finished run of {candidate_id}")


def census(candidate_id: str, seed: int, priority: int | None = None):
    return simulate_candidate(candidate_id, n_dark=2, n_gain=1, n_observe=3, shape=(16, 16), seed=seed,
                              recipe="frame-census", priority=priority)


def test_a_ready_candidate_runs_every_task_once_as_a_subprocess_in_dag_order(stack):
    # Given the frames, manifest and candidate of a frame-census candidate
    upload(stack, census("cand_dag", seed=3))
    # When it becomes READY, the submitter plans and starts its run
    run = finished_run("cand_dag")
    # Then the run succeeded and its dataset is catalogued
    assert run.status == "SUCCEEDED", run.error
    dataset = datasets.get(run.dataset_id)
    assert [f["name"] for f in dataset.files] == ["census.json"]
    s3 = client(stack, "s3")
    assert s3.get_object(Bucket=dataset.bucket, Key=dataset.prefix + "census.json")["Body"].read()
    # And each task ran exactly once, as its own process, after all its upstreams finished
    batch = client(stack, "batch")
    names = [job["jobName"] for rc in ("default", "multi-core")
             for job in batch.list_jobs(jobQueue=stack.settings.job_queue_name(rc), jobStatus="SUCCEEDED")["jobSummaryList"]
             if job["jobName"].startswith(run.run_id)]
    assert sorted(names) == sorted(f"{run.run_id}-{task}" for task in ("inventory", "dark_level", "observe_stats", "summary"))
    records = {record["task"]: record for record in dataset.provenance["tasks"]}
    assert len({record["pid"] for record in records.values()} | {os.getpid()}) == 5
    for task, upstreams in {"dark_level": ["inventory"], "observe_stats": ["inventory"],
                            "summary": ["dark_level", "observe_stats"]}.items():
        assert all(records[task]["started_at"] >= records[u]["finished_at"] for u in upstreams)
    # And the execution history is readable through the Step Functions API
    events = client(stack, "stepfunctions").get_execution_history(executionArn=run.execution_arn)["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if e["type"] == "TaskStateEntered"]
    assert entered[0] == "StartRun" and entered[-1] == "FinishRun" and "NotifyPI" in entered
    assert [h.status for h in run.history] == ["READY", "SUBMITTED", "RUNNING", "SUCCEEDED"]


def test_a_run_records_everything_it_used_priced_and_the_cli_itemises_and_sums_it(stack):
    # Given a frame-census candidate processed on the local stack
    upload(stack, census("cand_cost", seed=17))
    run = finished_run("cand_cost")
    assert run.status == "SUCCEEDED", run.error
    cost = run.cost
    # Then its cost counts its four Fargate jobs, each billed a minute at least from its image pull (1 + 1 + 4 + 1
    # vCPUs), and the seconds the jobs themselves ran
    assert cost["batch_jobs"] == 4 and cost["batch_vcpu_s"] >= 7 * 60 and cost["batch_gib_s"] >= 4 * 4 * 60
    assert cost["batch_pull_s"] == 4 * stack.settings.modelled_pull_s and cost["batch_task_vcpu_s"] > 0
    # And its Lambda requests and GB-seconds: StartRun, Catalog, FinishRun and its share of the submitter's passes
    assert cost["lambda_invocations"] > 3 and cost["lambda_gb_s"] > 0
    # And the DynamoDB units, S3 requests and bytes its handlers and jobs asked for, the PI's notification and the
    # transitions of its execution; a run sends nothing to SQS (ingest does: `obsflow capacity` counts it per frame)
    for name in ("dynamodb_requests", "dynamodb_read_units", "dynamodb_write_units", "s3_put_requests",
                 "s3_get_requests", "s3_list_requests", "s3_bytes_written"):
        assert cost[name] > 0, name
    assert cost["jobs_requests"]["s3_get_requests"] > 0 and cost["sns_requests"] == 1 and cost["sqs_requests"] == 0
    assert cost["state_transitions"] == 13 and cost["frames"] == 6 and cost["output_bytes"] > 0
    # And each is priced from the price table, which says where and when its prices are
    for service in ("batch", "lambda", "step_functions", "dynamodb", "s3_requests"):
        assert cost["usd_by_service"][service] > 0, service
    assert cost["usd"] == pytest.approx(sum(cost["usd_by_service"].values()), abs=1e-5)
    assert cost["prices"] == stack.settings.prices.source
    # And its dataset shows the same cost; `runs show` and `datasets show` itemise it
    assert datasets.get(run.dataset_id).cost == cost
    shown = obsflow(stack, "runs", "show", run.run_id)
    assert "4 Fargate job(s)" in shown and "GB-s" in shown and "write request units" in shown
    assert "AWS list prices, us-east-1" in shown
    assert "4 Fargate job(s)" in obsflow(stack, "datasets", "show", run.dataset_id)
    # And costs are summed by proposal and by day, with the outputs' storage a month
    [mine] = [row for row in json.loads(obsflow(stack, "costs", "--by", "proposal", "--json"))
              if row["proposal"] == run.proposal_id]
    assert mine["runs"] >= 1 and mine["usd"] >= cost["usd"] and mine["output_bytes"] >= cost["output_bytes"]
    assert "STORAGE_A_MONTH" in obsflow(stack, "costs", "--by", "day", "--since", f"{run.finished_at:%Y-%m-%d}")
    # And `obsflow capacity` takes frame-census's figures from the runs recorded on the stage
    day = json.loads(obsflow(stack, "capacity", "--frames-per-day", "1000", "--mix", "frame-census=1", "--json"))
    assert day["figures"]["frame-census"].startswith("measured: the runs of frame-census on this stage")
    assert day["recipes"]["frame-census"]["jobs_per_run"] == 4 and day["usd_per_day"] > 0


def test_waiting_runs_start_in_priority_order_within_one_slot_and_a_reprioritized_one_goes_first(stack):
    # Given submission is paused and three candidates become READY with priorities 1, 9 and 5
    run_service(stack.settings).pause()
    for name, priority in (("cand_low", 1), ("cand_high", 9), ("cand_mid", 5)):
        upload(stack, census(name, seed=priority, priority=priority))
    wait_for(lambda: len(runs.with_status("READY")) == 3, "three READY runs")
    assert [r.candidate_id for r in runs.with_status("READY")] == ["cand_high", "cand_mid", "cand_low"]
    # When an operator moves the lowest ahead of the others
    [low] = runs_of("cand_low")
    said = obsflow(stack, "runs", "prioritize", low.run_id, "20", "--reason", "the PI's deadline is tomorrow")
    assert "READY at priority 20" in said
    # Then the queue's order follows, and the run's history says who and why
    assert [r.candidate_id for r in runs.with_status("READY")] == ["cand_low", "cand_high", "cand_mid"]
    assert "priority 1 -> 20" in runs.get(low.run_id).history[-1].detail
    # When submission resumes
    run_service(stack.settings).resume()
    # Then the runs beyond the one slot wait, saying why
    def listed_reasons():
        return [row["waiting_reason"] for row in json.loads(obsflow(stack, "runs", "list", "--status", "READY", "--json"))
                if row["waiting_reason"]]

    waiting = wait_for(listed_reasons, "a waiting reason")
    assert waiting[0].startswith("waiting for a run slot: ") and "1/1 in use" in waiting[0]
    finished = [finished_run(name) for name in ("cand_low", "cand_high", "cand_mid")]
    # Then they ran one at a time, highest priority first, and all succeeded
    assert [r.status for r in finished] == ["SUCCEEDED"] * 3
    for earlier, later in zip(finished, finished[1:]):
        assert earlier.finished_at <= later.started_at
    assert not runs.with_status("READY")


def test_a_duplicated_readiness_signal_gives_one_run(stack):
    # Given a candidate whose run has been planned, while submission is paused
    run_service(stack.settings).pause()
    upload(stack, census("cand_twice", seed=11))
    first = wait_for(lambda: runs_of("cand_twice"), "the first run")
    # When readiness is signalled again and two submitters plan it at the same moment
    CandidateItem("cand_twice").update(actions=[CandidateItem.status.set("READY")])
    signals = [threading.Thread(target=invoke_local, args=(stack.settings.function_name("submitter"), {})) for _ in range(2)]
    for signal in signals:
        signal.start()
    for signal in signals:
        signal.join()
    service = run_service(stack.settings)
    inserted = [service.discover(service.store.candidate("cand_twice")) for _ in range(2)]
    [instance] = [service.store.instance(first[0].instance_id)]
    replanned = service.plan_instance(instance)
    # Then there is still exactly one instance and one run, and one execution once it starts
    assert inserted == [[], []] and replanned is None
    assert [r.run_id for r in runs_of("cand_twice")] == [first[0].run_id]
    run_service(stack.settings).resume()
    assert finished_run("cand_twice").status == "SUCCEEDED"
    machine = aws.state_machine_arn(stack.settings, "frame-census", "1.0.0")
    executions = client(stack, "stepfunctions").list_executions(stateMachineArn=machine)["executions"]
    assert [e["name"] for e in executions].count(first[0].run_id) == 1


def planned_run_with_fault(stack, candidate_id: str, seed: int, task: str, kind: str) -> RunItem:
    """A frame-census run, planned while submission is paused, with a fault injected into ``task``."""
    service = run_service(stack.settings)
    service.pause()
    upload(stack, census(candidate_id, seed=seed))
    run = wait_for(lambda: runs_of(candidate_id), "the run")[0]
    service.inject_fault(run.run_id, task, kind)
    service.resume()
    return run


def test_a_failing_task_fails_the_run_and_opens_one_ticket(stack, capfd):
    # Given a run with a configuration fault injected into its dark_level task
    run = planned_run_with_fault(stack, "cand_fail", 13, "dark_level", "configuration")
    # When it runs
    failed = finished_run("cand_fail")
    # Then the run is FAILED with the error, its slots are free, and one ticket says what to do
    assert failed.status == "FAILED" and failed.error["Error"] == "States.TaskFailed"
    [ticket] = [t for t in tickets.all_tickets() if t.run_id == run.run_id]
    assert (ticket.failed_task, ticket.exit_code, ticket.kind) == ("dark_level", 2, "failure:configuration")
    assert "configuration fault is injected" in ticket.log_excerpt
    assert f"obsflow runs retry {run.run_id}" in ticket.suggested_action
    # And a re-delivered failure opens no second ticket
    again = invoke_local(stack.settings.function_name("open-ticket"),
                         {"run_id": run.run_id, "error": {"Error": "States.TaskFailed", "Cause": "{}"}})
    assert again == ({"ticket_id": ticket.ticket_id, "created": False}, False)
    # And `runs show` gives the task's own message and what to do, and no task of the ended run is left running
    base = ["--endpoint-url", stack.endpoint_url, "--stage", stack.settings.stage]
    shown = CliRunner().invoke(cli, [*base, "runs", "show", run.run_id])
    assert shown.exit_code == 0, shown.output
    assert "configuration fault is injected" in shown.output and f"runs retry {run.run_id}" in shown.output
    assert "AWS_BATCH_JOB_ID" not in shown.output
    detail = json.loads(CliRunner().invoke(cli, [*base, "runs", "show", run.run_id, "--json"]).output)
    assert detail["failure"]["failed_task"] == "dark_level"
    assert {t["task"]: t["status"] for t in detail["tasks"]}["dark_level"] == "failed"
    assert "running" not in {t["status"] for t in detail["tasks"]}
    # And a redrive, which would run the same configuration again, is refused with the command that helps
    redrive = CliRunner().invoke(cli, [*base, "runs", "redrive", run.run_id])
    assert redrive.exit_code == 1 and f"obsflow runs retry {run.run_id} --set" in redrive.output
    # And the interpreter's dump of the failed execution and the metrics went to their files, not the terminal
    assert "Exception=FailureEventException" in stack.moto_log.read_text()
    assert '"CloudWatchMetrics"' in stack.metrics_file.read_text()
    printed = capfd.readouterr()
    assert "FailureEventException" not in printed.out + printed.err and '"_aws"' not in printed.out


def test_an_operator_cancels_a_stuck_run_its_job_is_stopped_and_nothing_of_it_is_catalogued(stack):
    # Given a run whose inventory task hangs (as a stuck task would), running
    run = planned_run_with_fault(stack, "cand_stuck", 21, "inventory", "hang")
    wait_for(lambda: runs.get(run.run_id).status == "RUNNING" and runs.get(run.run_id), "the run to be RUNNING")
    batch = client(stack, "batch")
    queue = stack.settings.job_queue_name("default")

    def inventory_job():
        listed = batch.list_jobs(jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [f"{run.run_id}-inventory"]}])
        return next(iter(listed["jobSummaryList"]), None)

    wait_for(lambda: (job := inventory_job()) and job["status"] not in ("SUCCEEDED", "FAILED"), "its inventory job")
    time.sleep(1)  # its task process started (it hangs for ten minutes)
    # When the operator cancels it with the CLI
    base = ["--endpoint-url", stack.endpoint_url, "--stage", stack.settings.stage]
    said = CliRunner().invoke(cli, [*base, "runs", "cancel", run.run_id, "--reason", "stuck in inventory"])
    assert said.exit_code == 0, said.output
    # Then the run is CANCELLED with who and why, its execution stopped and its job terminated long before its hang ends
    cancelled = runs.get(run.run_id)
    assert cancelled.status == "CANCELLED" and "stuck in inventory" in cancelled.waiting_reason
    execution = client(stack, "stepfunctions").describe_execution(executionArn=cancelled.execution_arn)
    assert execution["status"] == "ABORTED"
    wait_for(lambda: inventory_job()["status"] == "FAILED", "the job to be terminated", 30)
    # And no ticket, no dataset; its slot is free for the next run
    time.sleep(1.5)
    assert not [t for t in tickets.all_tickets() if t.run_id == run.run_id]
    assert runs.get(run.run_id).dataset_id is None
    upload(stack, census("cand_after_stuck", seed=22))
    assert finished_run("cand_after_stuck").status == "SUCCEEDED"


def test_a_frame_marked_bad_is_left_out_then_unmarked_used_again_and_the_datasets_made_from_it_are_planned(
        stack, tmp_path):
    # Given a candidate's frames received while submission is paused, one of its observe frames found bad before
    # its manifest completed it (a paused submitter still plans a READY candidate, and a plan keeps its frames)
    service = run_service(stack.settings)
    service.pause()
    candidate = census("cand_bad_frame", seed=23)
    s3 = client(stack, "s3")
    for key, body in [candidate.candidate_object(), *candidate.frame_objects()]:
        s3.put_object(Bucket=stack.settings.ingest_bucket_name, Key=key, Body=body)
    observe = [op.op_id for op in candidate.ops if op.op_id.endswith("observe")]
    frames = wait_for(lambda: len(found := service.store.frames_of_ops(observe)) == 3 and found, "the observe frames")
    bad = sorted(f.file_id for f in frames)[0]
    assert "1 frame(s) marked bad" in obsflow(stack, "frames", "mark-bad", bad, "--reason", "satellite trail")
    s3.put_object(Bucket=stack.settings.ingest_bucket_name, Key=candidate.manifest_object()[0],
                  Body=candidate.manifest_object()[1])
    # When it is processed
    service.resume()
    run = finished_run("cand_bad_frame")
    # Then its input dataset left the frame out, saying so, and `frames list --bad` says who marked it and why
    assert run.status == "SUCCEEDED"
    assert bad not in frame_ids(stack, run) and input_dataset(stack, run)["bad_frames_left_out"] == [bad]
    listed = json.loads(obsflow(stack, "frames", "list", "--bad", "--json"))
    assert [(row["target_id"], row["reason"]) for row in listed] == [(bad, "satellite trail")]
    # When the mark is taken back and the dataset that left the frame out is reprocessed
    assert "1 frame(s) unmarked" in obsflow(stack, "frames", "unmark-bad", bad, "--reason", "trail was a reflection")
    listed = tmp_path / "datasets.json"
    listed.write_text(json.dumps([run.dataset_id]))
    plan = json.loads(obsflow(stack, "reprocess", "plan", "--datasets", str(listed), "--json"))
    obsflow(stack, "reprocess", "start", plan["plan_id"], "--name", "with-the-frame", "--reason", "frame is good")
    copy = wait_for(lambda: next((r for r in runs_of("cand_bad_frame") if r.campaign == "with-the-frame"
                                  and r.status in ("SUCCEEDED", "FAILED")), None), "the reprocessed run")
    # Then the copy uses the frame again, and the mark stays on record, taken back by whom and why
    assert copy.status == "SUCCEEDED" and bad in frame_ids(stack, copy)
    assert "bad_frames_left_out" not in input_dataset(stack, copy)
    history = json.loads(obsflow(stack, "frames", "list", "--bad", "--history", "--json"))
    assert [(r["target_id"], r["withdrawn_by"], r["withdrawn_reason"]) for r in history] == [
        (bad, getpass.getuser(), "trail was a reflection")]
    assert json.loads(obsflow(stack, "frames", "list", "--bad", "--json")) == []
    # When it is marked bad again, Then a plan for bad frames names the dataset made from it, not the one without it
    obsflow(stack, "frames", "mark-bad", bad, "--reason", "a trail after all")
    plan = json.loads(obsflow(stack, "reprocess", "plan", "--bad-frames", "--json"))
    assert [(i["dataset_id"], i["bad_frames"]) for i in plan["items"]] == [(copy.dataset_id, [bad])]
    # When the review that decided it is attached to the campaign, Then the campaign shows it
    review = tmp_path / "frame-review.txt"
    review.write_text("the trail is on frames 1-3 of the observe OP\n")
    assert "kept frame-review.txt (version 1" in obsflow(stack, "campaigns", "attach", "with-the-frame", str(review),
                                                         "--note", "data quality review")
    [document] = json.loads(obsflow(stack, "campaigns", "show", "with-the-frame", "--json"))["documents"]
    assert (document["name"], document["note"], document["size"]) == ("frame-review.txt", "data quality review",
                                                                      review.stat().st_size)
    assert "frame-review.txt" in obsflow(stack, "campaigns", "show", "with-the-frame")


def test_failure_then_retry_with_the_fix_succeeds_as_a_linked_run(stack):
    # Given a run that failed because of its configuration
    failed = planned_run_with_fault(stack, "cand_retry", 17, "summary", "configuration")
    assert finished_run("cand_retry").status == "FAILED"
    # When the operator retries it with a parameter adjusted, twice (a double click)
    retried = run_service(stack.settings).retry(failed.run_id, {"saturation_level": "61000"})
    again = run_service(stack.settings).retry(failed.run_id, {"saturation_level": "61000"})
    # Then one new run, linked to the failed one, succeeds with the adjusted configuration
    assert again.run_id == retried.run_id and retried.retry_of == failed.run_id
    done = wait_for(lambda: (r := runs.get(retried.run_id)).status in ("SUCCEEDED", "FAILED") and r, "the retry")
    assert done.status == "SUCCEEDED" and done.configuration["parameters"]["saturation_level"] == 61000
    assert sorted(r.run_id for r in runs_of("cand_retry")) == sorted([failed.run_id, retried.run_id])
    # And a value outside the recipe's valid values is refused
    with pytest.raises(RecipeError, match="is above the maximum"):
        run_service(stack.settings).retry(failed.run_id, {"saturation_level": "70000"})


def test_an_outage_is_redriven_by_obsflow_itself_without_rerunning_completed_tasks(stack):
    # Given a run whose summary task fails once, as an outage would make it (a failure of infrastructure)
    run = planned_run_with_fault(stack, "cand_redrive", 19, "summary", "outage")
    # When it fails, Then obsflow redrives it by itself (settings.auto_redrives) and it succeeds
    done = wait_for(lambda: (r := runs.get(run.run_id)).status == "SUCCEEDED" and r, "the redriven run")
    # And its one ticket says what happened, resolved by obsflow; its instance was never ERROR
    [ticket] = [t for t in tickets.all_tickets() if t.run_id == run.run_id]
    assert ticket.kind == "failure:infrastructure" and ticket.status == "RESOLVED"
    assert (ticket.resolved_by, ticket.resolution) == ("obsflow", "redriven by obsflow (1 of 1): a failure of "
                                                                  "infrastructure")
    # And the tasks upstream of the failure kept their first outputs and records; the failed task ran again
    redriven_at = next(h.at for h in done.history if h.detail == "redrive").isoformat()
    records = {r["task"]: r for r in datasets.get(done.dataset_id).provenance["tasks"]}
    for task in ("inventory", "dark_level", "observe_stats"):
        assert records[task]["finished_at"] < redriven_at, task
    assert records["summary"]["started_at"] > redriven_at
    assert [h.status for h in done.history] == ["READY", "SUBMITTED", "RUNNING", "FAILED", "READY", "SUBMITTED",
                                                "RUNNING", "SUCCEEDED"]
    assert done.execution_arn.endswith(f"{run.run_id}-redrive-1")


def test_the_backstop_releases_an_incomplete_candidate_after_13_days_with_a_review_ticket(stack):
    # Given a candidate whose frames arrived but whose manifest never did
    candidate = census("cand_late", seed=23)
    s3 = client(stack, "s3")
    for key, body in [candidate.candidate_object(), *candidate.frame_objects()]:
        s3.put_object(Bucket=stack.settings.ingest_bucket_name, Key=key, Body=body)
    def counted() -> int:
        try:
            return sum(op["received"] for op in services.queries(stack.settings).candidate_detail("cand_late")["ops"])
        except NotFound:  # its document is not ingested yet
            return 0

    wait_for(lambda: counted() == 6, "the frames to be counted")
    now = dt.datetime.now(dt.timezone.utc)
    # When the backstop runs today, and then as of 14 days later
    today = run_service(stack.settings).backstop(now)
    later = run_service(stack.settings).backstop(now + dt.timedelta(days=14))
    again = run_service(stack.settings).backstop(now + dt.timedelta(days=14))
    # Then only the later check releases it, once, with what was missing, and one ticket asks for a review
    assert "cand_late" not in today.released and "cand_late" in later.released and "cand_late" not in again.released
    released = candidates.get("cand_late")
    assert released.ready_reason == "backstop"
    assert released.ready_detail["missing"]["cand_late_dark"] == "2 frame(s) received, no manifest yet"
    [ticket] = [t for t in tickets.all_tickets() if t.candidate_id == "cand_late"]
    assert ticket.kind == "backstop" and "no manifest yet" in ticket.summary
    # And the candidate is processed like any other
    assert finished_run("cand_late").status == "SUCCEEDED"


def test_a_manual_recipe_opens_a_ticket_and_an_operator_runs_it_by_hand(stack):
    # Given a candidate for a recipe that is manual by definition
    upload(stack, simulate_candidate("cand_manual", n_dark=2, n_gain=1, n_observe=3, shape=(16, 16), seed=29,
                                     recipe="frame-census-manual"))
    # When it becomes READY, no execution starts: the run waits for an operator, with a ticket
    run = wait_for(lambda: next((r for r in runs_of("cand_manual") if r.status == "MANUAL"), None), "a MANUAL run")
    [ticket] = [t for t in tickets.all_tickets() if t.run_id == run.run_id]
    assert ticket.kind == "manual" and f"obsflow runs execute {run.run_id} --manual" in ticket.suggested_action
    assert run.execution_arn is None
    # When the operator executes it by hand
    done = run_service(stack.settings).execute_manually(run.run_id, "flat field checked by eye", "ana",
                                                 echo=lambda _: None)
    # Then it is catalogued like an automated run, with the manual influence in every task's provenance
    assert done.status == "SUCCEEDED"
    records = datasets.get(done.dataset_id).provenance["tasks"]
    assert {(r["manual"], r["operator"], r["note"]) for r in records} == {(True, "ana", "flat field checked by eye")}


def test_an_operator_lists_and_resolves_tickets_with_the_cli(stack):
    from click.testing import CliRunner


    # Given the open tickets of the earlier failures
    base = ["--endpoint-url", stack.endpoint_url, "--stage", stack.settings.stage]
    listed = CliRunner().invoke(cli, [*base, "tickets", "list", "--status", "OPEN", "--json"])
    open_ids = [t["ticket_id"] for t in json.loads(listed.output)]
    assert listed.exit_code == 0 and open_ids
    # When one is resolved with a note
    resolved = CliRunner().invoke(cli, [*base, "tickets", "resolve", open_ids[0], "--note", "retried with the fix"])
    # Then it is RESOLVED with the note and who did it, and unknown tickets are refused clearly
    assert resolved.exit_code == 0, resolved.output
    ticket = tickets.get(open_ids[0])
    assert (ticket.status, ticket.resolution) == ("RESOLVED", "retried with the fix") and ticket.resolved_by
    missing = CliRunner().invoke(cli, [*base, "tickets", "resolve", "TKT-nope", "--note", "x"])
    assert missing.exit_code == 1 and "no ticket 'TKT-nope'" in missing.output


def test_a_recipe_version_registered_from_a_file_runs_without_restarting_anything(stack, tmp_path):
    from click.testing import CliRunner


    # Given frame-census 1.1.0 as a file: the same tasks, summary now also after inventory directly
    definition = yaml.safe_load((SHIPPED / "frame-census-1.0.0.yaml").read_text())
    definition["version"] = "1.1.0"
    definition["tasks"][-1]["upstreams"] = ["inventory", "dark_level", "observe_stats"]
    path = tmp_path / "frame-census-1.1.0.yaml"
    path.write_text(yaml.safe_dump(definition))
    base = ["--endpoint-url", stack.endpoint_url, "--stage", stack.settings.stage]
    # When an operator registers it on the running stack, twice
    first = CliRunner().invoke(cli, [*base, "recipes", "register", str(path)])
    again = CliRunner().invoke(cli, [*base, "recipes", "register", str(path)])
    # Then it is registered once, with its state machine, and the second call changes nothing
    assert first.exit_code == 0 and "frame-census@1.1.0 registered; state machine" in first.output, first.output
    assert again.exit_code == 0 and "already registered (same definition)" in again.output
    # And a changed definition under the same version is refused
    definition["description"] = "changed in place"
    path.write_text(yaml.safe_dump(definition))
    refused = CliRunner().invoke(cli, [*base, "recipes", "register", str(path)])
    assert refused.exit_code == 1 and "a version is never overwritten" in refused.output
    # And a task entrypoint the task image does not have is refused before anything is recorded
    definition["version"], definition["tasks"][0]["entrypoint"] = "1.2.0", "obsflow_tasks.census:NoSuchTask"
    path.write_text(yaml.safe_dump(definition))
    unknown = CliRunner().invoke(cli, [*base, "recipes", "register", str(path)])
    assert unknown.exit_code == 1 and "obsflow_tasks.census:NoSuchTask" in unknown.output
    # And the next candidate naming frame-census runs the new version on its new state machine
    upload(stack, census("cand_v110", seed=31))
    run = finished_run("cand_v110")
    assert (run.version, run.status) == ("1.1.0", "SUCCEEDED")
    assert stack.settings.state_machine_name("frame-census", "1.1.0") in run.execution_arn


def test_a_value_set_as_data_is_used_for_later_observations_and_not_earlier_ones(stack):
    from click.testing import CliRunner


    base = ["--endpoint-url", stack.endpoint_url, "--stage", stack.settings.stage]
    # Given saturation_level set to 61234 for observations from 2026-11-21 on
    set_value = CliRunner().invoke(cli, [*base, "recipes", "set-value", "frame-census", "saturation_level", "61234",
                                         "--effective-from", "2026-11-21", "--reason", "new camera gain table"])
    assert set_value.exit_code == 0, set_value.output
    refused = CliRunner().invoke(cli, [*base, "recipes", "set-value", "frame-census", "saturation_level", "99999",
                                       "--effective-from", "2026-11-21"])
    assert refused.exit_code == 1 and "above the maximum" in refused.output
    shown = CliRunner().invoke(cli, [*base, "recipes", "show", "frame-census"]).output
    assert "61234" in shown and "new camera gain table" in shown
    # When candidates observed on 2026-11-20 and on 2026-11-22 are processed
    for name, day in (("cand_before", 20), ("cand_after", 22)):
        upload(stack, simulate_candidate(name, n_dark=2, n_gain=1, n_observe=3, shape=(16, 16), seed=day,
                                         recipe="frame-census", start=dt.datetime(2026, 11, day, 18)))
    before, after = finished_run("cand_before"), finished_run("cand_after")
    # Then only the later observation's run uses the new value
    assert before.configuration["parameters"]["saturation_level"] == 62000
    assert after.configuration["parameters"]["saturation_level"] == 61234


def test_a_candidate_naming_another_proposal_than_its_frames_is_held_and_nothing_reaches_either_pi(stack):
    # Given a candidate whose document names pid_9_99 while its frames' ID___013 is pid_1_23
    observation = census("cand_wrong_pid", seed=41)
    observation.candidate["proposal_id"] = "pid_9_99"
    upload(stack, observation)
    # When it becomes READY and the submitter looks at it
    held = wait_for(lambda: (c := candidates.get("cand_wrong_pid")) is not None and c.status == "HELD" and c,
                    "the candidate held")
    # Then it is held saying whose frames they are, with one review ticket, and no run, dataset or notification
    assert "belong to pid_1_23" in held.held_reason
    [ticket] = [t for t in tickets.all_tickets() if t.candidate_id == "cand_wrong_pid"]
    assert ticket.kind == "review:proposal"
    assert not runs_of("cand_wrong_pid")


def test_an_operator_reads_each_conflict_in_the_history_of_its_op_and_candidate(stack):
    base = ["--endpoint-url", stack.endpoint_url, "--stage", stack.settings.stage]
    # Given a candidate processed, then its manifest revised with another count and the candidate re-uploaded
    # with another observe OP
    candidate = census("cand_conflicts", seed=37)
    upload(stack, candidate)
    finished_run("cand_conflicts")
    observe = candidate.ops[-1].op_id
    s3 = client(stack, "s3")
    revised = {"manifest_id": "cand_conflicts_revised", "observing_programs": [{"op_id": observe, "expected_frames": 5}]}
    s3.put_object(Bucket=stack.settings.ingest_bucket_name, Key="manifests/cand_conflicts_revised.json",
                  Body=json.dumps(revised).encode())
    changed = {**candidate.candidate, "observe_op": "cand_conflicts_other"}
    s3.put_object(Bucket=stack.settings.ingest_bucket_name, Key=candidate.candidate_object()[0],
                  Body=json.dumps(changed).encode())
    # When the operator shows the OP and the candidate
    def show(*args):
        result = CliRunner().invoke(cli, [*base, *args])
        assert result.exit_code == 0, result.output
        return result.output

    def shown_with(kind, *args):
        return wait_for(lambda: out if kind in (out := show(*args)) else None, f"the {kind} event")

    op = shown_with("expected-changed", "ops", "show", observe)
    shown = shown_with("document-conflict", "candidates", "show", "cand_conflicts")
    # Then each conflict is there with what happened and what to do
    assert "changed the expected frames from 3 to 5" in op and "expected        5" in op
    assert "another observe_op" in shown or "came again with another observe_op" in shown
    assert "expected-changed" in shown and "obsflow reprocess plan" in shown
    detail = json.loads(show("candidates", "show", "cand_conflicts", "--json"))
    assert sorted(e["kind"] for e in detail["events"]) == ["document-conflict", "expected-changed"]
    assert detail["observe_op"] == observe  # the first version stays the one processed
    # And the submitter filed review tickets that together cover both, each saying what to do
    def reviewed():
        found = [t for t in tickets.all_tickets() if t.candidate_id == "cand_conflicts" and t.kind == "review:conflict"]
        kinds = {kind for t in found for kind in t.summary.split(": ", 1)[1].split(" (")[0].split(", ")}
        return found if kinds == {"document-conflict", "expected-changed"} else None

    covered = wait_for(reviewed, "review tickets of both conflicts")
    assert all("obsflow candidates show cand_conflicts" in t.suggested_action for t in covered)
