"""The task entrypoint: stage inputs, run one task, record outputs and provenance.

Exit codes say what kind of failure it was, for the ticket's suggested action:
0 done (or already done: a redriven run reuses recorded outputs, and a task whose
digest another run already produced reuses that run's outputs), 1 science/data,
2 configuration, 3 infrastructure (S3 unavailable, ...), 64 usage.

Every job records what it used, whatever its end, beside the run's task records (``runs.accounting``): its seconds
from its process's start, its resource class, chunk, image pull where Fargate's task metadata says it, and every
AWS request it made (``obsflow.metering``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import hashlib
import importlib
import importlib.metadata
import json
import os
import platform
import sys
import time
import traceback
import urllib.request
import uuid

from botocore.exceptions import BotoCoreError, ClientError

import obsflow
from obsflow import aws, metering
from obsflow.errors import NotFound, TransientError
from obsflow.recipes import registry
from obsflow.recipes.model import Recipe, RecipeError
from obsflow.runs import digests, documents, layout
from obsflow.runs.reuse import outputs_present, reused_record
from obsflow.settings import get_settings

from obsflow_tasks.base import ConfigurationFailure, InfrastructureFailure, Task, TaskContext, TaskFailure


class SimulatedOutage(InfrastructureFailure):
    """A deliberate infrastructure-kind failure (exit code 3)."""

LIBRARIES = ("obsflow", "numpy", "astropy", "boto3", "dkist-fits-specifications", "dkist-header-validator",
             "asdf", "matplotlib", "av")
EXIT_INFRASTRUCTURE, EXIT_USAGE = 3, 64


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _verified_input_dataset(s3, dataset: dict) -> dict:
    """The run's input dataset document, as planned: its SHA-256 must be the one recorded at planning."""
    body = documents.get_bytes(s3, dataset["bucket"], dataset["key"])
    found = hashlib.sha256(body).hexdigest()
    if dataset.get("sha256") and found != dataset["sha256"]:
        raise ConfigurationFailure(
            f"the input dataset s3://{dataset['bucket']}/{dataset['key']} changed after planning (SHA-256 {found[:12]}, "
            f"planned {dataset['sha256'][:12]}); nothing is processed from it: restore it, or plan the instance again "
            "(`obsflow reprocess plan --datasets ...`)")
    return json.loads(body)


def load_task_class(entrypoint: str) -> type[Task]:
    module, _, name = entrypoint.partition(":")
    return getattr(importlib.import_module(module), name)


HANG_S = 600  # how long a task with an injected hang waits before it goes on


def injected_fault(context: TaskContext, run_id: str) -> None:
    """Fail as a fault injected for this task of this run says (``layout.fault_key``): a configuration
    error every time, an outage once (a redrive then succeeds), or a hang (the task waits ten minutes, as a
    stuck one would: for cancelling, timeouts and game days)."""
    key = layout.fault_key(run_id, context.task.name)
    if not documents.exists(context.s3, context.work_bucket, key):
        return
    fault = documents.get_json(context.s3, context.work_bucket, key)
    if fault.get("chunk") is not None and fault["chunk"] != context.chunk[0]:
        return  # a fault of another chunk
    if fault.get("kind") == "hang":
        time.sleep(HANG_S)
    if fault.get("kind") == "configuration":
        raise ConfigurationFailure(f"failing on purpose: a configuration fault is injected into {context.task.name} "
                                   f"of run {run_id}; retry the run (a new run has no fault)")
    if not fault.get("happened"):
        documents.put_json(context.s3, context.work_bucket, key, {**fault, "happened": True})
        raise SimulatedOutage(f"failing once on purpose: an outage is injected into {context.task.name} of run "
                              f"{run_id}; a redrive of the run succeeds")


def use_code_path(image: str) -> None:
    """A developer campaign's task image, locally: ``path:DIR`` puts the task modules of DIR/obsflow_tasks
    before the installed ones (on AWS the image is the job definition's; nothing to do here)."""
    if not image.startswith("path:"):
        return
    directory = os.path.join(os.path.abspath(image[len("path:"):]), "obsflow_tasks")
    if not os.path.isdir(directory):
        raise ConfigurationFailure(f"the task image {image} has no obsflow_tasks package at {directory}")
    import obsflow_tasks

    if directory not in obsflow_tasks.__path__:
        obsflow_tasks.__path__.insert(0, directory)


