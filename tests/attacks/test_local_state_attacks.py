"""The local stack's state and logs on disk cannot run another user's code or leak.

Found from outside: `--state-dir` loaded a pickle, so a file planted there ran a shell command at start, even from
a directory that belonged to another user and that everyone could write to; a truncated state file gave a 34-line
traceback; the state file was written 0644 with every object's body in it (a PI's e-mail address 196 times); the
side-log folder in the system temp directory (`obsflow-<stage>-<port>`) followed planted symbolic links, and a
file outside it was appended to. A job's exit code was written beside its output in the temp directory, through
whatever link was planted there.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import shlex
import shutil
import stat
import subprocess
import sys
import threading
from multiprocessing import forkserver
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from obsflow.local import moto_patches, task_processes
from obsflow.local.stack import LocalStack, free_port
from obsflow.local.state import StateDirectory

E_MAIL = "pi@example.org"
NOBODY = 65534


class Planted:
    """What an attacker pickles: loading it runs a shell command that leaves ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def plant(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps(Planted(marker)))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def serve(state_dir: Path) -> subprocess.CompletedProcess:
    """`obsflow local serve --state-dir DIR`, as a user runs it (on a free port): it should stop at once."""
    env = {name: value for name, value in os.environ.items() if name != "AWS_ENDPOINT_URL"}
    return subprocess.run([sys.executable, "-m", "obsflow.cli", "local", "serve", "--port", str(free_port()),
                           "--state-dir", str(state_dir)], capture_output=True, text=True, timeout=60, env=env)


@pytest.fixture
def umask_022():
    """Given a user whose umask lets every other user read what they make (the usual 022)."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.fixture
def saved_state(tmp_path, umask_022):
    """Given a state saved by the stack, whose bucket holds an object naming a PI's e-mail address: its directory."""
    moto_patches.apply()
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="attack-ingest")
        s3.put_object(Bucket="attack-ingest", Key="proposal.json", Body=f'{{"pi_email": "{E_MAIL}"}}'.encode())
        StateDirectory(tmp_path / "state").save()
    return tmp_path / "state"


@pytest.fixture
def side_logs_location():
    """Where a stack on a free port keeps its side logs (in the system temp directory); cleared afterwards."""
    stack = LocalStack(port=free_port(), stage="attack", log_level="ERROR")
    yield stack
    if stack.side_logs.is_symlink():
        stack.side_logs.unlink()
    elif stack.side_logs.exists():
        shutil.rmtree(stack.side_logs)


def test_a_pickle_planted_in_a_state_directory_others_can_write_to_never_runs(tmp_path):
    # Given a state directory everyone can write to, where another user planted a pickle that runs a command
    state, marker = tmp_path / "state", tmp_path / "ran"
    state.mkdir()
    state.chmod(0o777)
    plant(state / "state.pickle", marker)
    # When the user starts the local stack on it
    result = serve(state)
    # Then it refuses in one line saying why and what to do, the command never ran, and nothing was deleted
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"Error: state directory {state} is writable by other users (mode 0777)")
    assert f"`chmod 700 {state}`" in line and "--state-dir" in line
    assert not marker.exists()
    assert (state / "state.pickle").exists()


def test_a_state_file_others_can_write_to_is_refused_before_it_is_loaded(tmp_path):
    # Given the user's own private state directory, but a state file in it that everyone can write to (replaced)
    state, marker = tmp_path / "state", tmp_path / "ran"
    state.mkdir(mode=0o700)
    plant(state / "state.pickle", marker)
    (state / "state.pickle").chmod(0o666)
    # When the stack restores it
    with pytest.raises(RuntimeError, match="writable by other users") as refused:
        StateDirectory(state).restore()
    # Then it is refused, saying how to make it private, and the planted command never ran
    assert f"`chmod 600 {state / 'state.pickle'}`" in str(refused.value)
    assert not marker.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_a_state_directory_of_another_user_is_refused_before_anything_is_loaded(tmp_path):
    # Given a state directory that belongs to another user (not writable by anyone else), holding a planted pickle
    state, marker = tmp_path / "state", tmp_path / "ran"
    state.mkdir(mode=0o755)
    plant(state / "state.pickle", marker)
    os.chown(state / "state.pickle", NOBODY, NOBODY)
    os.chown(state, NOBODY, NOBODY)
    # When the stack restores it
    # Then it is refused, and the planted command never ran
    with pytest.raises(RuntimeError, match=f"state directory {re.escape(str(state))} belongs to another user"):
        StateDirectory(state).restore()
    assert not marker.exists()


