"""The embedded local stack: moto's server on loopback, resources, and the ingest poller."""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path

import boto3
from moto.core import DEFAULT_ACCOUNT_ID

from obsflow import aws, discovery
from obsflow import settings as settings_module
from obsflow.local.lambda_runtime import invoke_local, load_handler
from obsflow.local.poller import QueuePoller
from obsflow.local.private import private_directory, private_file
from obsflow.local.resources import create_resources, local_role_name
from obsflow.local.state import Restored, StateDirectory, record_start
from obsflow.observability import logger

DEFAULT_PORT = 4566
DAILY_JOBS_INTERVAL_S = 60.0  # the backstop and release jobs (daily on AWS), recurring campaigns (every 5 minutes)
# Concurrent ingest invocations, each a thread polling the queue, as Lambda scales out on SQS. Two, as they share
# one interpreter: one reads its batch's headers while the other commits; more only take turns (1,000 frames from
# 8 threads: a batch took 0.47 s p50 and 3.6 s p99 with eight, 0.53 s and 2.8 s with four, 0.28 s and 1.0 s with two).
INGEST_CONCURRENCY = 2
MOTO_CONFIG = {
    "batch": {"use_docker": False},  # jobs run as subprocesses (moto_patches.batch)
    "stepfunctions": {"execute_state_machine": True},
}
_SIDE_LOGS_ELSEWHERE = "remove it, or choose another --port"  # what to do when the log folder is not private


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


class _PrivateLog(logging.FileHandler):
    """A log file only its user can read (0600), never opened through a symbolic link."""

    def _open(self):
        descriptor = private_file(Path(self.baseFilename), os.O_WRONLY | os.O_APPEND | os.O_CREAT, "log file",
                                  instead=_SIDE_LOGS_ELSEWHERE)
        return open(descriptor, "a", encoding=self.encoding, errors=self.errors)


