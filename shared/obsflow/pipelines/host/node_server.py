"""A warm server of one pipeline environment: each node forked from a process that imported the framework once.

A DKIST node on its own spends about five seconds importing Airflow, dkist-processing-core/-common and the
pipeline's tasks, often longer than its work. Locally obsflow runs each node instead in a process forked from this
server (run by the pipeline's own Python: ``python node_server.py SOCKET PACKAGE_MODULE``): the node still gets a
process of its own, with its own environment, output and exit code, as a container would. On AWS every node is a
job of the pipeline's image, unchanged.

The framework reads its configuration (MESH_CONFIG, SCRATCH_BASE_PATH, ...) when it is imported, so a server
serves one set of those: obsflow names the socket after them. A request is one JSON line
``{"argv": [...], "env": {...}, "cwd": DIR}``; the answer is the node's output, then a last line ``\\0exit <code>``.
The server leaves when no request has come for ``IDLE_S``, or when the process it serves (the local stack,
``--owner PID``) has ended.
"""

import importlib
import json
import logging
import os
import signal
import socket
import sys

IDLE_S = 600
POLL_S = 2.0
TRAILER = b"\x00exit "


def preload(module: str) -> None:
    logging.disable(logging.CRITICAL)
    try:
        import dkist_processing_common.tasks  # noqa: F401  (the framework: Airflow, astropy, ...)

        importlib.import_module(f"{module}.tasks")
    finally:
        logging.disable(logging.NOTSET)


def serve_one(connection: socket.socket) -> None:
    """In the forked child: the request's environment and output, then the node, then the trailer."""
    import run_node

    request = json.loads(connection.makefile("rb").readline())
    os.environ.update(request["env"])
    if request.get("cwd"):
        os.chdir(request["cwd"])
    os.dup2(connection.fileno(), 1)
    os.dup2(connection.fileno(), 2)
    code = 1
    try:
        code = run_node.main(request["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001  (the node's failure is its output and its exit code)
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.write(1, TRAILER + str(code).encode() + b"\n")
        os._exit(code)


def alive(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def main(socket_path: str, module: str, owner: int | None = None) -> None:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # run_node.py beside this file
    preload(module)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the system: their exit code travels back
    if os.path.exists(socket_path):
        os.unlink(socket_path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o177)  # the socket is its owner's only from the start: a request carries an environment
    try:
        server.bind(socket_path)
    finally:
        os.umask(previous)
    server.listen(16)
    server.settimeout(POLL_S)
    print(f"serving {module} on {socket_path}", flush=True)
    idle = 0.0
    try:
        while alive(owner) and idle < IDLE_S:
            try:
                connection, _ = server.accept()
            except socket.timeout:
                idle += POLL_S
                continue
            idle = 0.0
            if os.fork() == 0:
                server.close()
                serve_one(connection)
            connection.close()
    finally:
        server.close()
        if os.path.exists(socket_path):
            os.unlink(socket_path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else None)
