"""Incremental re-execution benchmark on the local stack (Step Functions on moto, tasks as subprocesses).

Two cases, each a full run then a reprocessing (planned first, started as a campaign):

- frame-census: reprocessed on a new recipe version whose only change is its last task; both runs'
  wall times, their ratio, what each cost, and the state transitions counted along the definition
  against those in the execution history;
- vbi-l1 (the reference recipe): a VBI night (master calibrations, the science dataset, the night
  summary), then the quality report's ``light_level_tolerance`` changed for the observation
  (`recipes set-value`, `reprocess plan --parameter light_level_tolerance`): the science run's wall
  time and task time (the tasks' own seconds) against the full run's (target: at most 20 %), which
  tasks re-ran and which were reused, and each state of both executions with its start and duration.

    python bench/reprocessing.py [--frames 64] [--size 512] [--vbi-frames 64] [--vbi-size 256] [--only CASE]
"""

from __future__ import annotations

import argparse
import datetime as dt
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
from obsflow.runs import documents, layout
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


def frame_census(stack: LocalStack, s3, sfn, frames: int, size: int) -> list[str]:
    """frame-census in full, then on a version whose only change is its last task: the figures as lines."""
    candidate = simulate_candidate("bench_full", n_dark=8, n_gain=4, n_observe=frames, shape=(size, size), seed=7,
                                   recipe="frame-census")
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

    lines = [f"frame-census on {frames + 12} frames of {size}x{size} ({frames} observe, 8 dark, 4 gain)",
             f"plan ({version}, one dataset): {plan_s:.2f} s; re-runs {', '.join(item['tasks_rerun'])}; "
             f"reuses {', '.join(item['tasks_reused'])}"]
    for label, run in (("full run", full), ("only the last task changed", incremental)):
        cost = run.cost
        lines.append(f"{label:<28} {run_seconds(run):6.2f} s  {cost['batch_vcpu_s']:7.1f} vCPU-s  ${cost['usd']:.6f}  "
                     f"{cost['tasks_reused']} task(s) reused; transitions {cost['state_transitions']} counted, "
                     f"{in_history[run.run_id]} in the history")
    lines.append(f"ratio (incremental / full):  time {run_seconds(incremental) / run_seconds(full):.2f}, "
                 f"Batch vCPU-s {incremental.cost['batch_vcpu_s'] / max(full.cost['batch_vcpu_s'], 0.1):.2f}")
    return lines


VBI_NIGHT = dt.datetime(2026, 11, 21, 18)
VBI_TOLERANCE = "0.1"  # light_level_tolerance: 0.2 before


def timeline(sfn, run) -> str:
    """Each state of the run's execution: when it was entered and how long it took, from the execution's start."""
    events = history(sfn, run.execution_arn)
    start, entered, spans = events[0]["timestamp"], {}, []
    for event in events:
        if event["type"].endswith("StateEntered"):
            entered[event["stateEnteredEventDetails"]["name"]] = event["timestamp"]
        elif event["type"].endswith("StateExited"):
            name = event["stateExitedEventDetails"]["name"]
            if name in entered:
                spans.append(f"{name} +{(entered[name] - start).total_seconds():.1f} "
                             f"{(event['timestamp'] - entered[name]).total_seconds():.1f}s")
    return ", ".join(spans)


