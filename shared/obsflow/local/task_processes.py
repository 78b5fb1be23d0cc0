"""Task processes for the local stack's Batch jobs, forked from a warm server.

A task process on its own spends one to four seconds importing numpy, astropy and
matplotlib and loading DKIST's header schemas and asdf's extensions, often longer
than the task itself. Locally each job is instead forked from a server process that
did that once (multiprocessing's forkserver, its preload list below): the job still
gets a process of its own, with its own environment, output and exit code, as a
container would. On AWS every job is a container of the task image, unchanged.

As in any program using multiprocessing, a script that starts the local stack needs an
``if __name__ == "__main__":`` guard: each task process imports the script's main module.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable

from obsflow import faults

# What a task imports, and what it loads once per process (obsflow_tasks.warm).
PRELOAD = ["numpy", "astropy.io.fits", "obsflow_tasks.runtime", "obsflow_tasks.warm"]
_context = None
_context_lock = threading.Lock()


def _forkserver():
    global _context
    with _context_lock:
        if _context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(PRELOAD)
            _context = context
        return _context


def start_server() -> None:
    """Start the warm server now (in the background), so that the first job does not wait for it."""

    def start() -> None:
        from multiprocessing import forkserver

        _forkserver()
        forkserver.ensure_running()

    threading.Thread(target=start, name="task-process-server", daemon=True).start()


def is_task_command(command: list[str]) -> bool:
    """``python -m obsflow_tasks ...``, the task image's own command line."""
    return len(command) >= 3 and command[1:3] == ["-m", "obsflow_tasks"]


def _task_main(arguments: list[str], environment: dict[str, str], output_path: str) -> None:
    """In the forked process: the job's environment and output, then the task image's entrypoint."""
    os.environ.clear()
    os.environ.update(environment)
    with open(output_path, "wb") as output:
        os.dup2(output.fileno(), 1)
        os.dup2(output.fileno(), 2)
    from obsflow import settings

    settings.get_settings.cache_clear()
    from obsflow_tasks.runtime import main

    try:
        code = main(arguments)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    with open(output_path + ".code", "w") as recorded:  # see run_task_command
        recorded.write(str(code))
    sys.exit(code)


_running: dict[str, multiprocessing.process.BaseProcess] = {}  # by Batch job id, while it runs


def kill(job_id: str) -> bool:
    """Stop a job's task process (TerminateJob of a running job); False if none runs."""
    process = _running.get(job_id)
    if process is None:
        return False
    process.kill()
    return True


def run_task_command(command: list[str], environment: dict[str, str], job_id: str = "",
                     terminated: Callable[[], bool] = lambda: False) -> tuple[int, str]:
    """Run ``python -m obsflow_tasks ARGS`` in a process forked from the warm server: (exit code, output).
    ``terminated`` says whether its job was terminated while the process started (``kill`` found none then)."""
    # In a folder of the job's own that only this user can enter (0700): nobody can plant a link where it writes
    folder = tempfile.mkdtemp(prefix="obsflow-job-")
    output_path = os.path.join(folder, "output.log")
    try:
        open(output_path, "xb").close()  # there even for a job killed before it writes
        process = _forkserver().Process(target=_task_main, args=(command[3:], environment, output_path), daemon=False)
        process.start()
        _running[job_id] = process
        if terminated():
            process.kill()
        killer = None
        if faults.strike("task:killed-mid-run"):  # as a lost Fargate task: the job fails, the run gets a ticket
            killer = threading.Timer(random.uniform(0.01, 0.05), process.kill)
            killer.start()
        process.join()
        if killer is not None:
            killer.cancel()
        with open(output_path, encoding="utf-8", errors="replace") as output:
            return _exit_code(process, output_path), output.read()
    finally:
        _running.pop(job_id, None)
        shutil.rmtree(folder, ignore_errors=True)


def _exit_code(process, output_path: str) -> int:
    """The task's own exit code when it got to write it: the forkserver reports 255 when it loses a child's
    status (seen under load, after a task that had finished and recorded its outputs); else the process's."""
    if os.path.exists(output_path + ".code"):
        with open(output_path + ".code") as recorded:
            return int(recorded.read() or 1)
    return process.exitcode if process.exitcode >= 0 else 128 - process.exitcode
