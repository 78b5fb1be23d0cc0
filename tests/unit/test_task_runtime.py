"""The task entrypoint and its image: what every Batch job runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from obsflow.recipes.asl import TASK_COMMAND
from obsflow_tasks.runtime import parse_arguments

ROOT = Path(__file__).resolve().parents[2]


def test_the_image_runs_the_task_entrypoint_as_a_non_root_user_from_a_slim_pinned_base():
    dockerfile = (ROOT / "containers/pipeline/Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11\.\d+-slim", dockerfile, re.M)
    assert re.search(r"^USER obsflow$", dockerfile, re.M) and "useradd" in dockerfile
    cmd = json.loads(re.search(r"^CMD (.*)$", dockerfile, re.M).group(1))
    assert tuple(cmd[:3]) == TASK_COMMAND  # the state machine's job command starts the same way
    assert "ENTRYPOINT" not in "".join(line for line in dockerfile.splitlines() if not line.startswith("#"))


def test_the_entrypoint_explains_itself_and_rejects_a_call_without_a_run():
    # When it is called with --help, or without --run-id
    helped = subprocess.run([sys.executable, "-m", "obsflow_tasks", "--help"], capture_output=True, text=True)
    missing = subprocess.run([sys.executable, "-m", "obsflow_tasks", "frame-census", "inventory"],
                             capture_output=True, text=True)
    # Then the help names every argument, and the bad call exits non-zero saying what is missing
    assert helped.returncode == 0
    for word in ("recipe", "task", "--run-id", "--manual", "--operator", "--note"):
        assert word in helped.stdout
    assert missing.returncode == 2 and "--run-id" in missing.stderr
    args = parse_arguments(["frame-census", "summary", "--run-id", "run-1", "--manual", "--note", "by hand"])
    assert (args.recipe, args.task, args.run_id, args.manual, args.note) == ("frame-census", "summary", "run-1", True, "by hand")


def test_a_task_s_own_exit_code_wins_over_a_status_the_forkserver_lost(tmp_path):
    from types import SimpleNamespace

    from obsflow.local.task_processes import _exit_code

    # Given a task that finished and recorded exit code 0, whose status the forkserver then reported as 255
    output = tmp_path / "job.log"
    (tmp_path / "job.log.code").write_text("0")
    # Then the job's exit code is the task's; without a recorded code it is the process's (a killed task: 128 + 9)
    assert _exit_code(SimpleNamespace(exitcode=255), str(output)) == 0
    assert _exit_code(SimpleNamespace(exitcode=-9), str(tmp_path / "killed.log")) == 137
