"""A day of obsflow on AWS, from measured figures: what each service is asked, what runs at once, what it costs,
and the first AWS quota the day would reach. Pure arithmetic over the figures, the price table and the quotas.

The figures are measurements, not guesses: per frame that arrives (the ingest function, metered), per idle
submitter pass, and per run and per input frame of each recipe (the usage its runs recorded: ``runs.costs``).
``recipe_figures`` takes a recipe's from runs recorded on a stage (the mean of those that reused nothing);
``shipped_figures`` are those measured for this release (``capacity_figures.json``, written by
``bench/cost_figures.py``), each saying where and when. What depends on a frame's pixels (the jobs' seconds, the
bytes they write, the outputs) scales linearly with the frame size from the size it was measured at; request
counts do not.

The day:
- frames arrive evenly over ``observing_hours``: ingest and its peak rates follow them;
- candidates = frames / frames per candidate; each recipe of the mix runs that many times per candidate, plus the
  reprocessing share; runs spread over the whole day;
- a run's Batch jobs: its other tasks' and, per data-parallel task, one per chunk of ``chunk_frames`` frames; its
  jobs' seconds shared evenly among them, each billed max(60 s, pull + its seconds);
- storage grows by the raw frames and the outputs, kept; the task outputs in the work bucket expire after
  TASK_OUTPUT_RETENTION_DAYS, so that many days of them are stored at any time.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from obsflow import metering
from obsflow.quotas import PROD_COMPUTE_VCPUS, QUOTAS, compute_environment
from obsflow.recipes.model import CHUNK_OPTION, Recipe
from obsflow.runs.costs import DAYS_PER_MONTH, FARGATE_MINIMUM_S, GIB
from obsflow.settings import FUNCTION_SIZES, TASK_OUTPUT_RETENTION_DAYS, Prices

SHIPPED = Path(__file__).with_name("capacity_figures.json")
DAY_S = 86_400
SUBMITTER_PASSES_A_DAY = 24 * 60  # its schedule: every minute, whether there is work or not
# Modelled, not measured (nothing of obsflow's makes these calls): S3 sends one SQS message per frame; Lambda's poller
# receives each batch and deletes it, and with nothing to read long-polls each of its 5 pollers every 20 s.
SQS_PER_FRAME_SENT = 1
SQS_PER_BATCH = 2
SQS_IDLE_POLLS_A_DAY = 5 * DAY_S / 20
# The hottest DynamoDB item of a day: an OP's record, written once per ingest batch of its frames, in the batch's
# transaction (2 units a write under 1 KB) and read once per batch (a consistent batch read: 1 unit).
OP_WRITE_UNITS_PER_BATCH, OP_READ_UNITS_PER_BATCH = 2, 1


class _Figures(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str  # where and when these were measured


class IngestFigures(_Figures):
    """Per frame that arrives: the ingest function's batches, seconds and requests."""

    frames_per_invocation: float = Field(gt=0)
    lambda_s_per_frame: float = Field(ge=0)
    requests_per_frame: dict[str, float]  # metering.COUNTS


class PassFigures(_Figures):
    """A submitter pass that finds nothing to do (its schedule runs one a minute)."""

    lambda_s: float = Field(ge=0)
    requests: dict[str, float]


class RecipeFigures(_Figures):
    """A recipe's runs: what each costs whatever its size, and what grows with its input frames."""

    recipe: str
    runs: int = Field(ge=1)  # how many runs the figures are the mean of
    frames_per_run: float = Field(ge=0)  # 0: its inputs are datasets (a summary): all figures are per run
    frame_bytes: float = Field(ge=0)  # the mean input frame size the per-frame figures were measured at
    chunk_frames: int = Field(ge=0)  # frames per chunk of its data-parallel tasks
    data_parallel_tasks: int = Field(ge=0)
    fixed_jobs: float = Field(ge=0)  # jobs per run that are no chunk
    job_s_per_run: float = Field(ge=0)
    job_s_per_frame: float = Field(ge=0)
    vcpus_per_job: float = Field(gt=0)  # over the jobs' seconds
    gib_per_job: float = Field(gt=0)
    lambda_requests: float = Field(ge=0)  # per run: its handlers and its share of the submitter's passes
    lambda_s: float = Field(ge=0)
    lambda_gb_s: float = Field(ge=0)
    state_transitions: float = Field(ge=0)
    requests_per_run: dict[str, float]  # the handlers' (and the state machine's publish to the PI)
    requests_per_frame: dict[str, float]  # the jobs'
    output_bytes_per_run: float = Field(ge=0)
    output_bytes_per_frame: float = Field(ge=0)