def reusable(s3, bucket: str, digest: str) -> dict | None:
    """The record of an earlier run that produced this digest's outputs, if they are all still there."""
    try:
        record = documents.get_json(s3, bucket, layout.task_output_record_key(digest))
    except NotFound:
        return None
    return record if outputs_present(record, documents.keys(s3, bucket, layout.task_output_prefix(digest))) else None


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m obsflow_tasks",
        description="Run one task of an obsflow recipe for a run (what each Batch job runs).",
    )
    parser.add_argument("recipe", help="recipe name, e.g. frame-census")
    parser.add_argument("task", help="task name within the recipe")
    parser.add_argument("--run-id", required=True, help="the recipe run (its run document is read from the work bucket)")
    parser.add_argument("--manual", action="store_true", help="record that a person ran this task by hand")
    parser.add_argument("--operator", default=None, help="who ran it (with --manual; default: the login name)")
    parser.add_argument("--note", default=None, help="why it was run by hand (with --manual)")
    parser.add_argument("--force", action="store_true",
                        help="run even if the task already succeeded for this run, or its outputs could be reused")
    parser.add_argument("--gather", action="store_true",
                        help="of a data-parallel task: record its chunks' outputs as the task's (the last chunk to "
                             "finish does it too; state machines made before that run a gather job after the array "
                             "job, each of whose chunk jobs reads its index from AWS_BATCH_JOB_ARRAY_INDEX)")
    return parser.parse_args(argv)


def array_index() -> int | None:
    """The chunk this job is, in an AWS Batch array job; None in any other job."""
    value = os.environ.get("AWS_BATCH_JOB_ARRAY_INDEX")
    return int(value) if value not in (None, "") else None


def gather_if_last(s3, work: str, run: dict, task: str, log=print) -> int:
    """A chunk that finds every chunk of its task recorded and succeeded merges them into the task's record, so
    the array job ends with the task done and no gather job starts (on AWS, a Fargate start saved per task).
    Each chunk writes its record before it looks, so the last one to finish sees them all; two that finish
    together may both merge, to the same record."""
    count = run.get("chunks", {}).get(task, 1)
    expected = [layout.chunk_record_key(run["run_id"], task, index) for index in range(count)]
    prefix = expected[0].rsplit("/", 1)[0] + "/"
    if not set(expected) <= documents.keys(s3, work, prefix):  # only the chunk records count, not other files
        return 0
    records = [documents.get_json(s3, work, key) for key in expected]
    if any(r["status"] != "succeeded" for r in records):
        return 0  # the failed chunk fails the array job; it says why
    record_gathered(s3, work, run, task, records, log)
    return 0


def gather_chunks(s3, work: str, run: dict, task: str, log=print) -> int:
    """A gather job (state machines made before the last chunk recorded its task): every chunk's record, merged."""
    count = run.get("chunks", {}).get(task, 1)
    records = []
    for index in range(count):
        try:
            records.append(documents.get_json(s3, work, layout.chunk_record_key(run["run_id"], task, index)))
        except NotFound:
            print(f"{run['recipe']} {task}: chunk {index} of {count} of run {run['run_id']} has no record; redrive the "
                  "run (the chunks that finished are not run again)", file=sys.stderr)
            return EXIT_INFRASTRUCTURE
    unfinished = [i for i, r in enumerate(records) if r["status"] != "succeeded"]
    if unfinished:
        print(f"{run['recipe']} {task}: chunk(s) {unfinished} of run {run['run_id']} did not succeed", file=sys.stderr)
        return EXIT_INFRASTRUCTURE
    record_gathered(s3, work, run, task, records, log)
    return 0


def record_gathered(s3, work: str, run: dict, task: str, records: list[dict], log=print) -> None:
    """The task's record from its chunks' (all succeeded, in chunk order): outputs in chunk order, time summed."""
    count, first = len(records), records[0]
    record = {key: first[key] for key in ("task", "entrypoint", "recipe", "recipe_version", "run_id", "resource_class",
                                          "code_version", "libraries", "python", "manual", "operator", "note")}
    record.update(
        chunks=count, status="succeeded", error=None, digest=layout.digest_of([r["digest"] for r in records]),
        started_at=min(r["started_at"] for r in records), finished_at=max(r["finished_at"] for r in records),
        duration_s=round(sum(r["duration_s"] for r in records), 3), outputs=[o for r in records for o in r["outputs"]],
        host=sorted({r["host"] for r in records}),
    )
    if all("reused_from" in r for r in records):
        record["reused_from"] = first["reused_from"]
    documents.put_json(s3, work, layout.task_record_key(run["run_id"], task), record)
    log(f"{run['recipe']} {task}: gathered {count} chunk(s), {len(record['outputs'])} output(s), "
        f"{record['duration_s']:.2f} s of work")


