"""The host's tasks: a node of a hosted pipeline's workflow (PipelineNode), and what DKIST's data center makes of
the workflow's output after it (DatasetProducts).

PipelineNode: one node, run unchanged with the pipeline's own Python.

obsflow's task runtime runs it like any task (records, provenance, tickets). It links the run to its DKIST
recipe run id (the metadata store answers for it from obsflow's records), gives the node the run's scratch at
one absolute path and the services its framework reads from MESH_CONFIG, runs ``host/run_node.py`` in the
pipeline's environment with the node's output in this job's log, and then collects what the node handed
over (the files TransferL1Data would have sent away) as this task's outputs: the dataset's products.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from astropy.io import fits

from obsflow.pipelines import environments, node_servers
from obsflow.pipelines.metadata_store import MetadataStore, MetadataStoreServer
from obsflow.pipelines.records import S3PipelineRecords, UnknownRecipeRun, recipe_run_id
from obsflow.pipelines.workflows import DOCS_BASE_URL
from obsflow.settings import get_settings

from obsflow_tasks.base import ConfigurationFailure, InfrastructureFailure, Task, TaskFailure

# The framework's Teardown, whose purge removes a run given up when its workflow has no Teardown of its own.
FRAMEWORK_TEARDOWN = "dkist_processing_common.tasks.teardown:Teardown"
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
                                    "(OBSFLOW_PIPELINE_SERVICES): the local stack starts them; on AWS the stage sets "
                                    "the scratch inventory and each job serves the metadata store itself")
    config = {}
    for name, address in services.items():
        host, _, port = address.rpartition(":")
        config[MESH_NAMES.get(name, name)] = {"mesh_address": host, "mesh_port": int(port)}
    return config


class _LastLine:
    """Writes the node's output to this job's log, keeping its last line for the failure's message."""

    def __init__(self):
        self.last = ""

    def __call__(self, text: str) -> None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        if text.strip():
            self.last = text.strip().splitlines()[-1]


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
        with self._metadata_store(settings.pipeline_services) as services:
            # What the framework reads when it is imported (the same for every node of this host), then per node.
            host_environment = {
                "SCRATCH_BASE_PATH": str(scratch_dir()),
                "MESH_CONFIG": json.dumps(mesh_config(services), sort_keys=True),
                "BUILD_VERSION": source.version,
                "PYTHONUNBUFFERED": "1",
                "XDG_CONFIG_HOME": str(configuration),
                "DOCS_BASE_URL": DOCS_BASE_URL,  # the L1 headers' INFO_URL, HEAD_URL and CAL_URL
            }
            if not spec.upstreams and self.context.run.get("retry_of"):
                self._purge_given_up(self.context.run["retry_of"], environment, host_environment)
            handed_over = host / f"{spec.name}.jsonl"
            handed_over.unlink(missing_ok=True)
            print(f"{source.package} {source.version} {spec.pipeline_task}: recipe run {recipe_run}, scratch "
                  f"{scratch_dir() / str(recipe_run)}", flush=True)
            output = _LastLine()
            returncode = self._node(environment, host_environment, recipe_run, spec.pipeline_task, output, host,
                                    {"OBSFLOW_COLLECT_TO": str(handed_over)},
                                    ["--manual"] if self.context.manual else [])
        if returncode != 0:
            raise TaskFailure(f"{spec.pipeline_task} of {source.package} {source.version} failed (exit code "
                              f"{returncode}): {output.last[:300]}")
        self._collect(handed_over)
        if spec.pipeline_task.endswith(":Teardown"):  # the pipeline removed its scratch; the host's goes with it
            shutil.rmtree(host, ignore_errors=True)

    @contextlib.contextmanager
    def _metadata_store(self, services: dict[str, str]):
        """The pipeline services, with a metadata store of this job's own on loopback where the stage names none
        (on AWS: reachable from this job only, over the same run records in the work bucket)."""
        if "metadata-store" in services:
            yield services
            return
        server = MetadataStoreServer(MetadataStore(S3PipelineRecords(self.context.s3, self.context.work_bucket)))
        server.start()
        try:
            yield {**services, "metadata-store": f"127.0.0.1:{server.port}"}
        finally:
            server.stop()

    def _node(self, environment, host_environment: dict, recipe_run: int, task: str, output, cwd: Path,
              extra_environment: dict, options: list[str]) -> int:
        """Run one of the pipeline's task classes for a recipe run, in its environment; the exit code."""
        source = self.context.recipe.pipeline
        argv = [task, "--recipe-run-id", str(recipe_run), "--workflow-name", source.workflow,
                "--workflow-version", source.version, *options]
        node_environment = {**os.environ, **host_environment, **extra_environment}
        connection = node_servers.connect(environment, host_environment, output) \
            if get_settings().pipeline_node_server else None
        # A node's working directory is its run's (ViSP's background-light step writes a file into it)
        if connection is not None:
            returncode = node_servers.run_node(connection, argv, node_environment, output, cwd=str(cwd))
        else:
            command = [str(environment.python), str(environments.host_script("run_node.py")), *argv]
            with subprocess.Popen(command, env=node_environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, errors="replace", cwd=cwd) as process:
                for line in process.stdout:
                    output(line)
            returncode = process.returncode
        sys.stdout.flush()
        return returncode

    def _purge_given_up(self, earlier_run_id: str, environment, host_environment: dict) -> None:
        """The run this one retries is given up: its scratch files and Redis tags go, removed by the pipeline's
        own Teardown code (its purge only: the earlier run's recorded status stays as it ended)."""
        records = S3PipelineRecords(self.context.s3, self.context.work_bucket)
        earlier = recipe_run_id(earlier_run_id)
        teardown = next((t.pipeline_task for t in self.context.recipe.tasks
                         if (t.pipeline_task or "").endswith(":Teardown")), FRAMEWORK_TEARDOWN)
        scratch = scratch_dir() / str(earlier)
        try:
            linked = records.run_id(earlier) == earlier_run_id
        except UnknownRecipeRun:
            linked = False  # it never started a node: nothing of it is in scratch
        if not linked or not scratch.exists():
            return
        print(f"obsflow host: run {earlier_run_id} is given up (this run retries it): removing its scratch and tags "
              f"(recipe run {earlier}) with {teardown}'s purge", flush=True)
        output = _LastLine()
        host = scratch_dir() / ".obsflow-host" / str(earlier)
        host.mkdir(parents=True, exist_ok=True)
        if self._node(environment, host_environment, earlier, teardown, output, host, {}, ["--purge"]) != 0:
            print(f"obsflow host: the purge of recipe run {earlier} failed ({output.last[:200]}); its scratch "
                  f"stays in {scratch}", flush=True)
            return
        shutil.rmtree(host, ignore_errors=True)

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


