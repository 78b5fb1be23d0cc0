"""The base class of every task, and the tagged outputs tasks pass to each other.

A task reads the run's input dataset and its upstream tasks' outputs (selected by
tag), writes its own outputs under its digest's prefix (``layout.task_output_prefix``),
and the runtime records them with their SHA-256 in the task's provenance record.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from obsflow.errors import NotFound
from obsflow.recipes.model import Recipe, TaskSpec, chunk_bounds
from obsflow.runs import documents, layout
from obsflow.runs.digests import used_configuration

IO_WINDOW = 8  # files read ahead of, or written behind, a task that overlaps its S3 requests with its work


class TaskFailure(Exception):
    """The task cannot produce its outputs from these inputs (exit code 1: science/data)."""

    exit_code = 1
    kind = "science"


class ConfigurationFailure(TaskFailure):
    """The run's configuration makes the task fail (exit code 2: adjust and retry)."""

    exit_code = 2
    kind = "configuration"


class InfrastructureFailure(TaskFailure):
    """Something outside the task failed (exit code 3: resume the run once it is fixed)."""

    exit_code = 3
    kind = "infrastructure"


class MissingUpstream(InfrastructureFailure):
    """An upstream task has not recorded outputs for this run."""


class DeclaredValues(dict):
    def __init__(self, task: str, values: dict):
        super().__init__(values)
        self.task = task

    def __missing__(self, name: str):
        raise ConfigurationFailure(f"task {self.task} reads {name!r} but its recipe does not list it in the task's "
                                   "`uses`: add it there (in a new recipe version)")


@dataclass
class TaskContext:
    s3: Any
    work_bucket: str
    run: dict
    recipe: Recipe
    task: TaskSpec
    input_dataset: dict
    digest: str = ""
    manual: bool = False  # a person runs this task by hand (`obsflow runs execute --manual`)
    outputs: list[dict] = field(default_factory=list)
    chunk: tuple[int, int] = (0, 1)  # a data-parallel task's chunk: (index, count)


