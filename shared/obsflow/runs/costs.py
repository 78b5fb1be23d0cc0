"""What a run cost: pure arithmetic over the usage its Lambda invocations and Batch jobs recorded, its state machine
and the price table.

Each handler invocation that works for a run (StartRun, Catalog, OpenTicket, FailRun, FinishRun, and the submitter's
share of each pass that planned or started it) and each of its Batch jobs records a usage entry
(``obsflow.metering``, ``runs.accounting``): its seconds and the AWS requests it made. From them:

- Batch on Fargate bills each job (each chunk of a data-parallel task is one) per second from the start of its image
  pull to its end, one minute at least: billed seconds = max(60, pull + the job's own seconds), at its resource
  class's vCPUs and memory. The pull is the job's own where Fargate's task metadata gave it, else modelled
  (``Settings.modelled_pull_s``). A task StartRun found made already started no job; one a job found reusable did
  start one, and is billed its minute. A task run by hand (``runs execute``) ran on no Fargate task.
- Lambda bills each request, and its duration (rounded up to the millisecond) at its configured memory
  (``settings.FUNCTION_SIZES``); the submitter's pass is shared evenly among the runs it planned or started.
- Step Functions bills the state transitions of the success path (a failed run's are not counted).
- DynamoDB read and write request units, S3 requests by class, SQS and SNS requests as counted, plus the state
  machine's own SNS publish to the PI; the task outputs the jobs wrote are stored in the work bucket until they
  expire (``TASK_OUTPUT_RETENTION_DAYS``).
- The dataset's outputs cost ``storage_usd_month`` for every month they are kept: a line of its own, not in ``usd``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from obsflow import metering
from obsflow.recipes import asl
from obsflow.recipes.jobs import RESOURCES
from obsflow.recipes.model import Recipe
from obsflow.settings import TASK_OUTPUT_RETENTION_DAYS, Prices

FARGATE_MINIMUM_S = 60  # Fargate's minimum charge per task (a Batch job)
DAYS_PER_MONTH = 30.4375  # S3 prices storage by the GB-month
GIB = 2**30
# The run's cost lines, by service, in the order they are shown.
SERVICES = ("batch", "lambda", "step_functions", "dynamodb", "s3_requests", "s3_work_storage", "sqs", "sns")


def billed_job_seconds(job_s: float, pull_s: float) -> int:
    """Fargate bills from the pull's start, by the second, one minute at least."""
    return max(FARGATE_MINIMUM_S, math.ceil(pull_s + job_s))


def lambda_gb_seconds(seconds: float, memory_mb: float) -> float:
    return math.ceil(seconds * 1000) / 1000 * memory_mb / 1024


def _size(resource_class: str | None) -> tuple[float, float]:
    vcpu, mib = RESOURCES.get(resource_class or "default", RESOURCES["default"])
    return float(vcpu), int(mib) / 1024


def usage_totals(entries: Iterable[dict], modelled_pull_s: float) -> dict:
    """What the entries add up to: Batch jobs and their billed seconds, Lambda requests and GB-seconds, and every
    AWS request count; ``jobs_requests``: the part of the counts the jobs made (they grow with the frames, the
    handlers' with the runs)."""
    totals = dict.fromkeys(("batch_jobs", "batch_chunk_jobs", "batch_job_s", "batch_task_vcpu_s", "batch_vcpu_s",
                            "batch_gib_s", "batch_pull_s", "lambda_invocations", "lambda_s", "lambda_gb_s"), 0.0)
    counts = dict.fromkeys(metering.COUNTS, 0.0)
    jobs_requests = dict.fromkeys(metering.COUNTS, 0.0)
    pulls_measured = 0
    for entry in entries:
        share = entry.get("share", 1)
        for name in metering.COUNTS:
            counts[name] += share * entry.get(name, 0)
        if entry.get("kind") == "lambda":
            totals["lambda_invocations"] += share
            totals["lambda_s"] += share * entry.get("seconds", 0)
            totals["lambda_gb_s"] += share * lambda_gb_seconds(entry.get("seconds", 0), entry.get("memory_mb", 0))
        elif entry.get("kind") == "job":
            for name in metering.COUNTS:
                jobs_requests[name] += entry.get(name, 0)
            if entry.get("manual"):  # run on an operator's machine, not on Fargate
                continue
            vcpu, gib = _size(entry.get("resource_class"))
            pull = entry["pull_s"] if entry.get("pull_s") is not None else modelled_pull_s
            pulls_measured += entry.get("pull_s") is not None
            billed = billed_job_seconds(entry.get("seconds", 0), pull)
            totals["batch_jobs"] += 1
            totals["batch_chunk_jobs"] += entry.get("chunk") is not None
            totals["batch_job_s"] += entry.get("seconds", 0)
            totals["batch_task_vcpu_s"] += entry.get("seconds", 0) * vcpu
            totals["batch_vcpu_s"] += billed * vcpu
            totals["batch_gib_s"] += billed * gib
            totals["batch_pull_s"] += pull
    rounded = {name: round(value, 6) for name, value in {**totals, **counts}.items()}
    for name in ("batch_jobs", "batch_chunk_jobs"):
        rounded[name] = int(rounded[name])
    rounded["jobs_requests"] = {name: round(value, 3) for name, value in jobs_requests.items()}
    rounded["batch_pulls_measured"] = pulls_measured
    return rounded


