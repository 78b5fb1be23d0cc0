"""Hosted pipeline benchmark: DKIST's VBI L0 -> L1 workflow through obsflow against a bare host, same frames, same run.

The local stack: a VBI candidate naming ``l0-to-l1-vbi-no-speckle`` (dkist-processing-vbi 1.23.4) is uploaded as
the summit sends it; measured from its run's start to SUCCEEDED: every node a Batch job of its own (forked from the
environment's warm node server, or, with --cold too, started as a fresh process), then obsflow's dataset products
(inventory, ASDF, quality report) and the catalogue.

The bare host: the same 16 nodes of the same run, in order, in ONE process of the pipeline's own Python, with
obsflow's host methods (staging, collection) and the same Redis, metadata store and scratch: what the pipeline costs
with no orchestration at all. It makes no inventory, ASDF or report and catalogues nothing, so the ratio is an upper
bound of obsflow's overhead.

Also printed: the environment's build time and size (a fresh build with --rebuild, else as recorded at its build)
and the cost of one node's start (the framework's imports, cold, against a fork from the warm server).

Target (issue "Run the field's own pipelines"): ratio at most 1.5.

    python bench/pipelines.py [--frames 8] [--size 64] [--cold] [--rebuild]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = "dkist-processing-vbi==1.23.4"
RECIPE = "l0-to-l1-vbi-no-speckle"

BARE_HOST = """
import importlib, json, sys, time
sys.path.insert(0, sys.argv[1])
from run_node import hosted
nodes = json.loads(sys.argv[2])
started = time.perf_counter()
for node in nodes:
    module, _, name = node.partition(":")
    task = hosted(getattr(importlib.import_module(module), name))
    with task(recipe_run_id=int(sys.argv[3]), workflow_name=sys.argv[4], workflow_version=sys.argv[5]) as t:
        t()
