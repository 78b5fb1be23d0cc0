"""Reused tasks recorded at the run's start, so that no job starts for them.

A task that declares ``reuse`` and whose digest (``runs.digests``) an earlier run already produced, with all
its outputs still there, has nothing to compute. StartRun records it for the run as its own job would (the
earlier run's outputs, ``reused_from``), and the state machine goes past it (``recipes.asl``: a Choice on
``reused.<task>``): a re-run of the quality report then starts no job for the frames it reuses. The task's
job, if it ran, would find the same and reuse too; a manual run and a task with an injected fault are left to
their jobs. A start delivered again answers as the first did.
"""

from __future__ import annotations

import hashlib
import json

import obsflow
from obsflow.errors import NotFound
from obsflow.recipes.model import Recipe
from obsflow.runs import layout
from obsflow.runs.digests import inputs_digest, recorded_under, task_digests
from obsflow.runs.ports import Documents

# What a reused task's record takes from the record of the run that computed its outputs.
KEPT_FROM_EARLIER = ("code_version", "libraries", "python", "host", "outputs")
NAMES_ITS_RUN = ("run_id", "finished_at")  # and what its ``reused_from`` says
AT_START = "reused_at_start"  # a task record's flag: recorded by StartRun, no job ran (Step Functions skipped it)


def reused_record(base: dict, earlier: dict) -> dict:
    """``base`` (the task, the run, when) completed from ``earlier``, the record of the run that made the outputs."""
    return {**base, **{k: earlier[k] for k in KEPT_FROM_EARLIER},
            "reused_from": {"run_id": earlier["run_id"], "finished_at": earlier["finished_at"]}}


def outputs_present(earlier: dict, keys: set[str]) -> bool:
    """Every output the earlier run recorded is still among ``keys`` (task outputs expire). A record lacking what
    a reused record takes from it (forged, or edited by hand) is not reused: the task's job computes it again."""
    if not isinstance(earlier, dict) or any(k not in earlier for k in (*KEPT_FROM_EARLIER, *NAMES_ITS_RUN)) \
            or not isinstance(earlier["outputs"], list):
        return False
    return all(isinstance(output, dict) and output.get("key") in keys for output in earlier["outputs"])


class StartReuse:
    """StartRun's part: which reusable tasks of a run are already made, recorded for the run."""

    def __init__(self, documents: Documents, clock):
        self.documents, self.clock = documents, clock

    def record(self, run_document: dict, recipe: Recipe) -> dict[str, bool]:
        """Task -> whether it is reused (its record written for the run): every task of ``recipe``."""
        reused = {task.name: False for task in recipe.tasks}
        candidates = [task for task in recipe.tasks if task.reuse]
        if not candidates or run_document.get("manual"):
            return reused  # a person running tasks by hand means them to run
        run_id = run_document["run_id"]
        input_dataset = self._as_planned(run_document["input_dataset"])
        if input_dataset is None:
            return reused  # the first job says what is missing or changed, with its ticket
        inputs = inputs_digest(input_dataset)
        digests = task_digests(recipe, run_document["configuration"], inputs, obsflow.__version__, run_id,
                               run_document.get("task_image") or "", run_document.get("rerun_from_task"))
        chunks = run_document.get("chunks") or {}
        under = recorded_under(recipe, digests, chunks)
        for task in candidates:
            key = layout.task_record_key(run_id, task.name)
            try:
                recorded = self.documents.get_json("work", key)
            except NotFound:
                recorded = None
            if recorded is not None:  # by a start delivered before (answered alike), or by its job
                reused[task.name] = bool(recorded.get(AT_START))
                continue
            if self.documents.exists("work", layout.fault_key(run_id, task.name)):
                continue
            earlier = self._earlier(under[task.name])
            if earlier is None:
                continue
            at = self.clock().isoformat()
            base = {"task": task.name, "entrypoint": task.entrypoint, "recipe": recipe.name,
                    "recipe_version": recipe.version, "run_id": run_id, "resource_class": task.resource_class,
                    "manual": False, "operator": None, "note": None, "started_at": at, "finished_at": at,
                    "duration_s": 0.0, "status": "succeeded", "error": None, AT_START: True,
                    "digest": layout.digest_of(under[task.name]) if len(under[task.name]) > 1 else digests[task.name]}
            record = reused_record(base, earlier[0])
            record["outputs"] = [output for found in earlier for output in found["outputs"]]  # in chunk order
            if len(earlier) > 1:
                record["chunks"] = len(earlier)
            self.documents.put_json("work", key, record)
            reused[task.name] = True
        return reused

    def _as_planned(self, dataset: dict) -> dict | None:
        """The run's input dataset if it is as planned (the SHA-256 recorded then), as a job checks it
        (``obsflow_tasks.runtime``); None if it is missing or changed since."""
        try:
            body = self.documents.get_bytes("work", dataset["key"])
        except NotFound:
            return None
        if dataset.get("sha256") and hashlib.sha256(body).hexdigest() != dataset["sha256"]:
            return None
        return json.loads(body)

    def _earlier(self, digests: list[str]) -> list[dict] | None:
        """The records that made the outputs of each digest (a chunk's, or the whole task's), if all are there."""
        found = []
        for digest in digests:
            try:
                earlier = self.documents.get_json("work", layout.task_output_record_key(digest))
            except NotFound:
                return None
            if not outputs_present(earlier, self.documents.keys("work", layout.task_output_prefix(digest))):
                return None
            found.append(earlier)
        return found