# The quality data a pipeline recorded (createQuality), in the form dkist-quality's report reads.
QUALITY_FIELDS = {"metricCode": "metric_code", "facet": "facet", "name": "name", "description": "description",
                  "statement": "statement", "warnings": "warnings", "plotData": "plot_data",
                  "multiPlotData": "multi_plot_data", "tableData": "table_data", "histogramData": "histogram_data",
                  "modmatData": "modmat_data", "raincloudData": "raincloud_data", "efficiencyData": "efficiency_data"}
JSON_FIELDS = {"warnings", "plotData", "multiPlotData", "tableData", "histogramData", "modmatData", "raincloudData",
               "efficiencyData"}


def quality_data(recorded: list[dict]) -> list[dict]:
    """The metrics as dkist-quality reads them: JSON fields decoded, dates (``{"iso_date": ...}``) as datetimes."""
    from dkist_quality.json_encoder import datetime_json_object_hook

    metrics = []
    for record in sorted(recorded, key=lambda r: r.get("recorded_at") or ""):
        metrics.append({snake: (json.loads(record[camel], object_hook=datetime_json_object_hook)
                                if camel in JSON_FIELDS and record.get(camel) else record.get(camel))
                        for camel, snake in QUALITY_FIELDS.items()})
    return metrics


class DatasetProducts(Task):
    """What DKIST's data center makes of a pipeline's output after it transferred it: the dataset inventory and
    ASDF file (dkist-inventory) from the L1 frames' headers, and the quality report (dkist-quality) from the
    quality data the pipeline recorded in the metadata store; the quality data and the provenance the pipeline
    recorded (task by task, manual or not), as products too."""

    def run(self) -> None:
        # DKIST's data center libraries: the obsflow[dkist] extra, imported by this task only
        from dkist_inventory.asdf_generator import asdf_tree_from_filenames, make_asdf_file_object
        from dkist_inventory.inventory import (generate_asdf_filename, generate_inventory_from_frame_inventory,
                                               generate_quality_report_filename)
        from dkist_quality.report import format_report

        frames = self.upstream_outputs("l1")
        if not frames:
            raise TaskFailure("the pipeline handed over no L1 frames: nothing to describe")
        bucket = get_settings().bucket_name("data")
        # The dataset is the observe OP's frames (a pipeline may hand over L1 frames of its calibration OPs too)
        observe_ops = {f["op_id"] for f in self.context.input_dataset["frames"] if f["role"] == "observe"}
        with tempfile.TemporaryDirectory(prefix="obsflow-products-") as directory:
            paths, json_headers, others = [], [], []
            for frame in frames:
                path = Path(directory) / frame["name"]
                path.write_bytes(self.read_output(frame))
                with fits.open(path) as hdus:
                    header_hdu = 1 if len(hdus) > 1 else 0
                    header = dict(hdus[header_hdu].header)
                if observe_ops and header.get("OBSPR_ID") not in observe_ops:
                    others.append(frame["name"])
                    continue
                paths.append(path)
                header.pop("COMMENT", None), header.pop("HISTORY", None)
                json_headers.append({**{k: v for k, v in header.items() if k}, "objectKey": frame["name"],
                                     "bucket": bucket, "headerHDU": header_hdu})
            if others:
                print(f"obsflow host: {len(others)} L1 frame(s) of other OPs than the observe OP "
                      f"{', '.join(sorted(observe_ops))} are kept but not described: {', '.join(others[:5])}...")
            if not json_headers:
                raise TaskFailure(f"none of the {len(frames)} L1 frames is of the observe OP "
                                  f"{', '.join(sorted(observe_ops))} (OBSPR_ID): nothing to describe")
            first = json_headers[0]
            dataset_id, instrument = first.get("DSETID"), first.get("INSTRUME") or self.context.recipe.instrument
            inventory = generate_inventory_from_frame_inventory(bucket=bucket, json_headers=json_headers)
            self.write_json(f"{dataset_id}_inventory.json", inventory, ("product", "inventory"))
            tree = asdf_tree_from_filenames(paths, hdu=header_hdu, relative_to=Path(directory))
            history = [("Written by obsflow's pipeline host with dkist-inventory", {
                "name": "dkist-inventory", "author": "DKIST Data Center", "homepage": "https://pypi.org/project/dkist-inventory/",
                "version": importlib.metadata.version("dkist-inventory")})]
            start = dt.datetime.fromisoformat(str(first.get("DATE-BEG") or first.get("DATE-OBS")))
            with make_asdf_file_object(tree, extra_history=history) as asdf_file:
                buffer = io.BytesIO()
                asdf_file.write_to(buffer, all_array_storage="internal", all_array_compression="zlib")
            self.write(generate_asdf_filename(instrument=instrument, start_time=start, dataset_id=dataset_id),
                       buffer.getvalue(), ("product", "asdf"), "application/asdf")
        records = S3PipelineRecords(self.context.s3, self.context.work_bucket)
        provenance = sorted(records.recorded(records.link(self.run_id), "provenance"), key=lambda p: p["recorded_at"])
        self.write_json(f"{dataset_id}_pipeline_provenance.json", provenance, ("product", "pipeline-provenance"))
        metrics = quality_data(records.recorded(None, "quality", dataset_id))
        if metrics:
            quality_json = [{camel: record.get(camel) for camel in QUALITY_FIELDS} for record in
                            records.recorded(None, "quality", dataset_id)]
            self.write_json(f"{dataset_id}_quality_data.json", quality_json, ("product", "quality-data"))
            self.write(generate_quality_report_filename(dataset_id), format_report(metrics, dataset_id),
                       ("product", "quality-report"), "application/pdf")
        print(f"obsflow host: {len(json_headers)} L1 frame(s) of dataset {dataset_id}: inventory, ASDF and "
              f"{'a quality report of ' + str(len(metrics)) + ' metric(s)' if metrics else 'no quality data'}")