class Task:
    """Subclass and implement ``run()``; use the helpers to read inputs and write outputs."""

    def __init__(self, context: TaskContext):
        self.context = context
        self._observe: list[dict] | None = None
        self._records: dict[str, dict] = {}

    # -- what the task is given -------------------------------------------------
    @property
    def name(self) -> str:
        return self.context.task.name

    @property
    def run_id(self) -> str:
        return self.context.run["run_id"]

    @property
    def parameters(self) -> dict:
        return self._declared("parameters")

    @property
    def options(self) -> dict:
        return self._declared("options")

    def _declared(self, section: str) -> dict:
        """The values the task declares it uses: reading another would make its reuse unsound."""
        return DeclaredValues(self.name, used_configuration(self.context.task, self.context.run["configuration"])[section])

    @property
    def master_tags(self) -> tuple[str, ...]:
        """In a calibration recipe, intermediate masters are its products (catalogued for others to use)."""
        return ("product",) if self.context.recipe.kind == "calibration" else ()

    def frames(self, task_type: str | None = None, role: str | None = None) -> list[dict]:
        """Input frames (bucket, key, version, ETag, task type, ...) of the input dataset; of a data-parallel
        task, only its chunk's observe frames (in time order) and every other frame."""
        chunk = set(f["file_id"] for f in self.chunk_frames()) if self.context.task.data_parallel else None
        return [
            f for f in self.context.input_dataset["frames"]
            if (task_type is None or f["task_type"].lower() == task_type.lower()) and (role is None or f["role"] == role)
            and (chunk is None or f["role"] != "observe" or f["file_id"] in chunk)
        ]

    def observe_frames(self) -> list[dict]:
        """Every observe frame of the input dataset, in time order (the order chunks cut them in)."""
        if self._observe is None:
            observe = [f for f in self.context.input_dataset["frames"] if f["role"] == "observe"]
            self._observe = sorted(observe, key=lambda f: (f.get("date_obs") or "", f["file_id"]))
        return self._observe

    def chunk_frames(self) -> list[dict]:
        """This chunk's observe frames, in time order (all of them outside a data-parallel run)."""
        start, stop = self.chunk_bounds
        return self.observe_frames()[start:stop]

    @property
    def chunk_bounds(self) -> tuple[int, int]:
        """The [start, stop) indexes of this chunk's frames among every observe frame."""
        return chunk_bounds(len(self.observe_frames()), *self.context.chunk)

    def read_frame(self, frame: dict) -> bytes:
        """The frame as planned: its recorded version, and only while its ETag is the recorded one."""
        kwargs = {"VersionId": frame["version_id"]} if frame.get("version_id") else {}
        if frame.get("etag"):
            kwargs["IfMatch"] = frame["etag"]
        try:
            return self.context.s3.get_object(Bucket=frame["bucket"], Key=frame["key"], **kwargs)["Body"].read()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code not in ("PreconditionFailed", "412", "NoSuchVersion", "NoSuchKey", "404"):
                raise
            what = f"its ETag is no longer {frame['etag']}" if code in ("PreconditionFailed", "412") else "gone"
            raise ConfigurationFailure(
                f"frame {frame.get('file_id')} is not what was planned: s3://{frame['bucket']}/{frame['key']} "
                f"version {frame.get('version_id')} ({what}); nothing is processed from it: restore it, or plan "
                "the instance again") from exc

    # -- tagged outputs ---------------------------------------------------------
    def upstream_outputs(self, tag: str) -> list[dict]:
        """Outputs with ``tag`` written by tasks upstream of this one (directly or not), then the files
        with ``tag`` of upstream datasets (another instance's output, e.g. master calibrations)."""
        found = []
        for task in self._ancestors():
            found.extend(output for output in self._upstream_record(task)["outputs"] if tag in output["tags"])
        for upstream in self.context.input_dataset.get("upstream", []):
            found.extend(file for file in upstream["files"] if tag in file["tags"])
        return found

    def _upstream_record(self, task: str) -> dict:
        """An upstream task's record, read once per task run (a gathered one lists every chunk's outputs)."""
        if task not in self._records:
            try:
                self._records[task] = documents.get_json(self.context.s3, self.context.work_bucket,
                                                         layout.task_record_key(self.run_id, task))
            except NotFound as exc:
                raise MissingUpstream(f"upstream task {task} has no outputs for run {self.run_id} ({exc}); "
                                      "it has not run yet, or its outputs expired: redrive the run") from exc
        return self._records[task]

    def upstream_datasets(self, role: str | None = None) -> list[dict]:
        """The upstream datasets of the input dataset (with their files), optionally of one role."""
        return [u for u in self.context.input_dataset.get("upstream", []) if role is None or u["role"] == role]

    def read_output(self, output: dict) -> bytes:
        bucket = output.get("bucket") or self.context.work_bucket
        return self.context.s3.get_object(Bucket=bucket, Key=output["key"])["Body"].read()

    def read_json(self, tag: str) -> Any:
        """The one upstream JSON output with ``tag``: of this run's tasks if they wrote one, else of the upstream
        datasets (a master calibration's quality JSON is not a science run's own)."""
        outputs = self.upstream_outputs(tag)
        outputs = [o for o in outputs if not o.get("bucket")] or outputs  # an upstream dataset's files name theirs
        if len(outputs) != 1:
            raise TaskFailure(f"expected one upstream output tagged {tag!r}, found {len(outputs)}")
        return json.loads(self.read_output(outputs[0]))

    def write(self, name: str, data: bytes, tags: tuple[str, ...] = (), content_type: str = "application/octet-stream") -> dict:
        output = self._put(name, data, tags, content_type)
        self.context.outputs.append(output)
        return output

    def read_outputs(self, outputs: list[dict], pool: ThreadPoolExecutor, ahead: int = IO_WINDOW) -> Iterator[bytes]:
        """``read_output`` of each, in order, fetched side by side at most ``ahead`` ahead of the caller (a chunk's
        files are never all in memory at once)."""
        reads: deque[Future] = deque()
        for output in outputs:
            reads.append(pool.submit(self.read_output, output))
            if len(reads) > ahead:
                yield reads.popleft().result()
        while reads:
            yield reads.popleft().result()

    def write_many(self, files: Iterable[tuple[str, bytes]], pool: ThreadPoolExecutor, tags: tuple[str, ...] = (),
                   content_type: str = "application/octet-stream", behind: int = IO_WINDOW) -> None:
        """``write`` of each (name, data) as it comes, the uploads side by side while the next is made, at most
        ``behind`` waiting (the next is made only then); the outputs recorded in order."""
        writes: deque[Future] = deque()
        for name, data in files:
            writes.append(pool.submit(self._put, name, data, tags, content_type))
            if len(writes) > behind:
                self.context.outputs.append(writes.popleft().result())
        self.context.outputs.extend(write.result() for write in writes)

    def _put(self, name: str, data: bytes, tags: tuple[str, ...], content_type: str) -> dict:
        key = layout.task_output_prefix(self.context.digest) + name
        self.context.s3.put_object(Bucket=self.context.work_bucket, Key=key, Body=data, ContentType=content_type)
        return {"name": name, "key": key, "tags": list(tags), "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data), "content_type": content_type}

    def write_json(self, name: str, document: Any, tags: tuple[str, ...] = ()) -> dict:
        return self.write(name, documents.encode(document), tags, "application/json")

    def _ancestors(self) -> list[str]:
        by_name = {t.name: t for t in self.context.recipe.tasks}
        seen: list[str] = []
        pending = list(self.context.task.upstreams)
        while pending:
            name = pending.pop()
            if name not in seen:
                seen.append(name)
                pending.extend(by_name[name].upstreams)
        return seen

    def run(self) -> None:
        raise NotImplementedError