@pytest.mark.parametrize("planted", ["the state directory", "the state file"])
def test_a_symbolic_link_planted_for_the_state_is_not_followed(tmp_path, planted):
    # Given a link, where the state directory or its state file should be, to another user's planted pickle
    elsewhere, marker = tmp_path / "elsewhere", tmp_path / "ran"
    elsewhere.mkdir(mode=0o700)
    plant(elsewhere / "state.pickle", marker)
    state = tmp_path / "state"
    if planted == "the state directory":
        state.symlink_to(elsewhere)
    else:
        state.mkdir(mode=0o700)
        (state / "state.pickle").symlink_to(elsewhere / "state.pickle")
    # When the stack restores it
    # Then it is refused, and the planted command never ran
    with pytest.raises(RuntimeError, match="is a symbolic link"):
        StateDirectory(state).restore()
    assert not marker.exists()


@pytest.mark.parametrize("planted", ["a symbolic link", "a journal others can write to", "another user's journal"])
def test_a_journal_planted_beside_a_saved_state_is_refused_before_it_is_loaded(saved_state, tmp_path, planted):
    if planted == "another user's journal" and os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    # Given a state saved by the stack, and where its journal goes (the saves after it), another user's pickle
    marker, journal = tmp_path / "ran", saved_state / "state.journal"
    if planted == "a symbolic link":
        plant(tmp_path / "elsewhere.pickle", marker)
        journal.symlink_to(tmp_path / "elsewhere.pickle")
    else:
        plant(journal, marker)
        if planted == "a journal others can write to":
            journal.chmod(0o666)
        else:
            journal.chmod(0o600)
            os.chown(journal, NOBODY, NOBODY)
    # When the stack restores it
    # Then it is refused, and the planted command never ran
    refusal = {"a symbolic link": "is a symbolic link", "a journal others can write to": "is writable by other users",
               "another user's journal": "belongs to another user"}[planted]
    with pytest.raises(RuntimeError, match=f"state journal {re.escape(str(journal))} {refusal}"):
        StateDirectory(saved_state).restore()
    assert not marker.exists()


def test_the_saves_after_the_first_are_readable_by_their_user_alone(saved_state):
    # Given a saved state restored, and an object naming a PI's e-mail address written since
    moto_patches.apply()
    with mock_aws():
        state = StateDirectory(saved_state)
        state.restore()
        boto3.client("s3", region_name="us-east-1").put_object(Bucket="attack-ingest", Key="later.json",
                                                               Body=f'{{"pi_email": "{E_MAIL}"}}'.encode())
        # When the stack saves what changed
        state.save()
    # Then it went to a journal beside the state file, the user's alone, and nothing else was left there
    journal = saved_state / "state.journal"
    assert E_MAIL.encode() in journal.read_bytes()
    assert mode(journal) == 0o600
    assert sorted(p.name for p in saved_state.iterdir()) == ["state.journal", "state.pickle"]


