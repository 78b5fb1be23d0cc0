"""The documents a run is made of, built from domain objects: pure functions, no I/O."""

from __future__ import annotations

import datetime as dt
import json

from obsflow.recipes.model import Recipe
from obsflow.runs import layout
from obsflow.runs.domain import Candidate, FrameRef, Instance, Run


def input_dataset(candidate: Candidate, recipe: Recipe, frames: list[FrameRef]) -> dict:
    """Every observe and calibration frame, and the parameter values effective at the observation date."""
    observe = sorted(f.date_obs for f in frames if f.op_id == candidate.observe_op)
    if not observe:
        raise ValueError(f"candidate {candidate.candidate_id} has no frames of its observe OP {candidate.observe_op}")
    observed_on = dt.date.fromisoformat(observe[0][:10])
    return {
        "candidate_id": candidate.candidate_id,
        "proposal_id": candidate.proposal_id,
        "instrument": candidate.instrument,
        "observe_op": candidate.observe_op,
        "calibration_ops": list(candidate.calibration_ops),
        "observed_on": observed_on.isoformat(),
        "recipe": recipe.name,
        "recipe_version": recipe.version,
        "parameters": recipe.as_run_configuration(observed_on)["parameters"],
        "frames": [
            {
                "file_id": f.file_id,
                "op_id": f.op_id,
                "role": "observe" if f.op_id == candidate.observe_op else "calibration",
                "task_type": f.task_type,
                "date_obs": f.date_obs,
                "bucket": f.bucket,
                "key": f.key,
                "version_id": f.version_id,
                "etag": f.etag,
                "size": f.size,
            }
            for f in sorted(frames, key=lambda f: (f.op_id, f.date_obs, f.file_id))
        ],
    }


def run_document(run: Run, instance: Instance, work_bucket: str, manual: bool = False) -> dict:
    """What a task needs to know about its run; tasks read S3 only, never the tables."""
    return {
        "run_id": run.run_id,
        "instance_id": instance.instance_id,
        "candidate_id": instance.candidate_id,
        "proposal_id": instance.proposal_id,
        "recipe": run.recipe,
        "recipe_version": run.version,
        "configuration": run.configuration,
        "input_dataset": {"bucket": work_bucket, "key": instance.input_dataset_key,
                          "sha256": instance.input_dataset_sha256},
        "manual": manual,
    }


def version_key(input_dataset: dict, run: Run, records: list[dict], recipe: Recipe) -> str:
    """What the products depend on: input frames, parameter values, task order, code versions, manual influence."""
    return layout.digest_of({
        "frames": sorted((f["file_id"], f.get("etag") or "") for f in input_dataset["frames"]),
        "configuration": run.configuration,
        "task_order": [[task.name for task in level] for level in recipe.levels()],
        "code": sorted({(r["task"], r["code_version"], json.dumps(r["libraries"], sort_keys=True)) for r in records}),
        "manual": sorted((r["task"], bool(r["manual"]), r.get("operator") or "", r.get("note") or "") for r in records),
    })[:16]


def provenance(run: Run, input_dataset: dict, records: list[dict]) -> dict:
    return {
        "run_id": run.run_id, "recipe": run.recipe, "recipe_version": run.version, "instance_id": run.instance_id,
        "candidate_id": run.candidate_id, "configuration": run.configuration,
        "input_frames": [{k: f.get(k) for k in ("file_id", "op_id", "task_type", "key", "version_id", "etag")}
                         for f in input_dataset["frames"]],
        "tasks": [{k: v for k, v in record.items() if k != "outputs"} for record in records],
    }


def availability_message(dataset_id: str, product_id: str, version: str, run: Run, location: str,
                         files: list[dict]) -> tuple[str, dict]:
    """The PI's notification: a subject and a JSON body."""
    l1_count = sum("l1" in f["tags"] for f in files)
    names = [f["name"] for f in files if "l1" not in f["tags"]]
    summary = f"{len(files)} file(s) under {location}" + (f": {l1_count} L1 frames" if l1_count else "") + \
              (f"{', ' if l1_count else ': '}{', '.join(names)}" if names else "")
    subject = f"obsflow: dataset {dataset_id} of proposal {run.proposal_id} is available"
    return subject, {
        "dataset_id": dataset_id, "product_id": product_id, "version": version, "proposal_id": run.proposal_id,
        "candidate_id": run.candidate_id, "recipe": run.recipe_key, "location": location, "l1_frames": l1_count,
        "files": names, "summary": summary,
    }