def priced(totals: dict, prices: Prices) -> dict[str, float]:
    """USD by service of what ``totals`` count."""
    work_months = TASK_OUTPUT_RETENTION_DAYS / DAYS_PER_MONTH
    return {
        "batch": (totals["batch_vcpu_s"] * prices.fargate_vcpu_hour + totals["batch_gib_s"] * prices.fargate_gib_hour)
                 / 3600,
        "lambda": totals["lambda_invocations"] * prices.lambda_request + totals["lambda_gb_s"] * prices.lambda_gb_second,
        "step_functions": (totals.get("state_transitions") or 0) * prices.state_transition,
        "dynamodb": totals["dynamodb_read_units"] * prices.dynamodb_read_unit
                    + totals["dynamodb_write_units"] * prices.dynamodb_write_unit,
        "s3_requests": (totals["s3_put_requests"] + totals["s3_list_requests"]) * prices.s3_put_request
                       + totals["s3_get_requests"] * prices.s3_get_request,
        "s3_work_storage": totals["jobs_requests"]["s3_bytes_written"] / GIB * prices.s3_gib_month * work_months,
        "sqs": totals["sqs_requests"] * prices.sqs_request,
        "sns": totals["sns_requests"] * prices.sns_request,
    }


def run_cost(usage: list[dict], recipe: Recipe, prices: Prices, succeeded: bool, *, notify_pi: bool = True,
             reused_at_start: frozenset[str] = frozenset(), tasks_reused: int = 0, frames: int = 0,
             input_bytes: int = 0, output_bytes: int = 0, modelled_pull_s: float = 20.0) -> dict:
    """The run's cost from its usage entries: every count, USD by service and in all, and its outputs' storage a
    month. ``notify_pi``: its dataset went to the PI (the state machine's SNS publish)."""
    totals = usage_totals(usage, modelled_pull_s)
    transitions = asl.success_path(asl.build_definition(recipe), notify_pi, reused=reused_at_start)[0] \
        if succeeded else None
    totals["state_transitions"] = transitions
    if succeeded and notify_pi and recipe.kind == "science":
        totals["sns_requests"] += 1  # NotifyPI: Step Functions publishes, no handler of ours
    by_service = priced(totals, prices)
    measured = totals.pop("batch_pulls_measured")
    pull = (f"measured by {measured} job(s), modelled for the rest ({modelled_pull_s:g} s)" if measured
            else f"modelled: {modelled_pull_s:g} s a job")
    return {
        **totals, "tasks_reused": tasks_reused, "frames": frames, "input_bytes": input_bytes,
        "output_bytes": output_bytes, "image_pull": pull,
        "usd_by_service": {name: round(by_service[name], 6) for name in SERVICES},
        "usd": round(sum(by_service.values()), 6),
        "storage_usd_month": round(output_bytes / GIB * prices.s3_gib_month, 6),
        "prices": prices.source,
    }


def task_vcpu_s(task_records: list[dict], recipe: Recipe) -> float:
    """The vCPU-seconds the tasks themselves ran (their records' durations): what later estimates of the recipe
    are refined from."""
    sizes = {task.name: _size(task.resource_class)[0] for task in recipe.tasks}
    return round(sum(record.get("duration_s", 0) * sizes.get(record["task"], 1.0) for record in task_records), 1)


SUMMED = ("usd", "storage_usd_month", "frames", "input_bytes", "output_bytes", "tasks_reused", "state_transitions",
          "batch_jobs", "batch_chunk_jobs", "batch_job_s", "batch_task_vcpu_s", "batch_vcpu_s", "batch_gib_s",
          "batch_pull_s", "lambda_invocations", "lambda_s", "lambda_gb_s", *metering.COUNTS)


def summed(costs: Iterable[dict]) -> dict:
    """Several runs' costs added up (``runs``: how many), USD by service too; a cost recorded before a field was
    counted adds nothing to it."""
    total = dict.fromkeys(SUMMED, 0.0)
    by_service = dict.fromkeys(SERVICES, 0.0)
    jobs_requests = dict.fromkeys(metering.COUNTS, 0.0)
    runs = 0
    for cost in costs:
        runs += 1
        for name in SUMMED:
            total[name] += cost.get(name) or 0
        for name, usd in (cost.get("usd_by_service") or {}).items():
            by_service[name] = by_service.get(name, 0) + usd
        for name, count in (cost.get("jobs_requests") or {}).items():
            jobs_requests[name] = jobs_requests.get(name, 0) + count

    def plain(value: float) -> float:
        return int(value) if value == int(value) else round(value, 6)

    result = {name: plain(value) for name, value in total.items()}
    result.update(runs=runs, usd_by_service={name: round(usd, 6) for name, usd in by_service.items()},
                  jobs_requests={name: plain(count) for name, count in jobs_requests.items()})
    return result


def estimated_usd(cpu_s: float, output_bytes: int, recipe: Recipe, prices: Prices, months_stored: float = 1) -> float:
    """A plan's cost of a run: its estimated vCPU-seconds (memory in the recipe's vCPU:GiB ratio), its state
    machine's transitions and Lambda requests, and a month of storage for its outputs."""
    vcpus = sum(_size(t.resource_class)[0] for t in recipe.tasks)
    gib = sum(_size(t.resource_class)[1] for t in recipe.tasks)
    transitions, invocations = asl.success_path(asl.build_definition(recipe))
    return round(cpu_s / 3600 * prices.fargate_vcpu_hour + cpu_s * gib / vcpus / 3600 * prices.fargate_gib_hour
                 + invocations * prices.lambda_request + transitions * prices.state_transition
                 + output_bytes / GIB * prices.s3_gib_month * months_stored, 6)