class Figures(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ingest: IngestFigures
    idle_pass: PassFigures
    recipes: dict[str, RecipeFigures]


class Day(BaseModel):
    model_config = ConfigDict(extra="forbid")
    frames_per_day: float = Field(gt=0)
    frame_bytes: float = Field(gt=0)
    frames_per_candidate: float = Field(gt=0)
    mix: dict[str, float] = Field(min_length=1)  # runs of each recipe per candidate
    run_frames: dict[str, float] = Field(default_factory=dict)  # frames of a recipe's run, if not the candidate's
    reprocessing_share: float = Field(default=0, ge=0)  # more runs, as a share of the day's
    observing_hours: float = Field(default=10, gt=0, le=24)


def shipped_figures() -> Figures:
    return Figures.model_validate_json(SHIPPED.read_text())


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def recipe_figures(recipe: Recipe, runs: list[tuple[dict, dict]], source: str) -> RecipeFigures | None:
    """The mean figures of a recipe's runs, each (its configuration, its cost): of those that succeeded with a
    complete cost and reused nothing (else of all that succeeded); None without any."""
    complete = [(conf, cost) for conf, cost in runs
                if cost and "batch_jobs" in cost and cost.get("state_transitions") is not None and cost["batch_jobs"]]
    fresh = [(conf, cost) for conf, cost in complete if not cost.get("tasks_reused")]
    chosen = fresh or complete
    if not chosen:
        return None
    costs = [cost for _, cost in chosen]
    with_frames = [cost for cost in costs if cost.get("frames")]
    per_frame = bool(with_frames)
    if per_frame:
        costs = with_frames

    def mean(name: str, by_frame: bool = False) -> float:
        return _mean([c.get(name, 0) / (c["frames"] if by_frame else 1) for c in costs])

    def handlers(c: dict, name: str) -> float:
        return c.get(name, 0) - (c.get("jobs_requests") or {}).get(name, 0)

    job_requests = {name: _mean([(c.get("jobs_requests") or {}).get(name, 0) / (c["frames"] if per_frame else 1)
                                 for c in costs]) for name in metering.COUNTS}
    vcpus = sum(c["batch_task_vcpu_s"] for c in costs) / max(sum(c["batch_job_s"] for c in costs), 1e-9)
    gib_per_vcpu = sum(c["batch_gib_s"] for c in costs) / max(sum(c["batch_vcpu_s"] for c in costs), 1e-9)
    chunk_frames = [int((conf.get("options") or {}).get(CHUNK_OPTION) or 0) for conf, _ in chosen]
    return RecipeFigures(
        source=source, recipe=recipe.name, runs=len(costs), frames_per_run=mean("frames"),
        frame_bytes=_mean([c.get("input_bytes", 0) / c["frames"] for c in costs]) if per_frame else 0,
        chunk_frames=max(chunk_frames), data_parallel_tasks=sum(t.data_parallel for t in recipe.tasks),
        fixed_jobs=_mean([c["batch_jobs"] - c.get("batch_chunk_jobs", 0) for c in costs]),
        job_s_per_run=0 if per_frame else mean("batch_job_s"),
        job_s_per_frame=mean("batch_job_s", by_frame=True) if per_frame else 0,
        # at least what Fargate's sizes allow (0.25 vCPU; 2 GiB a vCPU)
        vcpus_per_job=max(vcpus, 0.25), gib_per_job=max(vcpus, 0.25) * max(gib_per_vcpu, 2.0),
        lambda_requests=mean("lambda_invocations"), lambda_s=mean("lambda_s"), lambda_gb_s=mean("lambda_gb_s"),
        state_transitions=mean("state_transitions"),
        requests_per_run={name: _mean([handlers(c, name) for c in costs]) for name in metering.COUNTS},
        requests_per_frame=job_requests if per_frame else dict.fromkeys(metering.COUNTS, 0.0),
        output_bytes_per_run=0 if per_frame else mean("output_bytes"),
        output_bytes_per_frame=mean("output_bytes", by_frame=True) if per_frame else 0,
    )


class _Tally:
    """A day's counts, added up service by service."""

    def __init__(self):
        self.requests = dict.fromkeys(metering.COUNTS, 0.0)
        self.lambda_requests = self.lambda_s = self.lambda_gb_s = 0.0  # lambda_s: all but ingest's
        self.transitions = self.executions = 0.0
        self.jobs = self.submits = self.vcpu_s = self.gib_s = 0.0
        self.raw_bytes = self.output_bytes = self.work_bytes = 0.0

    def add_requests(self, counts: dict[str, float], times: float, byte_scale: float = 1.0) -> None:
        for name in metering.COUNTS:
            self.requests[name] += counts.get(name, 0) * times * (byte_scale if name == metering.S3_BYTES else 1)


def model_day(day: Day, figures: Figures, prices: Prices, modelled_pull_s: float,
              max_vcpus: float = PROD_COMPUTE_VCPUS) -> dict:
    """The day, service by service, its dollars, and the quotas it comes nearest to (the first it would hit);
    ``max_vcpus``: the stage's compute environment ceiling."""
    unknown = sorted(set(day.mix) - set(figures.recipes))
    if unknown:
        raise ValueError(f"no measured figures for {', '.join(unknown)}; figures exist for "
                         f"{', '.join(sorted(figures.recipes)) or 'no recipe'}")
    tally = _Tally()
    frames = day.frames_per_day
    peak_frames_s = frames / (day.observing_hours * 3600)
    candidates = frames / day.frames_per_candidate

    # ingest: each frame put by the summit, noticed through SQS, its header read, recorded
    ingest = figures.ingest
    ingest_memory = FUNCTION_SIZES["ingest"][1]
    batches = frames / ingest.frames_per_invocation
    tally.lambda_requests += batches
    tally.lambda_gb_s += frames * ingest.lambda_s_per_frame * ingest_memory / 1024
    tally.add_requests(ingest.requests_per_frame, frames)
    tally.requests[metering.S3_PUT] += frames
    tally.requests[metering.SQS] += frames * SQS_PER_FRAME_SENT + batches * SQS_PER_BATCH + SQS_IDLE_POLLS_A_DAY
    tally.raw_bytes += frames * day.frame_bytes
    # the submitter's schedule
    idle = figures.idle_pass
    submitter_memory = FUNCTION_SIZES["submitter"][1]
    tally.lambda_requests += SUBMITTER_PASSES_A_DAY
    tally.lambda_s += SUBMITTER_PASSES_A_DAY * idle.lambda_s
    tally.lambda_gb_s += SUBMITTER_PASSES_A_DAY * idle.lambda_s * submitter_memory / 1024
    tally.add_requests(idle.requests, SUBMITTER_PASSES_A_DAY)

    runs_by_recipe, widest_array, widest_vcpus = {}, 0, 0.0
    for name, per_candidate in sorted(day.mix.items()):
        recipe = figures.recipes[name]
        runs = candidates * per_candidate * (1 + day.reprocessing_share)
        run_frames = day.run_frames.get(name, day.frames_per_candidate) if recipe.frames_per_run else 0
        scale = day.frame_bytes / recipe.frame_bytes if recipe.frame_bytes else 1.0
        chunks = math.ceil(run_frames / recipe.chunk_frames) if recipe.chunk_frames and run_frames else 1
        jobs = recipe.fixed_jobs + recipe.data_parallel_tasks * chunks
        job_s = recipe.job_s_per_run + recipe.job_s_per_frame * run_frames * scale
        billed = jobs * max(FARGATE_MINIMUM_S, modelled_pull_s + job_s / jobs) if jobs else 0.0
        runs_by_recipe[name] = {"runs": round(runs, 1), "frames_per_run": run_frames, "jobs_per_run": round(jobs, 1),
                                "chunks_per_data_parallel_task": chunks if recipe.data_parallel_tasks else 0,
                                "job_s_per_run": round(job_s, 1), "billed_s_per_run": round(billed, 1)}
        tally.jobs += runs * jobs
        tally.submits += runs * (recipe.fixed_jobs + recipe.data_parallel_tasks)  # an array job is one submit
        tally.vcpu_s += runs * billed * recipe.vcpus_per_job
        tally.gib_s += runs * billed * recipe.gib_per_job
        tally.lambda_requests += runs * recipe.lambda_requests
        tally.lambda_s += runs * recipe.lambda_s
        tally.lambda_gb_s += runs * recipe.lambda_gb_s
        tally.transitions += runs * recipe.state_transitions
        tally.executions += runs
        tally.add_requests(recipe.requests_per_run, runs)
        tally.add_requests(recipe.requests_per_frame, runs * run_frames, scale)
        tally.work_bytes += recipe.requests_per_frame.get(metering.S3_BYTES, 0) * runs * run_frames * scale
        tally.output_bytes += runs * (recipe.output_bytes_per_run + recipe.output_bytes_per_frame * run_frames * scale)
        if recipe.data_parallel_tasks and chunks > widest_array:
            widest_array, widest_vcpus = chunks, chunks * recipe.vcpus_per_job

    services = _services(tally, prices, peak_frames_s, ingest, widest_vcpus)
    quotas = _quotas(tally, peak_frames_s, ingest, widest_array, widest_vcpus, max_vcpus)
    nearest = max(quotas, key=lambda q: q["share"])
    return {
        "day": day.model_dump(),
        "candidates": round(candidates, 1), "peak_frames_per_s": round(peak_frames_s, 2),
        "recipes": runs_by_recipe, "services": services,
        "usd_per_day": round(sum(s["usd_per_day"] for s in services), 2),
        "usd_per_year": round(sum(s["usd_per_year"] for s in services), 2),
        "quotas": sorted(quotas, key=lambda q: -q["share"]),
        "first_quota": {**nearest, "hit": nearest["share"] >= 1},
        "figures": {"ingest": ingest.source, "idle submitter pass": idle.source,
                    **{name: figures.recipes[name].source for name in sorted(day.mix)}},
        "prices": prices.source, "image_pull_s": modelled_pull_s,
    }


def _lambda_at_once(tally: _Tally, peak_frames_s: float, ingest: IngestFigures) -> tuple[float, float]:
    """Executions at once: ingest's at the peak of the frames' arrival, and the rest's spread over the day."""
    return peak_frames_s * ingest.lambda_s_per_frame, tally.lambda_s / DAY_S


def _services(tally: _Tally, prices: Prices, peak_frames_s: float, ingest: IngestFigures,
              widest_vcpus: float) -> list[dict]:
    r = tally.requests
    ingest_concurrency, others = _lambda_at_once(tally, peak_frames_s, ingest)
    lambda_usd = tally.lambda_requests * prices.lambda_request + tally.lambda_gb_s * prices.lambda_gb_second
    monthly_growth = (tally.raw_bytes + tally.output_bytes) * DAYS_PER_MONTH
    work_stored = tally.work_bytes * TASK_OUTPUT_RETENTION_DAYS
    # a year of storage: month m holds m months of growth (and the work bucket's steady two weeks)
    first_year = (monthly_growth * sum(range(1, 13)) + work_stored * 12) / GIB * prices.s3_gib_month
    rows = [
        ("Lambda", tally.lambda_requests, "invocations", {"GB-s": tally.lambda_gb_s},
         f"{ingest_concurrency + others:.1f} executions at once at the peak (ingest {ingest_concurrency:.1f})",
         lambda_usd),
        ("Step Functions", tally.executions, "executions", {"state transitions": tally.transitions},
         f"{tally.executions / DAY_S:.3f} starts/s", tally.transitions * prices.state_transition),
        ("Batch (Fargate)", tally.jobs, "jobs", {"vCPU-s": tally.vcpu_s, "GiB-s": tally.gib_s},
         f"{tally.vcpu_s / DAY_S:.1f} vCPUs on average"
         + (f", {widest_vcpus:.0f} for the widest array job" if widest_vcpus else ""),
         tally.vcpu_s / 3600 * prices.fargate_vcpu_hour + tally.gib_s / 3600 * prices.fargate_gib_hour),
        ("DynamoDB", r[metering.DYNAMODB], "requests",
         {"read units": r[metering.READ_UNITS], "write units": r[metering.WRITE_UNITS]},
         "on demand",
         r[metering.READ_UNITS] * prices.dynamodb_read_unit + r[metering.WRITE_UNITS] * prices.dynamodb_write_unit),
        ("S3 requests", r[metering.S3_PUT] + r[metering.S3_GET] + r[metering.S3_LIST], "requests",
         {"PUT": r[metering.S3_PUT], "GET": r[metering.S3_GET], "LIST": r[metering.S3_LIST],
          "bytes written": r[metering.S3_BYTES] + tally.raw_bytes},
         f"{peak_frames_s:.1f} PUT/s into raw/<op>/ at the peak",
         (r[metering.S3_PUT] + r[metering.S3_LIST]) * prices.s3_put_request
         + r[metering.S3_GET] * prices.s3_get_request),
        ("SQS", r[metering.SQS], "requests", {}, "", r[metering.SQS] * prices.sqs_request),
        ("SNS", r[metering.SNS], "publishes", {}, "", r[metering.SNS] * prices.sns_request),
    ]
    services = [{"service": name, "requests_per_day": round(requests, 1), "requests_are": kind,
                 "units_per_day": {unit: round(value, 1) for unit, value in units.items()}, "concurrency": concurrency,
                 "storage_growth_bytes_per_month": 0, "usd_per_day": round(usd, 2), "usd_per_year": round(usd * 365, 2)}
                for name, requests, kind, units, concurrency, usd in rows]
    services.append({
        "service": "S3 storage", "requests_per_day": 0, "requests_are": "",
        "units_per_day": {"raw bytes": tally.raw_bytes, "output bytes": tally.output_bytes,
                          "task output bytes (kept 14 days)": tally.work_bytes},
        "concurrency": f"a year on: ${(monthly_growth * 12 + work_stored) / GIB * prices.s3_gib_month:,.0f} a month "
                       "(a day here: the first year's bill / 365)",
        "storage_growth_bytes_per_month": round(monthly_growth),
        "usd_per_day": round(first_year / 365, 2), "usd_per_year": round(first_year, 2)})
    return services


def _quotas(tally: _Tally, peak_frames_s: float, ingest: IngestFigures, widest_array: int, widest_vcpus: float,
            max_vcpus: float) -> list[dict]:
    batches_s = peak_frames_s / ingest.frames_per_invocation
    demand = {
        "lambda_concurrency": sum(_lambda_at_once(tally, peak_frames_s, ingest)),
        "dynamodb_partition_write": batches_s * OP_WRITE_UNITS_PER_BATCH,
        "dynamodb_partition_read": batches_s * OP_READ_UNITS_PER_BATCH,
        "dynamodb_table_write": peak_frames_s * ingest.requests_per_frame.get(metering.WRITE_UNITS, 0),
        "sfn_start_execution": tally.executions / DAY_S,
        "batch_submitted_jobs": tally.jobs,  # a whole day's jobs waiting at once: processing stopped for a day
        "batch_submit_rate": tally.submits / DAY_S,
        "fargate_launch_burst": widest_array,
        "fargate_launch_rate": tally.jobs / DAY_S,
        "s3_prefix_put": peak_frames_s,
        "s3_prefix_get": peak_frames_s * ingest.requests_per_frame.get(metering.S3_GET, 0),
        "compute_environment_vcpus": max(tally.vcpu_s / DAY_S, widest_vcpus),
    }
    what = {
        "lambda_concurrency": "ingest at the peak, and the runs' handlers spread over the day",
        "dynamodb_partition_write": "an OP's record, written by each ingest batch of its frames",
        "dynamodb_partition_read": "an OP's record, read by each ingest batch of its frames",
        "dynamodb_table_write": "the frames table at the peak",
        "sfn_start_execution": "runs started, spread over the day",
        "batch_submitted_jobs": "a day's jobs queued at once (a day's backlog)",
        "batch_submit_rate": "submits (an array job is one), spread over the day",
        "fargate_launch_burst": "the chunks of the widest array job, launched together",
        "fargate_launch_rate": "jobs launched, spread over the day",
        "s3_prefix_put": "the summit's PUTs into raw/<op>/ at the peak",
        "s3_prefix_get": "ingest's header reads from raw/<op>/ at the peak",
        "compute_environment_vcpus": "the day's vCPU-seconds spread over the day, or the widest array job's, "
                                     "whichever is more",
    }
    return [{"quota": q.name, "demand": round(demand[q.key], 3), "limit": q.limit, "unit": q.unit,
             "share": round(demand[q.key] / q.limit, 4), "of": what[q.key], "adjustable": q.adjustable,
             "source": q.source} for q in (*QUOTAS, compute_environment(max_vcpus))]


def figures_json(figures: Figures) -> str:
    return json.dumps(figures.model_dump(), indent=2, sort_keys=True) + "\n"
