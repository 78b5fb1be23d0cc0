"""What a run cost: from the usage its invocations and jobs recorded, its state machine and the price table; and
the run service recording it, complete, when the run ends."""

from __future__ import annotations

import pytest

from obsflow.recipes import asl
from obsflow.recipes.definitions import RECIPES
from obsflow.runs import layout
from obsflow.runs.costs import billed_job_seconds, run_cost, summed
from obsflow.settings import Prices
from tests.unit.test_run_service import add_candidate, make_service

CENSUS = next(r for r in RECIPES if r.key == "frame-census@1.0.0")
VBI = next(r for r in RECIPES if r.key == "vbi-l1@3.0.0")
VBI_BY_CONTENT = next(r for r in RECIPES if r.key == "vbi-l1@3.1.0")
# Round prices, so each line's dollars read as its units
PRICES = Prices(fargate_vcpu_hour=3.6, fargate_gib_hour=0.36, lambda_request=0.5, lambda_gb_second=0.01,
                state_transition=0.25, dynamodb_read_unit=0.001, dynamodb_write_unit=0.002, s3_put_request=0.003,
                s3_get_request=0.0001, s3_gib_month=1.0, sqs_request=0.004, sns_request=0.005)


def job(task, seconds, resource_class="default", chunk=None, **more):
    return {"kind": "job", "task": task, "seconds": seconds, "resource_class": resource_class, "chunk": chunk, **more}


def invocation(function, seconds, memory_mb, **more):
    return {"kind": "lambda", "function": function, "seconds": seconds, "memory_mb": memory_mb, **more}


def test_the_success_path_counts_every_state_entered_and_every_lambda_invoked():
    # frame-census: StartRun, inventory (its reused? Choice, then its job), the Parallel with its two branches
    # (each a Choice and a job), summary, Catalog, ForThePI (a Choice), NotifyPI (SNS, no Lambda), FinishRun;
    # a developer run's dataset skips NotifyPI
    assert asl.success_path(asl.build_definition(CENSUS)) == (13, 3)
    assert asl.success_path(asl.build_definition(CENSUS), notify_pi=False) == (12, 3)
    # a task StartRun found made already passes (a Pass state) instead of running: as many transitions
    assert asl.success_path(asl.build_definition(CENSUS), reused=frozenset({"inventory", "dark_level"})) == (13, 3)
    # vbi-l1: StartRun, parse (Choice, job), the data-parallel frames (a Parallel of one branch: its Choice, then an
    # array job, or one job for a single chunk), a Parallel of three branches (quality_metrics with its Choice then
    # quality_report; browse_movie with its Choice; asdf_inventory), Catalog, ForThePI, NotifyPI, FinishRun: as
    # many for 100,000 frames as for 10, in one chunk or many
    transitions, invocations = asl.success_path(asl.build_definition(VBI))
    assert invocations == 3 and transitions == 1 + 2 + (1 + 2) + (1 + 3 + 2 + 1) + 1 + 1 + 1 + 1
    assert asl.success_path(asl.build_definition(VBI), chunked=False)[0] == transitions
    # vbi-l1 3.1.0 with its frames reused: their Choice and a Pass instead of the chunks' Choice and array job
    reused = asl.success_path(asl.build_definition(VBI_BY_CONTENT), reused=frozenset({"parse", "frames"}))[0]
    assert reused == asl.success_path(asl.build_definition(VBI_BY_CONTENT))[0] - 1


@pytest.mark.parametrize("job_s, pull_s, billed", [(0.4, 20, 60), (10, 20, 60), (40, 20, 60), (40.2, 20, 61),
                                                    (100, 0, 100), (100, 12.5, 113)])
def test_fargate_bills_a_job_from_its_image_pull_by_the_second_one_minute_at_least(job_s, pull_s, billed):
    assert billed_job_seconds(job_s, pull_s) == billed