def failure_of(exc: Exception) -> tuple[int, str]:
    """A task's exception as its exit code and recorded error: what kind of failure it is decides what to do."""
    if isinstance(exc, TaskFailure):
        return exc.exit_code, f"{exc.kind}: {exc}"
    if isinstance(exc, (ClientError, BotoCoreError, TransientError)):
        return EXIT_INFRASTRUCTURE, f"infrastructure: {exc}"
    traceback.print_exc()
    if isinstance(exc, ImportError):  # the task's code, or a library it needs, is not in this image: not the science
        return EXIT_INFRASTRUCTURE, f"infrastructure: {type(exc).__name__}: {exc} (the task image lacks code it needs)"
    return 1, f"science: {type(exc).__name__}: {exc}"  # an unexpected error in task code


def run_task(args: argparse.Namespace, log=print, job: metering.Meter | None = None) -> int:
    """``job``: the job's meter, told which task, chunk and resource class it is once the recipe says."""
    job = job or metering.Meter()
    settings = get_settings()
    s3 = aws.client(settings, "s3")
    work = settings.bucket_name("work")
    run = documents.get_json(s3, work, layout.run_document_key(args.run_id))
    # The run carries its recipe's definition, so a version registered as data runs without a release.
    recipe = Recipe.model_validate(run["recipe_definition"]) if "recipe_definition" in run else \
        registry.get(args.recipe, run["recipe_version"])
    spec = recipe.task(args.task)
    job.labels.update(task=spec.name, resource_class=spec.resource_class)
    if args.gather:
        return gather_chunks(s3, work, run, spec.name, log)
    index = array_index() if spec.data_parallel else None
    job.labels["chunk"] = index
    chunk = (index, run.get("chunks", {}).get(spec.name, 1)) if index is not None else (0, 1)
    record_key = layout.task_record_key(args.run_id, spec.name) if index is None else \
        layout.chunk_record_key(args.run_id, spec.name, index)
    if not args.force and documents.exists(s3, work, record_key):
        previous = documents.get_json(s3, work, record_key)
        if previous.get("status") == "succeeded":
            log(f"{recipe.key} {spec.name}: already succeeded for run {args.run_id} at {previous['finished_at']}; "
                "reusing its recorded outputs")
            return 0 if index is None else gather_if_last(s3, work, run, spec.name, log)
    input_dataset = _verified_input_dataset(s3, run["input_dataset"])
    image = run.get("task_image") or ""
    use_code_path(image)
    digest = digests.task_digests(recipe, run["configuration"], digests.inputs_digest(input_dataset),
                                  obsflow.__version__, args.run_id, image, run.get("rerun_from_task"))[spec.name]
    if index is not None:  # each chunk's outputs are its own, and reused as such
        digest = digests.chunk_digest(digest, *chunk)
    manual = args.manual or bool(run.get("manual"))
    job.labels["manual"] = manual  # run by hand: on an operator's machine, not Fargate
    context = TaskContext(s3=s3, work_bucket=work, run=run, recipe=recipe, task=spec, input_dataset=input_dataset,
                          digest=digest, manual=manual, chunk=chunk)
    record = {
        "task": spec.name,
        "entrypoint": spec.entrypoint,
        "recipe": recipe.name,
        "recipe_version": recipe.version,
        "run_id": args.run_id,
        "resource_class": spec.resource_class,
        "code_version": obsflow.__version__,
        "libraries": library_versions(),
        "python": platform.python_version(),
        "host": platform.node(),
        "pid": os.getpid(),
        "manual": manual,
        "operator": (args.operator or getpass.getuser()) if manual else None,
        "note": args.note if manual else None,
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "digest": digest,
        **({"chunk": list(chunk)} if index is not None else {}),
    }
    started = time.perf_counter()
    of_chunk = f", chunk {chunk[0] + 1} of {chunk[1]}" if index is not None else ""
    log(f"{recipe.key} {spec.name}: starting for run {args.run_id} ({len(input_dataset['frames'])} input frames{of_chunk})")
    status, exit_code, error = "succeeded", 0, None
    try:
        injected_fault(context, args.run_id)
        # A person running a task by hand, or --force, means it: no reuse then.
        earlier = None if (manual or args.force) else reusable(s3, work, digest)
        if earlier is not None:
            record = reused_record(record, earlier)
            context.outputs = earlier["outputs"]
        else:
            load_task_class(spec.entrypoint)(context).run()
    except Exception as exc:  # noqa: BLE001  (classified: every failure of a task is recorded and said)
        status, (exit_code, error) = "failed", failure_of(exc)
    record.update(
        status=status,
        error=error,
        finished_at=dt.datetime.now(dt.timezone.utc).isoformat(),
        duration_s=round(time.perf_counter() - started, 3),
        outputs=context.outputs,
    )
    documents.put_json(s3, work, record_key, record)
    if error:
        print(f"{recipe.key} {spec.name} FAILED for run {args.run_id}: {error}", file=sys.stderr)
    elif "reused_from" in record:
        log(f"{recipe.key} {spec.name}: unchanged (digest {digest[:12]}); reusing the outputs of run "
            f"{record['reused_from']['run_id']}")
    else:
        if spec.reuse:
            documents.put_json(s3, work, layout.task_output_record_key(digest), record)
        log(f"{recipe.key} {spec.name}: done in {record['duration_s']:.2f} s, "
            f"{len(context.outputs)} output(s): {', '.join(o['name'] for o in context.outputs)}")
    if exit_code == 0 and index is not None:
        return gather_if_last(s3, work, run, spec.name, log)
    return exit_code


