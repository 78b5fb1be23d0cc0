"""The capacity model on fixed figures: a day's requests, units, concurrency, storage, dollars and the first quota it
would reach; figures taken from recorded run costs; `obsflow capacity` on the shipped figures."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from obsflow import capacity, metering
from obsflow.capacity import Day, Figures, IngestFigures, PassFigures, RecipeFigures, model_day, recipe_figures
from obsflow.cli import main as cli
from obsflow.recipes.definitions import RECIPES
from obsflow.runs.costs import DAYS_PER_MONTH, GIB, run_cost
from obsflow.settings import Prices

VBI = next(r for r in RECIPES if r.key == "vbi-l1@3.1.0")
NONE = dict.fromkeys(metering.COUNTS, 0.0)
PRICES = Prices(fargate_vcpu_hour=3.6, fargate_gib_hour=0.36, lambda_request=0.5, lambda_gb_second=0.01,
                state_transition=0.25, dynamodb_read_unit=0.001, dynamodb_write_unit=0.002, s3_put_request=0.003,
                s3_get_request=0.0001, s3_gib_month=1.0, sqs_request=0.004, sns_request=0.005)


def figures(**recipe) -> Figures:
    """Round figures: ingest 10 frames an invocation, 0.05 s and a GET a frame; a recipe of 5 fixed jobs and two
    data-parallel tasks in chunks of 50, 1 s of job time per frame of 1 MB."""
    return Figures(
        ingest=IngestFigures(source="test", frames_per_invocation=10, lambda_s_per_frame=0.05,
                             requests_per_frame={**NONE, "s3_get_requests": 1, "dynamodb_write_units": 2.2}),
        idle_pass=PassFigures(source="test", lambda_s=0.1, requests={**NONE, "dynamodb_read_units": 3}),
        recipes={"vbi-l1": RecipeFigures(**{
            "source": "test", "recipe": "vbi-l1", "runs": 1, "frames_per_run": 100, "frame_bytes": 1e6,
            "chunk_frames": 50, "data_parallel_tasks": 2, "fixed_jobs": 5, "job_s_per_run": 0, "job_s_per_frame": 1.0,
            "vcpus_per_job": 1, "gib_per_job": 4, "lambda_requests": 4, "lambda_s": 2, "lambda_gb_s": 1.5,
            "state_transitions": 20, "requests_per_run": {**NONE, "dynamodb_write_units": 30, "sns_requests": 1},
            "requests_per_frame": {**NONE, "s3_put_requests": 1, "s3_get_requests": 2, "s3_bytes_written": 1e6},
            "output_bytes_per_run": 0, "output_bytes_per_frame": 1e6, **recipe})})


def test_a_day_is_counted_service_by_service_from_the_figures():
    # Given 100,000 frames of 2 MB a day over 10 hours, candidates of 1,000 frames, one vbi-l1 run each, half again
    day = Day(frames_per_day=100_000, frame_bytes=2e6, frames_per_candidate=1000, mix={"vbi-l1": 1},
              reprocessing_share=0.5, observing_hours=10)
    # When the day is modelled, the image pull at 20 s
    result = model_day(day, figures(), PRICES, modelled_pull_s=20)
    services = {s["service"]: s for s in result["services"]}
    # Then 100 candidates give 150 runs of 45 jobs: 5, and 20 chunks of each of the two data-parallel tasks
    assert result["candidates"] == 100 and result["recipes"]["vbi-l1"]["runs"] == 150
    assert result["recipes"]["vbi-l1"]["jobs_per_run"] == 45
    # And a run's 2,000 s of job time (1 s a frame of 1 MB, scaled to 2 MB) are billed with each job's pull:
    # 45 jobs of 44.4 s + 20 s
    assert result["recipes"]["vbi-l1"]["billed_s_per_run"] == pytest.approx(45 * 20 + 2000, abs=0.1)
    batch = services["Batch (Fargate)"]
    assert batch["requests_per_day"] == 150 * 45 and batch["units_per_day"]["vCPU-s"] == pytest.approx(150 * 2900)
    assert batch["usd_per_day"] == pytest.approx(150 * 2900 / 1000 + 150 * 2900 * 4 / 10000, abs=0.01)
    # And Lambda: an ingest invocation per 10 frames, the runs' handlers, a submitter pass a minute
    lam = services["Lambda"]
    assert lam["requests_per_day"] == 10_000 + 150 * 4 + 1440
    # And S3: the summit's PUT of each frame, the jobs' PUTs; ingest's and the jobs' GETs
    s3 = services["S3 requests"]
    assert s3["units_per_day"]["PUT"] == 100_000 + 150 * 1000 and s3["units_per_day"]["GET"] == 100_000 + 150 * 2000
    # And SQS: S3's message per frame, Lambda's poller receiving and deleting each batch, and its idle polls
    assert services["SQS"]["requests_per_day"] == 100_000 + 2 * 10_000 + 21_600
    # And storage grows by the raw frames and the outputs each month
    grown = (100_000 * 2e6 + 150 * 1000 * 2e6) * DAYS_PER_MONTH
    assert services["S3 storage"]["storage_growth_bytes_per_month"] == pytest.approx(grown, rel=1e-9)
    # And a year of it: month m holds m months of growth, and two weeks of task outputs all along
    work = 150 * 1000 * 2e6 * 14
    assert services["S3 storage"]["usd_per_year"] == pytest.approx((grown * 78 + work * 12) / GIB, rel=1e-6)
    assert result["usd_per_year"] == pytest.approx(sum(s["usd_per_year"] for s in result["services"]), abs=1)
    # And every figure says where it comes from
    assert result["figures"]["vbi-l1"] == "test" and result["prices"].startswith("AWS list prices")


def test_the_first_quota_is_the_one_the_day_comes_nearest_to_and_a_wide_array_job_hits_the_fargate_burst():
    # Given candidates of 10,000 frames: each data-parallel task launches 200 chunks at once
    wide = Day(frames_per_day=100_000, frame_bytes=1e6, frames_per_candidate=10_000, mix={"vbi-l1": 1})
    result = model_day(wide, figures(), PRICES, modelled_pull_s=20)
    # Then the Fargate launch burst (100) is the first quota it hits, twice over
    first = result["first_quota"]
    assert first["hit"] and first["quota"].startswith("Fargate task launches, burst") and first["share"] == 2.0
    assert result["quotas"][0]["quota"] == first["quota"] and "source" in first
    # Given candidates of 1,000 frames (20 chunks), Then no quota is hit, and the nearest is said
    narrow = model_day(wide.model_copy(update={"frames_per_candidate": 1000}), figures(), PRICES, 20)
    assert not narrow["first_quota"]["hit"] and narrow["first_quota"]["share"] == 0.2
    # And the peak rates follow the frames' arrival: 100,000 frames over 10 h into one OP's prefix
    s3_put = next(q for q in narrow["quotas"] if q["quota"].startswith("S3 PUT"))
    assert s3_put["demand"] == pytest.approx(100_000 / 36_000, abs=1e-3)


def test_a_day_ten_times_larger_costs_ten_times_its_frames_work_and_the_same_schedule():
    day = Day(frames_per_day=100_000, frame_bytes=1e6, frames_per_candidate=1000, mix={"vbi-l1": 1})
    one, ten = (model_day(d, figures(), PRICES, 20) for d in (day, day.model_copy(update={"frames_per_day": 1e6})))
    batch = [{s["service"]: s for s in r["services"]}["Batch (Fargate)"]["usd_per_day"] for r in (one, ten)]
    assert batch[1] == pytest.approx(10 * batch[0], rel=1e-6)
    # the submitter's passes (one a minute) do not grow with the day
    lam = [{s["service"]: s for s in r["services"]}["Lambda"]["requests_per_day"] for r in (one, ten)]
    assert lam[1] - 1440 == pytest.approx(10 * (lam[0] - 1440))


def test_a_recipe_of_datasets_costs_per_run_and_a_recipe_without_figures_is_refused_by_name():
    summary = figures(frames_per_run=0, frame_bytes=0, chunk_frames=0, data_parallel_tasks=0, fixed_jobs=1,
                      job_s_per_run=30, job_s_per_frame=0, output_bytes_per_run=5e6, output_bytes_per_frame=0)
    day = Day(frames_per_day=1e5, frame_bytes=4e7, frames_per_candidate=1e3, mix={"vbi-l1": 0.1})
    result = model_day(day, summary, PRICES, 20)
    assert result["recipes"]["vbi-l1"]["frames_per_run"] == 0 and result["recipes"]["vbi-l1"]["billed_s_per_run"] == 60
    with pytest.raises(ValueError, match="no measured figures for visp-l1; figures exist for vbi-l1"):
        model_day(day.model_copy(update={"mix": {"visp-l1": 1}}), summary, PRICES, 20)


def recorded(jobs: int, frames: int, job_s: float, reused: int = 0) -> dict:
    usage = [{"kind": "job", "task": "frames", "seconds": job_s / jobs, "resource_class": "default", "chunk": None,
              "s3_get_requests": 3, "s3_bytes_written": 1000} for _ in range(jobs)]
    usage.append({"kind": "lambda", "function": "catalog", "seconds": 1.0, "memory_mb": 1024, "dynamodb_write_units": 8})
    return run_cost(usage, VBI, PRICES, succeeded=True, frames=frames, input_bytes=frames * 2_000_000,
                    output_bytes=frames * 500_000, tasks_reused=reused)


def test_a_recipes_figures_are_the_mean_of_its_runs_that_reused_nothing():
    # Given two runs that reused nothing (of 10 and 30 frames) and one that reused its frames
    runs = [({"options": {"chunk_frames": 32}}, recorded(4, 10, 20.0)), ({"options": {"chunk_frames": 32}},
                                                                         recorded(6, 30, 30.0)),
            ({"options": {"chunk_frames": 32}}, recorded(1, 30, 1.0, reused=3))]
    # When figures are taken from them
    found = recipe_figures(VBI, runs, "stage")
    # Then they are the mean per run and per frame of the two that reused nothing
    assert found.runs == 2 and found.frames_per_run == 20 and found.frame_bytes == 2_000_000
    assert found.job_s_per_frame == pytest.approx((20 / 10 + 30 / 30) / 2)
    assert found.fixed_jobs == 5 and found.chunk_frames == 32 and found.data_parallel_tasks == 2
    assert found.requests_per_frame["s3_get_requests"] == pytest.approx((12 / 10 + 18 / 30) / 2)
    assert found.requests_per_run["dynamodb_write_units"] == 8 and found.lambda_requests == 1
    assert found.output_bytes_per_frame == 500_000 and found.vcpus_per_job == 1 and found.gib_per_job == 4
    # And a run recorded before its cost was complete gives no figures
    assert recipe_figures(VBI, [({}, {"usd": 1, "batch_vcpu_s": 10})], "stage") is None


def test_the_shipped_figures_model_a_dkist_day_with_obsflow_capacity():
    # Given the figures shipped with this release, each saying where it was measured
    shipped = capacity.shipped_figures()
    assert {"vbi-calibration", "vbi-l1", "vbi-night-summary"} <= set(shipped.recipes)
    assert all(f.source.startswith("measured") for f in (shipped.ingest, shipped.idle_pass, *shipped.recipes.values()))
    # When an operator asks for a DKIST day (300,000 frames of 40 MB), without a stage
    result = CliRunner().invoke(cli, ["capacity", "--frames-per-day", "300000", "--frame-size", "40MB",
                                      "--figures", "shipped", "--json"])
    # Then every service is there with its dollars, and the first quota is named with its source
    assert result.exit_code == 0, result.output
    day = json.loads(result.output)
    assert [s["service"] for s in day["services"]] == ["Lambda", "Step Functions", "Batch (Fargate)", "DynamoDB",
                                                       "S3 requests", "SQS", "SNS", "S3 storage"]
    assert day["day"]["frame_bytes"] == 40e6 and day["usd_per_day"] > 0 and day["first_quota"]["source"]
    # And as a table for people
    shown = CliRunner().invoke(cli, ["capacity", "--frames-per-day", "300000", "--figures", "shipped"])
    assert shown.exit_code == 0 and "the day " in shown.output and "S3 storage" in shown.output


@pytest.mark.parametrize("option, value, said", [("--mix", "vbi-l1", "RECIPE=RUNS_PER_CANDIDATE"),
                                                 ("--frame-size", "forty", "is not a size"),
                                                 ("--mix", "visp-l1=1", "no measured figures for visp-l1")])
def test_capacity_refuses_what_it_cannot_model_in_one_line(option, value, said):
    result = CliRunner().invoke(cli, ["capacity", "--frames-per-day", "1000", "--figures", "shipped", option, value])
    assert result.exit_code != 0 and said in result.output