def test_a_run_costs_every_job_its_minute_and_pull_every_invocation_its_gb_seconds_and_every_request():
    # Given what a frame-census run's invocations and jobs recorded: a 100 s default job, a 10 s multi-core job, a job
    # that found its task's outputs reusable (it ran, 0.3 s: billed its minute), two chunks, a job run by hand; the
    # handlers, and a third of a submitter pass that started three runs
    usage = [
        job("inventory", 100, s3_put_requests=4, s3_get_requests=10, s3_bytes_written=2**30),
        job("observe_stats", 10, "multi-core", dynamodb_read_units=2, s3_get_requests=5),
        job("dark_level", 0.3, s3_get_requests=2),
        job("frames", 30, "high-memory", chunk=0), job("frames", 50, "high-memory", chunk=1),
        job("summary", 5, manual=True, s3_put_requests=1),
        invocation("start-run", 0.2, 512, dynamodb_read_units=1.5, dynamodb_write_units=3),
        invocation("catalog", 1.0, 1024, s3_put_requests=6, s3_list_requests=1, dynamodb_write_units=4),
        invocation("finish-run", 0.5004, 512, sns_requests=0, sqs_requests=0),
        invocation("submitter", 3.0, 512, share=1 / 3, dynamodb_write_units=9, s3_put_requests=3),
    ]
    # When it is priced as a run that succeeded and went to the PI, the pull modelled at 20 s
    cost = run_cost(usage, CENSUS, PRICES, succeeded=True, tasks_reused=1, frames=10, input_bytes=10 * 2880,
                    output_bytes=2 * 2**30, modelled_pull_s=20)
    # Then each Fargate job is billed from its pull, one minute at least: 120 s, 60 s x 4 vCPU, 60 s, 60 s and 70 s
    # at 2 vCPU; the job run by hand is not a Fargate job
    assert cost["batch_jobs"] == 5 and cost["batch_chunk_jobs"] == 2
    assert cost["batch_vcpu_s"] == 120 + 240 + 60 + 2 * (60 + 70)
    assert cost["batch_gib_s"] == 4 * 120 + 8 * 60 + 4 * 60 + 16 * (60 + 70)
    assert cost["batch_pull_s"] == 100 and cost["image_pull"] == "modelled: 20 s a job"
    # And the in-task time is kept apart from what was billed
    assert cost["batch_task_vcpu_s"] == pytest.approx(100 + 40 + 0.3 + 2 * 80)
    # And Lambda: three requests and a third of one, each rounded up to the millisecond at its memory
    assert cost["lambda_invocations"] == pytest.approx(3 + 1 / 3)
    assert cost["lambda_gb_s"] == pytest.approx(0.2 * 0.5 + 1.0 + 0.501 * 0.5 + 3.0 * 0.5 / 3, abs=1e-3)
    # And every request is counted, the submitter's by its share, plus the state machine's publish to the PI
    assert cost["s3_put_requests"] == 4 + 1 + 6 + 1 and cost["s3_get_requests"] == 17 and cost["s3_list_requests"] == 1
    assert cost["dynamodb_write_units"] == pytest.approx(3 + 4 + 3) and cost["dynamodb_read_units"] == 3.5
    assert cost["sns_requests"] == 1 and cost["state_transitions"] == 13
    # And each service is priced from the table
    usd = cost["usd_by_service"]
    assert usd["batch"] == pytest.approx(cost["batch_vcpu_s"] / 1000 + cost["batch_gib_s"] / 10000)
    assert usd["lambda"] == pytest.approx(cost["lambda_invocations"] * 0.5 + cost["lambda_gb_s"] * 0.01, abs=1e-5)
    assert usd["step_functions"] == 13 * 0.25 and usd["sns"] == 0.005
    assert usd["dynamodb"] == pytest.approx(3.5 * 0.001 + 10 * 0.002)
    assert usd["s3_requests"] == pytest.approx(13 * 0.003 + 17 * 0.0001)
    # the jobs' GiB written stays in the work bucket until it expires: 14 days of a month
    assert usd["s3_work_storage"] == pytest.approx(1.0 * 14 / 30.4375, abs=1e-6)
    assert cost["usd"] == pytest.approx(sum(usd.values()), abs=1e-5)
    # And the outputs' storage is a line of its own, a month at a time; the prices say where they are from
    assert cost["storage_usd_month"] == 2.0 and cost["prices"] == "AWS list prices, us-east-1, as of 2026-12-05"
    assert (cost["frames"], cost["input_bytes"], cost["output_bytes"], cost["tasks_reused"]) == (10, 28800, 2 * 2**30, 1)


def test_a_pull_the_job_measured_replaces_the_model():
    cost = run_cost([job("inventory", 30, pull_s=45.5)], CENSUS, PRICES, succeeded=True, modelled_pull_s=20)
    assert cost["batch_vcpu_s"] == 76 and cost["batch_pull_s"] == 45.5
    assert cost["image_pull"] == "measured by 1 job(s), modelled for the rest (20 s)"


