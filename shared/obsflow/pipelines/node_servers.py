"""obsflow's side of a pipeline environment's warm node server (``host/node_server.py``), for the local stack.

``run_node`` asks the environment's server to fork the node, starting the server first if none answers (one
per environment and host configuration; a lock keeps two starters apart), and streams the node's output. None
means no server could be had: the caller runs the node as a process of its own instead.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

from obsflow.pipelines.environments import Environment, host_script

START_TIMEOUT_S = 120
TRAILER = b"\x00exit "


def socket_path(environment: Environment, host_environment: dict[str, str]) -> Path:
    """Short (a Unix socket path has at most 107 bytes), and named after what the server imported with."""
    key = hashlib.sha256(json.dumps([str(environment.path), sorted(host_environment.items())]).encode()).hexdigest()
    return Path(tempfile.gettempdir()) / f"obsflow-nodes-{key[:16]}.sock"


def _connect(path: Path) -> socket.socket | None:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(str(path))
        return connection
    except OSError:
        connection.close()
        return None


def connect(environment: Environment, host_environment: dict[str, str], log: Callable[[str], None]) -> socket.socket | None:
    path = socket_path(environment, host_environment)
    if (connection := _connect(path)) is not None:
        return connection
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (connection := _connect(path)) is not None:
            return connection
        log(f"obsflow host: starting a warm node server for {environment.package} {environment.version}")
        with open(f"{path}.log", "ab") as server_log:  # the server keeps its own descriptor of it
            server = subprocess.Popen(
                [str(environment.python), str(host_script("node_server.py")), str(path),
                 environment.package.replace("-", "_"),
                 *([owner] if (owner := os.environ.get("OBSFLOW_STACK_PID")) else [])],
                env={**os.environ, **host_environment}, stdout=server_log, stderr=server_log,
                stdin=subprocess.DEVNULL, start_new_session=True)  # it outlives this task: the next node uses it
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and server.poll() is None:
            if (connection := _connect(path)) is not None:
                return connection
            time.sleep(0.1)
    log(f"obsflow host: the node server did not start (see {path}.log); running the node on its own")
    return None


def run_node(connection: socket.socket, argv: list[str], node_environment: dict[str, str],
             write: Callable[[str], None], cwd: str | None = None) -> int:
    """Send the request and stream the node's output to ``write``; its exit code (1 if it ended without one)."""
    with connection:
        connection.sendall(json.dumps({"argv": argv, "env": node_environment, "cwd": cwd}).encode() + b"\n")
        code, pending = None, b""
        while chunk := connection.recv(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.startswith(TRAILER):
                    code = int(line[len(TRAILER):] or 1)
                else:
                    write(line.decode("utf-8", "replace") + "\n")
        if pending:
            write(pending.decode("utf-8", "replace"))
        if code is None:
            write("obsflow host: the node's process ended without an exit code (killed?)\n")
        return 1 if code is None else code