def seconds_since_process_start() -> float:
    """How long this process has run (Linux's /proc: what a container's start to now is, imports included); 0 where
    that cannot be read."""
    try:
        with open("/proc/self/stat") as stat:
            started_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        with open("/proc/uptime") as uptime:
            return max(0.0, float(uptime.read().split()[0]) - started_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def pull_seconds(task_metadata: dict) -> float | None:
    """The image pull's seconds in Fargate's task metadata (``PullStartedAt``, ``PullStoppedAt``); None without."""
    def when(text: str) -> dt.datetime:  # RFC 3339 with up to nanoseconds: Python reads microseconds
        head, _, fraction = text.replace("Z", "").partition(".")
        return dt.datetime.fromisoformat(head + ("." + fraction[:6] if fraction else ""))

    start, stop = task_metadata.get("PullStartedAt"), task_metadata.get("PullStoppedAt")
    if not start or not stop:
        return None
    return round(max(0.0, (when(stop) - when(start)).total_seconds()), 3)


def measured_pull_s() -> float | None:
    """This job's image pull, where it is a Fargate task (its task metadata endpoint); None elsewhere."""
    uri = os.environ.get("ECS_CONTAINER_METADATA_URI_V4")
    if not uri:
        return None
    try:
        with urllib.request.urlopen(f"{uri}/task", timeout=2) as response:  # noqa: S310 (the agent's local endpoint)
            return pull_seconds(json.load(response))
    except (OSError, ValueError):
        return None


def record_job_usage(run_id: str, usage: dict, exit_code: int) -> None:
    """What the job used (its meter's entry), kept with its run (``layout.usage_key``); a job that cannot record it
    says so and ends as it would have."""
    entry = {**usage, "exit_code": exit_code, "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    entry["pull_s"] = measured_pull_s()
    chunk = f"-chunk-{entry['chunk']:05d}" if entry.get("chunk") is not None else ""
    source = f"job-{entry.get('task')}{chunk}-{uuid.uuid4().hex[:12]}"
    document = {**entry, "source": source}
    document.update(s3_put_requests=document["s3_put_requests"] + 1,  # this record's own write
                    s3_bytes_written=document["s3_bytes_written"] + len(json.dumps(document)))
    try:
        settings = get_settings()
        documents.put_json(aws.client(settings, "s3"), settings.bucket_name("work"),
                           layout.usage_key(run_id, source), document)
    except Exception as exc:  # noqa: BLE001  (the run's cost then misses this job; the job's outcome stands)
        print(f"the usage of this job was not recorded: {exc}", file=sys.stderr)


def use_installed_earth_orientation() -> None:
    """Jobs have no internet: astropy uses the Earth-orientation tables its installed astropy-iers-data carries,
    however old, as the pipelines' own processes do (pipeline.ASTROPY_CONFIGURATION). By default it refuses them
    30 days after their last measurement, and every dataset's ASDF (dkist-inventory) needs them."""
    from astropy.utils import iers

    iers.conf.auto_download, iers.conf.auto_max_age, iers.conf.iers_degraded_accuracy = False, None, "warn"


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    use_installed_earth_orientation()
    # Everything this job asks of AWS from here on, and its seconds since its process started.
    with metering.metering_process(kind="job", task=args.task, resource_class=os.environ.get("OBSFLOW_RESOURCE_CLASS"),
                                   chunk=None, manual=args.manual, gather=args.gather) as job:
        job.started -= seconds_since_process_start()
        exit_code = EXIT_INFRASTRUCTURE
        try:
            exit_code = _run(args, job)
            return exit_code
        finally:
            record_job_usage(args.run_id, job.entry(), exit_code)


def _run(args: argparse.Namespace, job: metering.Meter) -> int:
    try:
        return run_task(args, job=job)
    except (NotFound, RecipeError, ConfigurationFailure) as exc:
        print(f"cannot run {args.recipe} {args.task} for run {args.run_id}: {exc}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError, TransientError) as exc:
        print(f"cannot run {args.recipe} {args.task} for run {args.run_id}: AWS unavailable: {exc}; "
              "redrive the run once it is back", file=sys.stderr)
        return EXIT_INFRASTRUCTURE
