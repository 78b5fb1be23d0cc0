"""Batch: jobs that run.

moto's Docker-free backend marks every job SUCCEEDED without running it. Here each job
runs its command as a process of this virtualenv (the task image's entrypoint forked from
a warm server, see obsflow.local.task_processes; any other command as a subprocess), in
the background, and ends SUCCEEDED or FAILED by its exit code, with its output in
CloudWatch Logs (the job definition's awslogs group) and its exit code in DescribeJobs,
like on AWS.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import threading
import time

from obsflow.local import task_processes


def _job_command_and_environment(job) -> tuple[list[str], dict[str, str]]:
    properties = job.job_definition.container_properties or {}
    overrides = job.container_overrides or {}
    command = list(overrides.get("command") or properties.get("command") or [])
    if command and command[0] in ("python", "python3"):
        command[0] = sys.executable  # the image's python is this virtualenv's
    # A job's code comes from the image (this environment), never from the directory the stack was started in
    environment = {**os.environ, "PYTHONSAFEPATH": "1"}
    environment.pop("AWS_BATCH_JOB_ARRAY_INDEX", None)
    for variable in [*properties.get("environment", []), *overrides.get("environment", [])]:
        environment[variable["name"]] = variable["value"]
    if "index" in (job.array_properties or {}):  # a child of an array job, as Batch tells it its index
        environment["AWS_BATCH_JOB_ARRAY_INDEX"] = str(job.array_properties["index"])
    return command, environment


# The children of array jobs run side by side, as many at a time as this machine has cores.
_CHILD_SLOTS = threading.BoundedSemaphore(os.cpu_count() or 1)


def _run_job(job) -> None:
    if "index" in (job.array_properties or {}):
        with _CHILD_SLOTS:
            _run_command(job)
    else:
        _run_command(job)


def _watch_array(job) -> None:
    """An array job has no command of its own: it ends when its children have, FAILED if any failed."""
    while getattr(job, "_child_jobs", None) is None:  # moto attaches them once submit_job has made them all
        time.sleep(0.05)
    while not all(child.job_stopped for child in job._child_jobs):
        time.sleep(0.1)
    failed = [child.array_properties["index"] for child in job._child_jobs if child.status != "SUCCEEDED"]
    if failed:
        job.job_stopped_reason = f"{len(failed)} of {len(job._child_jobs)} child job(s) failed: index {failed}"
    job._mark_stopped(success=not failed)


_commands: dict[str, subprocess.Popen] = {}  # a job's process that is no task command, while it runs


def _run_command(job) -> None:
    if job.stop:  # terminated before it started (SUBMITTED to RUNNABLE): Batch fails it without running it
        job._mark_stopped(success=False)
        return
    command, environment = _job_command_and_environment(job)
    started = time.time()
    try:
        if task_processes.is_task_command(command):
            exit_code, output = task_processes.run_task_command(command, environment, job.job_id,
                                                                terminated=lambda: job.stop)
        else:
            with subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True) as process:
                _commands[job.job_id] = process
                if job.stop:  # terminated while it started, before TerminateJob could find its process
                    process.kill()
                output = process.communicate()[0]
            _commands.pop(job.job_id, None)
            exit_code = process.returncode
    except OSError as exc:
        exit_code, output = 127, f"cannot start {command!r}: {exc}"
    job.exit_code = exit_code
    if not job.stop:  # a terminated job keeps the reason it was terminated for, as on AWS
        job.job_stopped_reason = "Essential container in task exited"
    log_options = ((job.job_definition.container_properties or {}).get("logConfiguration") or {}).get("options") or {}
    job._log_group = log_options.get("awslogs-group", job._log_group)  # moto ignores the job's log group
    logs = job._log_backend
    logs.ensure_log_group(job._log_group)
    logs.ensure_log_stream(job._log_group, job._stream_name)
    stamp = int(started * 1000)
    events = [{"timestamp": stamp, "message": line} for line in output.splitlines() if line.strip()]
    if events:
        logs.put_log_events(job._log_group, job._stream_name, events)
    job._mark_stopped(success=exit_code == 0)


def _terminate_with_its_process(original):
    """TerminateJob also stops the job's task process (moto only marks the job). It marks the job first: a job
    whose process is not yet registered finds the mark once it is (_run_command), so either side stops it."""

    def terminate(self, reason: str) -> None:
        original(self, reason)
        if not task_processes.kill(self.job_id) and (process := _commands.get(self.job_id)) is not None:
            process.kill()

    terminate.patched = True
    return terminate


def _describe_job_with_exit_code(original):
    """moto drops the container's exit code from DescribeJobs; AWS reports it (tickets use it)."""

    def describe(self) -> dict:
        result = original(self)
        if self.exit_code is not None and isinstance(result.get("container"), dict):
            result["container"]["exitCode"] = self.exit_code
        return result

    describe.patched = True
    return describe


def _start_job(self, include_start_attempt: bool, job) -> None:
    self.backend._jobs[job.job_id] = job
    job.job_started_at = datetime.datetime.now()
    job.log_stream_name = job._stream_name
    if include_start_attempt:
        job._start_attempt()
    parent = "size" in (job.array_properties or {})
    threading.Thread(target=_watch_array if parent else _run_job, args=(job,), name=f"batch-job-{job.job_name}",
                     daemon=True).start()


class _JobRegistry(dict):
    """moto's jobs by id, iterated as a snapshot: DescribeJobs walks the jobs in one request thread while
    SubmitJob adds an array job's children in another. A lock, not the GIL: copying 20,000 items allocates, and
    a garbage collection then may let another thread in."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()

    def __setitem__(self, key, value):
        with self._lock:
            dict.__setitem__(self, key, value)

    def __delitem__(self, key):
        with self._lock:
            dict.__delitem__(self, key)

    def pop(self, *args):
        with self._lock:
            return dict.pop(self, *args)

    def items(self):
        with self._lock:
            return list(dict.items(self))

    def values(self):
        with self._lock:
            return list(dict.values(self))

    def keys(self):
        with self._lock:
            return list(dict.keys(self))

    def __iter__(self):
        return iter(self.keys())


def _with_job_registry(init):
    def made(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self._jobs = _JobRegistry()

    made.patched = True
    return made


def apply() -> None:
    from moto.batch.models import BatchBackend, Job
    from moto.batch_simple.models import BatchSimpleBackend

    BatchSimpleBackend._mark_job_as_finished = _start_job
    if not getattr(Job.describe, "patched", False):
        Job.describe = _describe_job_with_exit_code(Job.describe)
    if not getattr(Job.terminate, "patched", False):
        Job.terminate = _terminate_with_its_process(Job.terminate)
    if not getattr(BatchBackend.__init__, "patched", False):
        BatchBackend.__init__ = _with_job_registry(BatchBackend.__init__)