def test_a_failed_run_counts_no_transitions_and_publishes_nothing_to_the_pi():
    cost = run_cost([invocation("fail-run", 0.1, 512)], CENSUS, PRICES, succeeded=False)
    assert cost["state_transitions"] is None and cost["sns_requests"] == 0 and cost["lambda_invocations"] == 1
    # a developer run's dataset is not the PI's either
    assert run_cost([], CENSUS, PRICES, succeeded=True, notify_pi=False)["sns_requests"] == 0


def test_costs_add_up_across_runs_and_an_older_cost_adds_what_it_has():
    one = run_cost([job("inventory", 30)], CENSUS, PRICES, succeeded=True, frames=4)
    older = {"usd": 0.5, "batch_vcpu_s": 10.0, "lambda_invocations": 3, "state_transitions": 13, "tasks_reused": 1}
    total = summed([one, one, older])
    assert total["runs"] == 3 and total["frames"] == 8 and total["batch_jobs"] == 2
    assert total["usd"] == pytest.approx(2 * one["usd"] + 0.5)
    assert total["batch_vcpu_s"] == 2 * one["batch_vcpu_s"] + 10
    assert total["usd_by_service"]["batch"] == pytest.approx(2 * one["usd_by_service"]["batch"])


def test_a_finished_run_records_what_its_invocations_and_jobs_used_and_its_cost_on_run_and_dataset():
    # Given a frame-census run started and catalogued, whose jobs and handlers recorded their usage
    in_progress = {}
    service = make_service()
    service.ctx.invocation_usage = lambda: in_progress.get("entry")
    add_candidate(service, "c1")
    report = service.submit()
    [run_id] = report.started
    service.record_usage(report.started, invocation("submitter", 2.0, 512, source="lambda-submitter-r1",
                                                    dynamodb_write_units=4))
    service.start_run(run_id, "arn:execution")
    for task in ("inventory", "dark_level", "observe_stats", "summary"):
        service.documents.put_json("work", layout.usage_key(run_id, f"job-{task}-j1"),
                                   job(task, 5, "multi-core" if task == "observe_stats" else "default",
                                       s3_get_requests=3, s3_put_requests=2))
        service.documents.put_json("work", layout.task_record_key(run_id, task), {
            "task": task, "code_version": "0.1.0", "libraries": {}, "manual": False, "finished_at": task,
            "outputs": [{"name": f"{task}.json", "key": f"task-outputs/{task}/{task}.json", "sha256": "ab",
                         "size": 100, "tags": ["product"]}]})
    service.record_usage([run_id], invocation("catalog", 1.5, 1024, source="lambda-catalog-r2"))
    dataset_id = service.catalog(run_id)["dataset_id"]
    # When FinishRun, itself 0.2 s in, ends it
    in_progress["entry"] = invocation("finish-run", 0.2, 512, source="lambda-finish-run-r3", dynamodb_read_units=1)
    service.finish_run(run_id)
    # Then the run's cost counts every job, the submitter, Catalog and FinishRun so far
    cost = service.store.runs[run_id].cost
    assert cost["batch_jobs"] == 4 and cost["batch_vcpu_s"] == 60 + 60 + 4 * 60 + 60
    assert cost["lambda_invocations"] == 3 and cost["frames"] == 2 and cost["output_bytes"] == 400
    # And each usage record counts its own write
    assert cost["s3_put_requests"] == 4 * 2 + 1 + 1 and cost["s3_get_requests"] == 12
    assert cost["dynamodb_write_units"] == 4 and cost["dynamodb_read_units"] == 1
    assert cost["state_transitions"] == 13 and cost["usd"] > 0
    # And the dataset shows the same cost
    assert service.store.datasets[dataset_id].cost == cost


def test_a_pass_that_worked_for_several_runs_records_an_equal_share_with_each():
    service = make_service()
    service.record_usage(["run-b", "run-a", "run-b"], invocation("submitter", 3.0, 512, source="lambda-submitter-x",
                                                                  dynamodb_write_units=6))
    records = {key: doc for key, doc in service.documents.buckets["work"].items() if "/usage/" in key}
    assert sorted(records) == ["runs/run-a/usage/lambda-submitter-x.json", "runs/run-b/usage/lambda-submitter-x.json"]
    assert {r["share"] for r in records.values()} == {0.5} and {r["s3_put_requests"] for r in records.values()} == {2}
