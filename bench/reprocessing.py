"""Incremental re-execution benchmark on the local stack (Step Functions on moto, tasks as subprocesses).

Processes a frame-census dataset in full, then reprocesses it on a new recipe version whose
only change is its last task (planned first, started as a campaign), and prints both runs'
wall times, their ratio, what each cost, and the state transitions counted along the
definition against those in the execution history.

    python bench/reprocessing.py [--frames 64] [--size 512]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import boto3
import yaml
from click.testing import CliRunner

from obsflow import tables
from obsflow.cli import main as cli
from obsflow.local.stack import LocalStack
from obsflow.runs.reprocessing import Change
from obsflow.services import campaign_service
from obsflow.simulate import simulate_candidate
from obsflow.tables import campaigns, recipe_instances, runs
from orchestration import history, transitions, upload  # bench/, beside this script

SHIPPED = Path(__file__).resolve().parents[1] / "shared" / "obsflow" / "recipes" / "shipped" / "recipes"


def wait(predicate, what: str, timeout_s: float = 1800):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")


def register_last_task_change(stack: LocalStack) -> str:
    definition = yaml.safe_load((SHIPPED / "frame-census-1.0.0.yaml").read_text())
    definition["version"] = "1.9.0"
    definition["tasks"][-1]["description"] = "one JSON product with the census (changed)"
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "frame-census-1.9.0.yaml"
        path.write_text(yaml.safe_dump(definition))
        result = CliRunner().invoke(cli, ["--endpoint-url", stack.endpoint_url, "--stage", stack.settings.stage,
                                          "recipes", "register", str(path)])
    assert result.exit_code == 0, result.output
    return "frame-census@1.9.0"


def run_seconds(run) -> float:
    return (run.finished_at - run.started_at).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=64, help="observe frames")
    parser.add_argument("--size", type=int, default=512, help="frame width and height in pixels")
    args = parser.parse_args()
    os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    with LocalStack(port=0, stage="bench", log_level="ERROR", submit_interval_s=0.5) as stack:
        tables.bind(stack.settings)
        session = boto3.Session(region_name=stack.settings.region)
        s3, sfn = session.client("s3"), session.client("stepfunctions")
        candidate = simulate_candidate("bench_full", n_dark=8, n_gain=4, n_observe=args.frames,
                                       shape=(args.size, args.size), seed=7, recipe="frame-census")
        upload(s3, stack.settings.ingest_bucket_name, candidate)
        full = wait(lambda: next((r for r in runs.all_runs() if r.candidate_id == "bench_full"
                                  and r.status in ("SUCCEEDED", "FAILED")), None), "the full run")
        assert full.status == "SUCCEEDED", full.error
        version = register_last_task_change(stack)
        service = campaign_service(stack.settings)
        planned = time.perf_counter()
        plan = service.planner.plan(Change(recipe=version, datasets=(full.dataset_id,)), "bench")
        plan_s = time.perf_counter() - planned
        [item] = plan["items"]
        service.start_plan(plan["plan_id"], "bench-last-task", "bench", "benchmark")
        [instance_id] = campaigns.get("bench-last-task").instance_ids
        wait(lambda: recipe_instances.get(instance_id).state in ("SUCCEEDED", "ERROR"), "the incremental run")
        [incremental] = [r for r in runs.all_runs() if r.instance_id == instance_id]
        assert incremental.status == "SUCCEEDED", incremental.error
        in_history = {r.run_id: transitions(history(sfn, r.execution_arn)) for r in (full, incremental)}

    frames = args.frames + 12
    print(f"frame-census on {frames} frames of {args.size}x{args.size} ({args.frames} observe, 8 dark, 4 gain)")
    print(f"plan ({version}, one dataset): {plan_s:.2f} s; re-runs {', '.join(item['tasks_rerun'])}; "
          f"reuses {', '.join(item['tasks_reused'])}")
    for label, run in (("full run", full), ("only the last task changed", incremental)):
        cost = run.cost
        print(f"{label:<28} {run_seconds(run):6.2f} s  {cost['batch_vcpu_s']:7.1f} vCPU-s  ${cost['usd']:.6f}  "
              f"{cost['tasks_reused']} task(s) reused; transitions {cost['state_transitions']} counted, "
              f"{in_history[run.run_id]} in the history")
    print(f"ratio (incremental / full):  time {run_seconds(incremental) / run_seconds(full):.2f}, "
          f"Batch vCPU-s {incremental.cost['batch_vcpu_s'] / max(full.cost['batch_vcpu_s'], 0.1):.2f}")


if __name__ == "__main__":
    main()
