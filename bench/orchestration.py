"""Orchestration benchmark on the local stack (Step Functions on moto, tasks as subprocesses).

Prints, for the frame-census recipe:
  - time from a candidate becoming READY to its first task starting;
  - the run's wall time against running the same task entrypoints directly, one after
    another, for the same run, and the overhead per task that follows;
  - Step Functions state transitions per run for 10 frames and for 1,000 frames
    (they must be equal: the state machine carries run ids, never frame lists).

    python bench/orchestration.py [--large 1000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import boto3

from obsflow import tables
from obsflow.local.stack import LocalStack
from obsflow.recipes import registry
from obsflow.simulate import simulate_candidate
from obsflow.tables import candidates, runs

FRAME_CENSUS = registry.get("frame-census")


def upload(s3, bucket: str, candidate) -> None:
    for key, body in [candidate.candidate_object(), *candidate.frame_objects(), candidate.manifest_object()]:
        s3.put_object(Bucket=bucket, Key=key, Body=body)


def wait_for_run(candidate_id: str, timeout_s: float = 900):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [r for r in runs.all_runs() if r.candidate_id == candidate_id and r.status in ("SUCCEEDED", "FAILED")]
        if found:
            return found[0]
        time.sleep(0.2)
    raise TimeoutError(f"no finished run for {candidate_id} after {timeout_s} s")


def history(sfn, execution_arn: str) -> list[dict]:
    events = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        events.extend(page["events"])
    return events


def transitions(events: list[dict]) -> int:
    """State transitions as AWS bills them: one per state entered."""
    return sum(1 for e in events if e["type"].endswith("StateEntered"))


def run_directly(run_id: str) -> float:
    """The same task entrypoints, one after another, for the same run (outside Step Functions and Batch)."""
    started = time.perf_counter()
    for level in FRAME_CENSUS.levels():
        for task in level:
            subprocess.run([sys.executable, "-m", "obsflow_tasks", FRAME_CENSUS.name, task.name, "--run-id", run_id,
                            "--force"], check=True, capture_output=True)
    return time.perf_counter() - started


def measure(stack: LocalStack, s3, sfn, name: str, n_observe: int, n_calibration: int) -> dict:
    candidate = simulate_candidate(name, n_dark=n_calibration, n_gain=n_calibration, n_observe=n_observe,
                                   shape=(16, 16), seed=5, recipe="frame-census")
    upload(s3, stack.settings.ingest_bucket_name, candidate)
    run = wait_for_run(name)
    assert run.status == "SUCCEEDED", run.error
    events = history(sfn, run.execution_arn)
    first_task = min(e["timestamp"] for e in events if e["type"] == "TaskStateEntered"
                     and e["stateEnteredEventDetails"]["name"] in {t.name for t in FRAME_CENSUS.tasks})
    ready_at = candidates.get(name).ready_at
    return {
        "frames": n_observe + 2 * n_calibration,
        "run_id": run.run_id,
        "ready_to_first_task_s": (first_task - ready_at).total_seconds(),
        "run_s": (run.finished_at - run.started_at).total_seconds(),
        "execution_s": (events[-1]["timestamp"] - events[0]["timestamp"]).total_seconds(),
        "transitions": transitions(events),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--large", type=int, default=1000, help="frames in the large dataset")
    args = parser.parse_args()
    os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    with LocalStack(port=0, stage="bench", log_level="ERROR", submit_interval_s=1.0) as stack:
        tables.bind(stack.settings)
        session = boto3.Session(region_name=stack.settings.region)
        s3, sfn = session.client("s3"), session.client("stepfunctions")
        small = measure(stack, s3, sfn, "bench_small", n_observe=6, n_calibration=2)
        calibration = max(1, args.large // 20)
        large = measure(stack, s3, sfn, "bench_large", n_observe=args.large - 2 * calibration, n_calibration=calibration)
        direct = run_directly(small["run_id"])

    n_tasks = len(FRAME_CENSUS.tasks)
    print(f"recipe {FRAME_CENSUS.key}: {n_tasks} tasks in {len(FRAME_CENSUS.levels())} levels")
    print(f"READY -> first task started:          {small['ready_to_first_task_s']:.2f} s")
    print(f"run (StartRun .. FinishRun), 10 frames: {small['run_s']:.2f} s; execution {small['execution_s']:.2f} s")
    print(f"same tasks run directly in sequence:  {direct:.2f} s")
    print(f"overhead per task:                    {(small['execution_s'] - direct) / n_tasks:.2f} s "
          f"(ratio execution/direct {small['execution_s'] / direct:.2f})")
    print(f"state transitions per run: {small['transitions']} for {small['frames']} frames, "
          f"{large['transitions']} for {large['frames']} frames "
          f"({'EQUAL' if small['transitions'] == large['transitions'] else 'NOT EQUAL'})")
    print(f"1,000-frame run: READY -> first task {large['ready_to_first_task_s']:.2f} s, execution {large['execution_s']:.2f} s")


if __name__ == "__main__":
    main()