@pytest.mark.parametrize("damage", ["truncated", "not a pickle", "empty"])
def test_a_damaged_state_file_says_in_one_line_what_to_do_and_is_kept(saved_state, damage):
    # Given a saved state whose file was damaged
    path = saved_state / "state.pickle"
    whole = path.read_bytes()
    path.write_bytes({"truncated": whole[:len(whole) // 2], "not a pickle": b"state: kept\n", "empty": b""}[damage])
    damaged = path.read_bytes()
    # When the user starts the local stack on it
    result = serve(saved_state)
    # Then it stops with one line saying the file is unreadable and what to do, not a traceback
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"Error: state file {path} is unreadable")
    assert "move it away to start empty" in line and "put back a copy" in line
    # And nothing was deleted or changed
    assert path.read_bytes() == damaged


def test_a_saved_state_is_readable_by_its_user_alone(saved_state):
    # Given a state saved by the stack (with the usual umask), whose bucket holds a PI's e-mail address
    path = saved_state / "state.pickle"
    assert E_MAIL.encode() in path.read_bytes()
    # Then its directory and its file are the user's alone, and no partial file was left beside it
    assert mode(saved_state) == 0o700
    assert mode(path) == 0o600
    assert sorted(p.name for p in saved_state.iterdir()) == ["state.pickle"]
    # And it is restored as it was saved
    moto_patches.apply()
    with mock_aws():
        restored = StateDirectory(saved_state).restore()
        assert restored is not None and restored.clean is False
        body = boto3.client("s3", region_name="us-east-1").get_object(Bucket="attack-ingest", Key="proposal.json")
        assert E_MAIL in body["Body"].read().decode()


def test_a_state_an_earlier_release_left_readable_by_others_is_made_private_at_start(saved_state):
    # Given a state saved by an earlier release: a directory and a file every user could read
    path = saved_state / "state.pickle"
    saved_state.chmod(0o755)
    path.chmod(0o644)
    # When the stack restores it
    moto_patches.apply()
    with mock_aws():
        restored = StateDirectory(saved_state).restore()
    # Then it is restored, and made the user's alone
    assert restored is not None
    assert mode(saved_state) == 0o700
    assert mode(path) == 0o600


@pytest.mark.parametrize("planted", ["a link for the folder", "a link for moto.log in a folder others can write to",
                                     "a link for moto.log in another user's folder"])
def test_a_symbolic_link_planted_where_the_side_logs_go_is_not_followed(tmp_path, side_logs_location, planted):
    if planted.endswith("another user's folder") and os.geteuid() != 0:
        pytest.skip("giving a folder to another user needs root")
    stack, victim = side_logs_location, tmp_path / "victim"
    victim.mkdir(mode=0o700)
    # Given another user's link where the stack's side-log folder, or its moto.log, will be
    if planted == "a link for the folder":
        stack.side_logs.symlink_to(victim)
    else:
        stack.side_logs.mkdir()
        (stack.side_logs / "moto.log").symlink_to(victim / "appended.log")
        if planted.endswith("others can write to"):
            stack.side_logs.chmod(0o777)
        else:
            os.chown(stack.side_logs, NOBODY, NOBODY)
    # When the stack starts
    try:
        with pytest.raises(RuntimeError, match=f"log folder {re.escape(str(stack.side_logs))} .*remove it, or choose another --port"):
            stack.start()
    finally:
        stack.stop()
    # Then it refused to start, and nothing was written where the link points
    assert list(victim.iterdir()) == []


def test_the_side_logs_are_readable_by_their_user_alone(side_logs_location, umask_022):
    # Given a stack on a free port, and the usual umask
    stack = side_logs_location
    moto_logger = logging.getLogger("moto")
    handlers, propagate = moto_logger.handlers, moto_logger.propagate
    # When it takes its side logs out of the terminal
    try:
        stack._side_logs_out_of_the_terminal()
        logging.getLogger("moto.attack").warning("kept in the side log")
    finally:
        for handler in moto_logger.handlers:
            handler.close()
        moto_logger.handlers, moto_logger.propagate = handlers, propagate
    # Then their folder and files are the user's alone
    assert mode(stack.side_logs) == 0o700
    assert mode(stack.moto_log) == 0o600 and "kept in the side log" in stack.moto_log.read_text()
    assert mode(stack.metrics_file) == 0o600


def test_a_link_planted_beside_a_job_output_in_the_temp_directory_is_not_followed(tmp_path, monkeypatch):
    # Given the warm server that forks jobs, running (its socket made in the real temp directory, not the one below)
    task_processes._forkserver()
    forkserver.ensure_running()
    # And a temp directory shared with another user, who plants a link beside each job file that appears in it
    shared, victim = tmp_path / "tmp", tmp_path / "victim"
    shared.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(shared))
    stop = threading.Event()

    def attacker() -> None:
        while not stop.is_set():
            for name in os.listdir(shared):
                if name.startswith("obsflow-job-") and not name.endswith(".code"):
                    try:
                        os.symlink(victim, shared / f"{name}.code")
                    except FileExistsError:
                        pass
            stop.wait(0.001)

    planting = threading.Thread(target=attacker, daemon=True)
    planting.start()
    # When a job runs (one whose AWS is unreachable, so it ends at once with its exit code 3)
    environment = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "AWS_MAX_ATTEMPTS": "1",
                   "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1",
                   "OBSFLOW_STAGE": "attack"}
    try:
        code, output = task_processes.run_task_command(
            [sys.executable, "-m", "obsflow_tasks", "frame-census", "frames", "--run-id", "run-attack"], environment)
    finally:
        stop.set()
        planting.join()
    # Then its exit code is its own, and nothing was written through the link
    assert code == 3, output
    assert not victim.exists()