def vbi_l1(stack: LocalStack, s3, sfn, frames: int, size: int) -> list[str]:
    """A VBI night in full, then the quality report's tolerance changed for it: the science runs' figures as lines."""
    candidate = simulate_candidate("bench_vbi", proposal_id="pid_8_1", n_dark=4, n_gain=4, n_observe=frames,
                                   shape=(size, size), seed=11, start=VBI_NIGHT)
    upload(s3, stack.settings.ingest_bucket_name, candidate)
    reference = f"{VBI_NIGHT:%Y-%m-%d}/pid_8_1"
    night = wait(lambda: (found := recipe_instances.of_reference(reference)) and len(found) == 3
                 and all(i.state in ("SUCCEEDED", "ERROR") for i in found) and found, "the VBI night")
    assert {i.state for i in night} == {"SUCCEEDED"}, [(i.recipe, i.state_reason) for i in night]
    [full] = [r for r in runs.all_runs() if r.candidate_id == "bench_vbi" and r.recipe == "vbi-l1"]
    base = ["--endpoint-url", stack.endpoint_url, "--stage", stack.settings.stage]
    result = CliRunner().invoke(cli, [*base, "recipes", "set-value", "vbi-l1", "light_level_tolerance", VBI_TOLERANCE,
                                      "--effective-from", f"{VBI_NIGHT:%Y-%m-%d}", "--reason", "benchmark"])
    assert result.exit_code == 0, result.output
    service = campaign_service(stack.settings)
    planned = time.perf_counter()
    plan = service.planner.plan(Change(parameter="light_level_tolerance"), "bench")
    plan_s = time.perf_counter() - planned
    [item] = [i for i in plan["items"] if i["dataset_id"] == full.dataset_id]
    service.start_plan(plan["plan_id"], "bench-light-level", "bench", "benchmark")
    instance_ids = campaigns.get("bench-light-level").instance_ids
    wait(lambda: all(recipe_instances.get(i).state in ("SUCCEEDED", "ERROR") for i in instance_ids), "the reprocessing")
    [again] = [r for r in runs.all_runs() if r.instance_id == item["copy_instance_id"]]
    assert again.status == "SUCCEEDED", again.error
    work = stack.settings.bucket_name("work")
    records = {task: documents.get_json(s3, work, layout.task_record_key(again.run_id, task))
               for task in item["tasks_rerun"] + item["tasks_reused"]}
    reran = [t for t, r in records.items() if "reused_from" not in r]
    reused = [t for t, r in records.items() if "reused_from" in r]
    durations = {run.run_id: {r["task"]: r["duration_s"] for r in task_records(s3, work, run.run_id)}
                 for run in (full, again)}
    cpu = {run_id: sum(seconds.values()) for run_id, seconds in durations.items()}

    lines = [f"vbi-l1 on {frames} observe frames of {size}x{size} (masters from 4 darks and 4 gains, "
             f"chunk_frames {full.configuration['options']['chunk_frames']})",
             f"plan (--parameter light_level_tolerance, {plan['totals']['datasets']} dataset(s) with the night summary): "
             f"{plan_s:.2f} s; re-runs {', '.join(item['tasks_rerun'])}; reuses {', '.join(item['tasks_reused'])}"]
    for label, run in (("full run", full), ("light_level_tolerance changed", again)):
        cost = run.cost
        lines.append(f"{label:<30} {run_seconds(run):6.2f} s  task time {cpu[run.run_id]:6.2f} s  "
                     f"{cost['batch_vcpu_s']:7.1f} vCPU-s  ${cost['usd']:.6f}  {cost['tasks_reused']} task(s) reused")
    lines.append(f"re-ran: {', '.join(reran)}; reused: {', '.join(reused)}")
    for label, run in (("task seconds, full", full), ("task seconds, reprocessing", again)):
        lines.append(f"{label}: " + ", ".join(f"{t} {s:.2f}" for t, s in durations[run.run_id].items()))
    for label, run in (("states, full", full), ("states, reprocessing", again)):
        lines.append(f"{label}: {timeline(sfn, run)}")
    lines.append(f"ratio (reprocessing / full):  time {run_seconds(again) / run_seconds(full):.2f} (target <= 0.20), "
                 f"task time {cpu[again.run_id] / max(cpu[full.run_id], 0.01):.2f}")
    return lines


def task_records(s3, work: str, run_id: str) -> list[dict]:
    """Every task record of the run (a gathered data-parallel task's sums its chunks' time)."""
    run = documents.get_json(s3, work, layout.run_document_key(run_id))
    return [documents.get_json(s3, work, layout.task_record_key(run_id, task["name"]))
            for task in run["recipe_definition"]["tasks"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=64, help="frame-census: observe frames")
    parser.add_argument("--size", type=int, default=512, help="frame-census: frame width and height in pixels")
    parser.add_argument("--vbi-frames", type=int, default=64, help="vbi-l1: observe frames")
    parser.add_argument("--vbi-size", type=int, default=256, help="vbi-l1: frame width and height in pixels")
    parser.add_argument("--only", choices=("frame-census", "vbi-l1"), help="run one case only")
    args = parser.parse_args()
    os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    load = os.getloadavg()
    with LocalStack(port=0, stage="bench", log_level="ERROR", submit_interval_s=0.5) as stack:
        tables.bind(stack.settings)
        session = boto3.Session(region_name=stack.settings.region)
        s3, sfn = session.client("s3"), session.client("stepfunctions")
        census = frame_census(stack, s3, sfn, args.frames, args.size) if args.only != "vbi-l1" else []
        vbi = vbi_l1(stack, s3, sfn, args.vbi_frames, args.vbi_size) if args.only != "frame-census" else []
    print(f"{os.cpu_count()} cores; load average {load[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
    print("\n".join(census))
    print()
    print("\n".join(vbi))


if __name__ == "__main__":
    main()
