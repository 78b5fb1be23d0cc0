"""The host task: one node of a hosted pipeline's workflow, run unchanged with the pipeline's own Python.

obsflow's task runtime runs it like any task (records, provenance, tickets). It links the run to its DKIST
recipe run id (the metadata store answers for it from obsflow's records), gives the node the run's scratch at
one absolute path and the services its framework reads from MESH_CONFIG, runs ``host/run_node.py`` in the
pipeline's environment with the node's output in this job's log, and then collects what the node handed
over (the files TransferL1Data would have sent away) as this task's outputs: the dataset's products.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from obsflow.pipelines import environments
from obsflow.pipelines.records import S3PipelineRecords
from obsflow.pipelines.workflows import DOCS_BASE_URL
from obsflow.settings import get_settings

from obsflow_tasks.base import ConfigurationFailure, InfrastructureFailure, Task, TaskFailure

# MESH_CONFIG's service names, as dkist-processing-common reads them.
MESH_NAMES = {"metadata-store": "internal-api-gateway", "scratch-inventory": "automated-processing-scratch-inventory"}
# The host's astropy configuration for the pipeline's processes (XDG_CONFIG_HOME): jobs have no internet, so
# astropy uses the Earth-orientation tables its installed astropy-iers-data carries, however old, instead of
# downloading (times past their end are computed with degraded accuracy, and say so in the log).
ASTROPY_CONFIGURATION = """[utils.iers.iers]
auto_download = False
auto_max_age = 36500
iers_degraded_accuracy = warn
"""
CONTENT_TYPES = {".fits": "application/fits", ".mp4": "video/mp4", ".json": "application/json",
                 ".asdf": "application/asdf", ".pdf": "application/pdf", ".csv": "text/csv"}


def scratch_dir() -> Path:
    """The root of every run's scratch: OBSFLOW_SCRATCH_DIR (EFS on AWS), else one under the temp directory."""
    return Path(get_settings().scratch_dir or Path(tempfile.gettempdir()) / "obsflow-scratch")


def mesh_config(services: dict[str, str]) -> dict:
    missing = sorted(set(MESH_NAMES) - set(services))
    if missing:
        raise InfrastructureFailure(f"the pipeline services {', '.join(missing)} are not configured "
                                    "(OBSFLOW_PIPELINE_SERVICES): the local stack starts them; on AWS the stage sets them")
    config = {}
    for name, address in services.items():
        host, _, port = address.rpartition(":")
        config[MESH_NAMES.get(name, name)] = {"mesh_address": host, "mesh_port": int(port)}
    return config


class PipelineNode(Task):
    def run(self) -> None:
        settings = get_settings()
        source, spec = self.context.recipe.pipeline, self.context.task
        if source is None or spec.pipeline_task is None:
            raise ConfigurationFailure(f"task {spec.name} is no pipeline node")
        environment = environments.find(settings, source.package, source.version)
        if environment is None:
            raise ConfigurationFailure(f"{source.package}=={source.version} has no environment here: "
                                       f"`obsflow pipelines add {source.package}=={source.version}`, then redrive")
        recipe_run = S3PipelineRecords(self.context.s3, self.context.work_bucket).link(self.run_id)
        host = scratch_dir() / ".obsflow-host" / str(recipe_run)
        host.mkdir(parents=True, exist_ok=True)
        configuration = scratch_dir() / ".obsflow-host" / "config"
        (configuration / "astropy").mkdir(parents=True, exist_ok=True)
        (configuration / "astropy" / "astropy.cfg").write_text(ASTROPY_CONFIGURATION)
        if not spec.upstreams:
            self._fresh_scratch(scratch_dir() / str(recipe_run))
        handed_over = host / f"{spec.name}.jsonl"
        handed_over.unlink(missing_ok=True)
        environment_variables = {
            **os.environ,
            "SCRATCH_BASE_PATH": str(scratch_dir()),
            "MESH_CONFIG": json.dumps(mesh_config(settings.pipeline_services)),
            "BUILD_VERSION": source.version,
            "OBSFLOW_COLLECT_TO": str(handed_over),
            "PYTHONUNBUFFERED": "1",
            "XDG_CONFIG_HOME": str(configuration),
            "DOCS_BASE_URL": DOCS_BASE_URL,  # the L1 headers' INFO_URL, HEAD_URL and CAL_URL
        }
        command = [str(environment.python), str(environments.host_script("run_node.py")), spec.pipeline_task,
                   "--recipe-run-id", str(recipe_run), "--workflow-name", source.workflow,
                   "--workflow-version", source.version, *(["--manual"] if self.context.manual else [])]
        print(f"{source.package} {source.version} {spec.pipeline_task}: recipe run {recipe_run}, scratch "
              f"{scratch_dir() / str(recipe_run)}", flush=True)
        last = ""
        with subprocess.Popen(command, env=environment_variables, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, errors="replace") as process:
            for line in process.stdout:
                sys.stdout.write(line)
                if line.strip():
                    last = line.strip()
        sys.stdout.flush()
        if process.returncode != 0:
            raise TaskFailure(f"{spec.pipeline_task} of {source.package} {source.version} failed (exit code "
                              f"{process.returncode}): {last[:300]}")
        self._collect(handed_over)

    def _fresh_scratch(self, scratch: Path) -> None:
        """A run starts on an empty scratch: what a run of the same id left there (a stack restarted without
        its state) is removed before the run's first task. A redrive keeps it: the tasks that succeeded did."""
        records = self.context.s3.list_objects_v2(Bucket=self.context.work_bucket,
                                                  Prefix=f"runs/{self.run_id}/tasks/", MaxKeys=1)
        if scratch.exists() and not records.get("KeyCount"):
            print(f"obsflow host: removing {scratch}, left by an earlier run of the same id", flush=True)
            shutil.rmtree(scratch)

    def _collect(self, handed_over: Path) -> None:
        """What the node handed over: its files as this task's outputs (products), its messages as a record."""
        if not handed_over.exists():
            return
        messages = []
        for line in handed_over.read_text().splitlines():
            entry = json.loads(line)
            if entry["kind"] == "message":
                messages.append(entry)
                continue
            path = Path(entry["path"])
            suffix = path.suffix.lower()
            tags = ("product", "l1") if suffix == ".fits" else ("product", "movie") if suffix == ".mp4" else ("product",)
            self.write(Path(entry["key"]).name, path.read_bytes(), tags,
                       entry.get("content_type") or CONTENT_TYPES.get(suffix, "application/octet-stream"))
        if messages:
            self.write_json("pipeline-messages.json", messages, ("pipeline-messages",))