print("BARE", time.perf_counter() - started)
"""


def median_seconds(command: list[str], env: dict | None = None, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def process(stack, candidate_id: str, frames: int, size: int, warm: bool) -> tuple[float, float, object]:
    """Seconds from the run's start to its last DKIST node's end and to SUCCEEDED (after obsflow's dataset products
    and the catalogue), nodes forked warm or each a fresh process; and the run."""
    import boto3

    from obsflow.simulate import simulate_candidate
    from obsflow.tables import runs

    os.environ["OBSFLOW_PIPELINE_NODE_SERVER"] = "true" if warm else "false"  # read by each job as it starts
    candidate = simulate_candidate(candidate_id, n_dark=4, n_gain=4, n_observe=frames, shape=(size, size), seed=1,
                                   recipe=RECIPE)
    s3 = boto3.client("s3", endpoint_url=stack.endpoint_url, region_name=stack.settings.region)
    for key, body in [candidate.candidate_object(), *candidate.frame_objects(), candidate.manifest_object()]:
        s3.put_object(Bucket=stack.settings.ingest_bucket_name, Key=key, Body=body)
    deadline = time.monotonic() + 1200
    while time.monotonic() < deadline:
        done = [r for r in runs.all_runs() if r.candidate_id == candidate_id and r.status in ("SUCCEEDED", "FAILED")]
        if done:
            break
        time.sleep(0.5)
    run = done[0]
    if run.status != "SUCCEEDED":
        raise SystemExit(f"the run failed: {run.error}")
    from obsflow.runs import documents, layout

    from obsflow.recipes import registry

    records = {task.name: documents.get_json(s3, stack.settings.bucket_name("work"),
                                             layout.task_record_key(run.run_id, task.name))
               for task in registry.registered(RECIPE).tasks}
    nodes_end = dt.datetime.fromisoformat(records["teardown"]["finished_at"])
    inside = sum(r["duration_s"] for name, r in records.items() if name != "dataset_products")
    print(f"  {candidate_id}: {inside:.1f} s inside the 16 nodes' jobs (their sum), dataset_products "
          f"{records['dataset_products']['duration_s']:.1f} s", flush=True)
    return (nodes_end - run.started_at).total_seconds(), (run.finished_at - run.started_at).total_seconds(), run


def bare_host(stack, run) -> dict:
    """The same nodes of the same run, in order, in one process of the pipeline's Python (the stack still up)."""
    import boto3

    from obsflow.pipelines import environments
    from obsflow.pipelines.records import link_key, recipe_run_id
    from obsflow.recipes import registry
    from obsflow.runs import documents
    from obsflow_tasks.pipeline import ASTROPY_CONFIGURATION, mesh_config

    recipe = registry.registered(RECIPE)
    environment = environments.find(stack.settings, recipe.pipeline.package, recipe.pipeline.version)
    s3 = boto3.client("s3", endpoint_url=stack.endpoint_url, region_name=stack.settings.region)
    bare_id = recipe_run_id(run.run_id + "-bare")  # the same run's records, its own scratch and inventory
    documents.put_json(s3, stack.settings.bucket_name("work"), link_key(bare_id), {"run_id": run.run_id})
    with tempfile.TemporaryDirectory(prefix="obsflow-bare-") as scratch:
        (Path(scratch) / "config" / "astropy").mkdir(parents=True)
        (Path(scratch) / "config" / "astropy" / "astropy.cfg").write_text(ASTROPY_CONFIGURATION)
        env = {**os.environ, "SCRATCH_BASE_PATH": scratch, "BUILD_VERSION": recipe.version,
               "MESH_CONFIG": json.dumps(mesh_config(stack.settings.pipeline_services)),
               "XDG_CONFIG_HOME": str(Path(scratch) / "config"), "DOCS_BASE_URL": "https://docs.dkist.nso.edu",
               "OBSFLOW_COLLECT_TO": str(Path(scratch) / "collected.jsonl")}
        nodes = [t.pipeline_task for level in recipe.levels() for t in level if t.pipeline_task]
        started = time.perf_counter()
        done = subprocess.run([str(environment.python), "-c", BARE_HOST, str(environments.host_script("")),
                               json.dumps(nodes), str(bare_id), recipe.pipeline.workflow, recipe.version],
                              env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"the bare host failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        work = float(next(line for line in done.stdout.splitlines() if line.startswith("BARE")).split()[1])
    return {"wall": wall, "nodes": len(nodes), "work": work, "environment": environment}


def start_costs(environment) -> dict:
    """One node's start: the framework's imports in a fresh process, against a fork from a warm server."""
    from obsflow.pipelines import node_servers

    cold = median_seconds([str(environment.python), "-c", "import logging; logging.disable(50); "
                           "import dkist_processing_common.tasks, dkist_processing_vbi.tasks"])
    bare = median_seconds([str(environment.python), "-c", "pass"])
    host_environment = {"BENCH": str(time.time())}
    forks = []
    connection = node_servers.connect(environment, host_environment, lambda _: None)
    connection.close()
    for _ in range(5):
        connection = node_servers.connect(environment, host_environment, lambda _: None)
        started = time.perf_counter()
        node_servers.run_node(connection, ["--help"], {}, lambda _: None)
        forks.append(time.perf_counter() - started)
    return {"python": bare, "cold": cold, "warm": statistics.median(forks)}


def rebuild() -> tuple[float, int]:
    from obsflow.pipelines import environments
    from obsflow.settings import Settings

    with tempfile.TemporaryDirectory(prefix="obsflow-bench-env-") as directory:
        started = time.perf_counter()
        built = environments.build(Settings(stage="bench", pipelines_dir=directory),
                                   *environments.parse_requirement(PIPELINE), log=lambda _: None)
        return time.perf_counter() - started, built.description["size_bytes"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--cold", action="store_true", help="also run the stack with every node a fresh process")
    parser.add_argument("--rebuild", action="store_true", help="build the environment afresh to time it")
    args = parser.parse_args()
    os.environ.setdefault("OBSFLOW_PIPELINES_DIR", str(ROOT / "build" / "pipelines"))
    from obsflow.pipelines import environments
    from obsflow.settings import Settings

    settings = Settings(stage="bench")
    print(f"building or finding {PIPELINE} in {environments.pipelines_dir(settings)} ...", flush=True)
    environment = environments.build(settings, *environments.parse_requirement(PIPELINE), log=lambda _: None)
    build_s, size = (rebuild() if args.rebuild else
                     (environment.description["build_seconds"], environment.description["size_bytes"]))
    print(f"{args.frames} observe frames of {args.size}x{args.size} (+ 4 darks, 4 gains), {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    from click.testing import CliRunner

    from obsflow import tables
    from obsflow.cli import main as cli
    from obsflow.local.stack import LocalStack

    with LocalStack(port=0, stage="bench", log_level="ERROR", submit_interval_s=0.5) as stack:
        tables.bind(stack.settings)
        added = CliRunner().invoke(cli, ["--endpoint-url", stack.endpoint_url, "--stage", "bench", "pipelines", "add",
                                         PIPELINE])
        assert added.exit_code == 0, added.output
        warm_s, warm_total, run = process(stack, "bench_warm", args.frames, args.size, warm=True)
        bare = bare_host(stack, run)
        cold_s, cold_total, _ = process(stack, "bench_cold", args.frames, args.size, warm=False) if args.cold \
            else (None, None, None)
        costs = start_costs(environment)
    print()
    print("| figure | value | target |")
    print("| --- | --- | --- |")
    print(f"| environment build (venv + pip, {'fresh' if args.rebuild else 'as recorded'}) | {build_s:.0f} s | |")
    print(f"| environment size | {size / 1e9:.2f} GB | |")
    print(f"| bare host: {bare['nodes']} nodes in one process | {bare['wall']:.1f} s ({bare['work']:.1f} s "
          "after its imports) | |")
    print(f"| local stack, the same 16 nodes, forked warm | {warm_s:.1f} s, ratio **{warm_s / bare['wall']:.2f}** | "
          "<= 1.5 |")
    print(f"| local stack, the whole run (+ dataset products, catalogue) | {warm_total:.1f} s | |")
    if cold_s is not None:
        print(f"| local stack, the same 16 nodes, each a fresh process | {cold_s:.1f} s, ratio "
              f"{cold_s / bare['wall']:.2f} (whole run {cold_total:.1f} s) | |")
    print(f"| one node's start: fresh process with the framework's imports | {costs['cold']:.2f} s "
          f"(`python -c pass` {costs['python']:.3f} s) | |")
    print(f"| one node's start: fork from the warm node server | {costs['warm']:.3f} s | |")


if __name__ == "__main__":
    sys.exit(main())