class LocalStack:
    """Everything obsflow needs, in this process, reachable by any AWS client on loopback.

    A script that starts one needs an ``if __name__ == "__main__":`` guard, as any program using
    multiprocessing does: task processes are forked from a server that imports the script's main module.
    """

    def __init__(self, port: int = DEFAULT_PORT, stage: str = "local", batch_window_s: float = 0.5,
                 log_level: str = "WARNING", submit_interval_s: float = 2.0, capacity: dict[str, int] | None = None,
                 side_logs: Path | None = None, ingest_concurrency: int = INGEST_CONCURRENCY,
                 state_dir: Path | None = None):
        self.port = port or free_port()
        # Where the stack keeps its state between runs (None: in memory only, gone at stop).
        self.state = StateDirectory(state_dir) if state_dir else None
        self.restored: Restored | None = None
        self.ingest_concurrency = ingest_concurrency
        # Where what is not obsflow's own log goes: the metrics (EMF lines) and moto's log, in a folder of the
        # user's alone.
        self.side_logs = side_logs or Path(tempfile.gettempdir()) / f"obsflow-{stage}-{self.port}"
        self.log_level = log_level
        self.stage = stage
        self.batch_window_s = batch_window_s
        self.submit_interval_s = submit_interval_s
        self.capacity = capacity or {}
        self._saved_environment: dict[str, str | None] = {}
        self._server = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.poller: QueuePoller | None = None
        self._release_uploads: Callable[[], None] = lambda: None
        self.pipeline_services = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_file(self) -> Path:
        return self.side_logs / "metrics.jsonl"

    @property
    def moto_log(self) -> Path:
        return self.side_logs / "moto.log"

    def _side_logs_out_of_the_terminal(self) -> None:
        """moto's own log (interpreter dumps of every failed execution) to a file, beside the metrics: in a folder
        and files only this user can read, made without following a link someone planted in the temp directory."""
        private_directory(self.side_logs, "log folder", instead=_SIDE_LOGS_ELSEWHERE)
        os.close(private_file(self.metrics_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, "log file",
                              instead=_SIDE_LOGS_ELSEWHERE))
        handler = _PrivateLog(self.moto_log, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        moto_logger = logging.getLogger("moto")
        moto_logger.handlers = [handler]
        moto_logger.propagate = False

    def _environment(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            # moto's Step Functions interpreter calls back to MOTO_PORT; DynamoDB Streams
            # calls go astray unless account-id endpoints are off (see DESIGN.md).
            "MOTO_PORT": str(self.port),
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            "OBSFLOW_STAGE": self.stage,
            "OBSFLOW_STATE_MACHINE_ROLE_ARN": f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/{local_role_name(self.stage)}",
            "POWERTOOLS_METRICS_DISABLED": "false",
            "OBSFLOW_METRICS_FILE": str(self.metrics_file),
            "POWERTOOLS_LOG_LEVEL": self.log_level,
            "POWERTOOLS_TRACE_DISABLED": "true",
            **{f"OBSFLOW_CAPACITY_{rc.upper().replace('-', '_')}": str(n) for rc, n in self.capacity.items()},
        }

    def start(self) -> "LocalStack":
        from moto.server import ThreadedMotoServer

        from obsflow.local import moto_patches, task_processes
        from obsflow.local.moto_patches import notifications

        if port_in_use(self.port):
            raise RuntimeError(
                f"port {self.port} on 127.0.0.1 is already in use: stop the other local stack "
                "or choose another port with --port"
            )
        # What is kept and logged on disk first: a state or a folder that cannot be used stops it here, before
        # anything has started or changed
        if self.state is not None:
            self.state.prepare()
        self._side_logs_out_of_the_terminal()
        # The in-process Lambdas and the task subprocesses read their settings from the
        # environment, as on AWS; stop() puts the caller's environment back.
        environment = self._environment()
        self._saved_environment = {name: os.environ.get(name) for name in environment}
        os.environ.update(environment)
        moto_patches.apply()
        task_processes.start_server()
        settings_module.get_settings.cache_clear()
        logger.setLevel(self.log_level)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        request = urllib.request.Request(
            f"{self.endpoint_url}/moto-api/config",
            data=json.dumps(MOTO_CONFIG).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=10).read()

        session = boto3.Session(region_name=self.settings_now().region)
        self._start_pipeline_services(session)
        self.settings = settings_module.get_settings()
        if self.state is not None:
            self.restored = self.state.restore()  # before the resources: those restored are kept, not made anew
            if self.restored is not None:  # published again once every resource exists, as at a first start
                discovery.withdraw(self.settings, session.client("ssm", endpoint_url=self.endpoint_url))
        urls = create_resources(self.settings, session)
        if self.restored is not None:
            self._fail_interrupted_runs()
        record_start(self.settings, session, self.state, self.restored)
        # obsflow's own client: a fault plan (obsflow.faults) reaches the event source mapping's calls too
        self.poller = QueuePoller(aws.client(self.settings, "sqs"), urls["queue_url"], load_handler("ingest"),
                                  window_s=self.batch_window_s)
        for index in range(self.ingest_concurrency):  # Lambda scales the ingest function out the same way
            self._start_thread(f"ingest-poller-{index}", self.poller.run)
        # An upload is answered once the queue holds no more than a batch for each invocation (backpressure): the
        # interpreter counts what came before taking more (moto_patches.notifications)
        self._release_uploads = notifications.hold(self.poller.queue_arn,
                                                   self.ingest_concurrency * self.poller.batch_size)
        self._start_thread("submitter-schedule", self._schedule("submitter", self.submit_interval_s))
        self._start_thread("backstop-schedule", self._schedule("backstop", DAILY_JOBS_INTERVAL_S))
        self._start_thread("release-schedule", self._schedule("release", DAILY_JOBS_INTERVAL_S))
        self._start_thread("campaign-schedule", self._schedule("campaign-schedule", DAILY_JOBS_INTERVAL_S))
        if self.state is not None:
            self._start_thread("state-snapshots", self.state.keep_saving)
        return self

    @staticmethod
    def settings_now():
        settings_module.get_settings.cache_clear()
        return settings_module.get_settings()

    def _start_pipeline_services(self, session) -> None:
        """Redis and the metadata store for hosted pipelines' tasks (obsflow.pipelines), and their scratch."""
        from obsflow.local.pipeline_services import PipelineServices
        from obsflow.pipelines import environments

        settings = self.settings_now()
        s3 = session.client("s3", endpoint_url=self.endpoint_url)
        redis_dir = self.state.directory / "redis" if self.state is not None else None
        self.pipeline_services = PipelineServices(s3, settings.bucket_name("work"), redis_dir).start()
        scratch = (self.state.directory if self.state is not None else self.side_logs) / "scratch"
        variables = {"OBSFLOW_PIPELINE_SERVICES": json.dumps(self.pipeline_services.addresses),
                     "OBSFLOW_SCRATCH_DIR": os.environ.get("OBSFLOW_SCRATCH_DIR") or str(scratch),
                     "OBSFLOW_PIPELINES_DIR": str(environments.pipelines_dir(settings)),
                     "OBSFLOW_PIPELINE_NODE_SERVER": os.environ.get("OBSFLOW_PIPELINE_NODE_SERVER", "true"),
                     "OBSFLOW_STACK_PID": str(os.getpid())}  # a warm node server leaves with the stack
        for name, value in variables.items():
            self._saved_environment.setdefault(name, os.environ.get(name))
            os.environ[name] = value
        settings_module.get_settings.cache_clear()

    def _fail_interrupted_runs(self) -> None:
        """Runs that were running when the stack stopped: their executions and jobs did not survive the
        restart. Each fails as an infrastructure failure, with a ticket saying to redrive it."""
        from obsflow.runs.domain import RUNNING, SUBMITTED
        from obsflow.services import run_service
        from obsflow.tables import runs

        service = run_service(self.settings)
        sfn = aws.client(self.settings, "stepfunctions")
        error = {"Error": "Obsflow.LocalStackRestarted",
                 "Cause": "the local stack stopped while this run was running; its execution and Batch jobs did not "
                          "survive the restart"}
        for status in (SUBMITTED, RUNNING):
            for run in runs.with_status(status):
                if run.execution_arn:
                    try:
                        sfn.stop_execution(executionArn=run.execution_arn, error=error["Error"], cause=error["Cause"])
                    except sfn.exceptions.ClientError:
                        pass  # already ended, or gone
                service.open_ticket_for_failure(run.run_id, error, run.execution_arn)
                service.fail_run(run.run_id, error)
                logger.warning("run interrupted by the restart: failed, with a ticket to redrive it",
                               extra={"run_id": run.run_id})

    def _schedule(self, function: str, interval_s: float):
        """EventBridge's schedule of a function, which moto does not fire."""

        def tick(stop: threading.Event) -> None:
            while not stop.wait(interval_s):
                result, errored = invoke_local(self.settings.function_name(function), {"source": "local.schedule"})
                if errored:
                    logger.error(f"scheduled {function} failed", extra={"error": result})

        return tick

    def _start_thread(self, name: str, target) -> None:
        thread = threading.Thread(target=target, args=(self._stop,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self._release_uploads()  # an upload still waiting for the queue is answered now
        for thread in self._threads:
            thread.join(timeout=5)
        if self.state is not None and self._server is not None:
            self.state.save(clean=True)
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self.pipeline_services is not None:
            self.pipeline_services.stop()
            self.pipeline_services = None
        for name, value in self._saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_environment = {}
        settings_module.get_settings.cache_clear()

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
