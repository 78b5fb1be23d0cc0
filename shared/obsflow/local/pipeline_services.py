"""The services a hosted pipeline's tasks call, on loopback, for the local stack.

- The scratch inventory: a real Redis server (Debian's ``redis-server``, which `make` installs where it can),
  with nothing saved to disk; where none is installed, fakeredis's pure-Python server, and the banner says so.
- The metadata store: obsflow's GraphQL adapter (``obsflow.pipelines.metadata_store``) over the run records
  in the work bucket.
On AWS the stage provides ElastiCache and the adapter behind the stage's network.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from obsflow.pipelines.metadata_store import MetadataStore, MetadataStoreServer
from obsflow.pipelines.records import S3PipelineRecords


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as connection:
                connection.sendall(b"PING\r\n")
                if connection.recv(16).startswith(b"+PONG"):
                    return True
        except OSError:
            time.sleep(0.05)
    return False


class PipelineServices:
    def __init__(self, s3, work_bucket: str, state_dir=None):
        """``state_dir``: where Redis keeps its data across restarts (an append-only file), so a run redriven
        after a restart finds its tags; None: in memory only."""
        self.s3, self.work_bucket, self.state_dir = s3, work_bucket, state_dir
        self.redis_kind = ""
        self._redis_process: subprocess.Popen | None = None
        self._fake_redis = None
        self._metadata_store: MetadataStoreServer | None = None
        self.redis_port = 0

    def start(self) -> "PipelineServices":
        self._start_redis()
        self._metadata_store = MetadataStoreServer(MetadataStore(S3PipelineRecords(self.s3, self.work_bucket))).start()
        return self

    def _start_redis(self) -> None:
        self.redis_port = _free_port()
        server = shutil.which("redis-server")
        if server:
            if self.state_dir is not None:
                Path(self.state_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
            persistence = ["--appendonly", "yes", "--dir", str(self.state_dir)] if self.state_dir is not None else \
                ["--appendonly", "no", "--dir", tempfile.gettempdir()]
            self._redis_process = subprocess.Popen(
                [server, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", *persistence,
                 "--databases", "16", "--loglevel", "warning"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, umask=0o077)  # its files the user's alone
            if _answers(self.redis_port, 10):
                self.redis_kind = f"redis-server ({server})"
                return
            self._redis_process.kill()
            self._redis_process = None
        from fakeredis import TcpFakeServer

        self._fake_redis = TcpFakeServer(("127.0.0.1", self.redis_port), server_type="redis")
        threading.Thread(target=self._fake_redis.serve_forever, name="scratch-inventory", daemon=True).start()
        self.redis_kind = "fakeredis (no redis-server installed: `apt-get install redis-server` for a real one)"

    @property
    def addresses(self) -> dict[str, str]:
        """OBSFLOW_PIPELINE_SERVICES: host:port of each service."""
        return {"metadata-store": f"127.0.0.1:{self._metadata_store.port}",
                "scratch-inventory": f"127.0.0.1:{self.redis_port}"}

    def stop(self) -> None:
        if self._metadata_store is not None:
            self._metadata_store.stop()
        if self._redis_process is not None:
            self._redis_process.terminate()
            try:
                self._redis_process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._redis_process.kill()
        if self._fake_redis is not None:
            self._fake_redis.shutdown()
            self._fake_redis.server_close()
