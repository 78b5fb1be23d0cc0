"""What a run cost: pure arithmetic over its task records, its state machine and the price table.

Batch (Fargate) bills a job's vCPUs and memory for its duration; Lambda bills requests
(the step functions' GB-seconds are not measured and not counted); Step Functions bills
state transitions. A reused task ran for no time and costs nothing; one StartRun found made already
started no job (the state machine passed it).
"""

from __future__ import annotations

from obsflow.recipes import asl
from obsflow.recipes.jobs import RESOURCES
from obsflow.recipes.model import Recipe
from obsflow.runs.reuse import AT_START
from obsflow.settings import Prices

# A failed run: StartRun, OpenTicket and FailRun ran; the transitions depend on where it failed.
FAILED_RUN_INVOCATIONS = 3


def run_cost(task_records: list[dict], recipe: Recipe, prices: Prices, succeeded: bool, notify_pi: bool = True) -> dict:
    sizes = {task.name: RESOURCES[task.resource_class] for task in recipe.tasks}
    vcpu_s = gib_s = 0.0
    for record in task_records:
        vcpu, mib = sizes.get(record["task"], ("1", "2048"))
        vcpu_s += record.get("duration_s", 0) * float(vcpu)
        gib_s += record.get("duration_s", 0) * int(mib) / 1024
    skipped = frozenset(r["task"] for r in task_records if r.get(AT_START))
    transitions, invocations = asl.success_path(asl.build_definition(recipe), notify_pi, reused=skipped) if succeeded \
        else (None, FAILED_RUN_INVOCATIONS)
    return {
        "batch_vcpu_s": round(vcpu_s, 1), "batch_gib_s": round(gib_s, 1), "lambda_invocations": invocations,
        "state_transitions": transitions, "tasks_reused": sum("reused_from" in r for r in task_records),
        "usd": round(prices.run_cost(vcpu_s, gib_s, invocations, transitions or 0), 6),
    }


def estimated_usd(cpu_s: float, output_bytes: int, recipe: Recipe, prices: Prices, months_stored: float = 1) -> float:
    """A plan's cost of a run: its estimated vCPU-seconds (memory in the recipe's vCPU:GiB ratio), its state
    machine, and a month of storage for its outputs."""
    vcpus = sum(float(RESOURCES[t.resource_class][0]) for t in recipe.tasks)
    gib = sum(int(RESOURCES[t.resource_class][1]) / 1024 for t in recipe.tasks)
    transitions, invocations = asl.success_path(asl.build_definition(recipe))
    return round(prices.run_cost(cpu_s, cpu_s * gib / vcpus, invocations, transitions)
                 + output_bytes / 2**30 * prices.s3_gib_month * months_stored, 6)
