"""The documents a run is made of, built from domain objects: pure functions, no I/O."""

from __future__ import annotations

import datetime as dt
import json

from obsflow.embargo import Proposal
from obsflow.recipes.model import Recipe
from obsflow.runs import layout
from obsflow.runs.domain import Campaign, Dataset, FrameRef, Instance, Run


def input_dataset(instance: Instance, recipe: Recipe, frames: list[tuple[FrameRef, str]], upstream: list[dict],
                  instrument: str) -> dict:
    """Every input of the instance: frames with their role, upstream datasets with their files, and the
    parameter values effective on the observation date."""
    return {
        "instance_id": instance.instance_id,
        "candidate_id": instance.candidate_id,
        "proposal_id": instance.proposal_id,
        "instrument": instrument,
        "reference": instance.reference,
        "observed_on": instance.observed_on,
        "recipe": recipe.name,
        "recipe_version": recipe.version,
        "inputs": [i.as_dict() for i in instance.inputs],
        "parameters": recipe.as_run_configuration(dt.date.fromisoformat(instance.observed_on))["parameters"],
        "frames": [
            {
                "file_id": f.file_id,
                "op_id": f.op_id,
                "role": role,
                "task_type": f.task_type,
                "date_obs": f.date_obs,
                "proposal_id": f.proposal_id,
                "bucket": f.bucket,
                "key": f.key,
                "version_id": f.version_id,
                "etag": f.etag,
                "size": f.size,
                **({"setup": {"exposure_ms": f.exposure_ms, "filter": f.filter, "camera": f.camera}}
                   if (f.exposure_ms, f.filter, f.camera) != (None, None, None) else {}),
            }
            for f, role in sorted(frames, key=lambda fr: (fr[0].op_id, fr[0].date_obs, fr[0].file_id))
        ],
        "upstream": sorted(upstream, key=lambda u: (u["role"], u["instance_id"])),
    }


def upstream_entry(role: str, dataset: Dataset) -> dict:
    """An upstream dataset as an input: the instance that made it, where each of its products is, tags and SHA-256
    (the intermediates a developer's dataset keeps are no one's input)."""
    return {"role": role, "instance_id": dataset.instance_id, "dataset_id": dataset.dataset_id, "recipe": dataset.recipe,
            "kind": dataset.kind, "product_id": dataset.product_id, "version_key": dataset.version_key,
            "release_basis": dataset.release_basis,
            "files": [{"name": f["name"], "bucket": dataset.bucket, "key": f["key"], "sha256": f["sha256"],
                       "tags": f["tags"], "size": f["size"]} for f in dataset.files if "product" in f["tags"]]}


def run_document(run: Run, instance: Instance, work_bucket: str, recipe: Recipe, campaign: Campaign | None = None,
                 manual: bool = False, chunks: dict[str, int] | None = None) -> dict:
    """What a task needs to know about its run; tasks read S3 only, never the tables. ``chunks``: how many
    chunks each data-parallel task runs in."""
    return {
        "run_id": run.run_id,
        "retry_of": run.retry_of,  # the run this one replaces (a hosted pipeline removes its scratch)
        "instance_id": instance.instance_id,
        "candidate_id": instance.candidate_id,
        "proposal_id": instance.proposal_id,
        "recipe": run.recipe,
        "recipe_version": run.version,
        "configuration": run.configuration,
        "reference": instance.reference,
        "input_dataset": {"bucket": work_bucket, "key": run.input_dataset_key, "sha256": run.input_dataset_sha256},
        "recipe_definition": recipe.model_dump(mode="json"),
        "manual": manual,
        "campaign": campaign.name if campaign else None,
        "task_image": campaign.task_image if campaign else None,
        "rerun_from_task": campaign.rerun_from_task if campaign else None,
        "chunks": chunks or {},
    }


def version_key(input_dataset: dict, run: Run, records: list[dict], recipe: Recipe) -> str:
    """What the products depend on: input frames, parameter values, task order, code versions, manual influence."""
    return layout.digest_of({
        "frames": sorted((f["file_id"], f.get("etag") or "") for f in input_dataset["frames"]),
        "upstream": sorted(u["version_key"] for u in input_dataset.get("upstream", [])),
        "configuration": run.configuration,
        "task_order": [[task.name for task in level] for level in recipe.levels()],
        "code": sorted({(r["task"], r["code_version"], json.dumps(r["libraries"], sort_keys=True)) for r in records}),
        "manual": sorted((r["task"], bool(r["manual"]), r.get("operator") or "", r.get("note") or "") for r in records),
    })[:16]


def provenance(run: Run, input_dataset: dict, records: list[dict]) -> dict:
    return {
        "run_id": run.run_id, "recipe": run.recipe, "recipe_version": run.version, "instance_id": run.instance_id,
        "candidate_id": run.candidate_id, "configuration": run.configuration,
        "input_frames": [{k: f.get(k) for k in ("file_id", "op_id", "role", "task_type", "key", "version_id", "etag")}
                         for f in input_dataset["frames"]],
        "upstream_datasets": [{**{k: u[k] for k in ("role", "instance_id", "dataset_id", "recipe", "kind", "version_key")},
                               **({"association": u["association"]} if "association" in u else {})}
                              for u in input_dataset.get("upstream", [])],
        "tasks": [{k: v for k, v in record.items() if k != "outputs"} for record in records],
    }


def release_sentence(proposal_id: str, release: dt.date, embargoed: bool, proposal: Proposal | None) -> str:
    """What the PI is told about access to the dataset."""
    if not embargoed:
        return f"Public since {release.isoformat()}: the archive serves it to everyone."
    rule = proposal.rule if proposal else "no proposal document received: the default embargo applies"
    return (f"Under embargo until {release.isoformat()} ({rule}): until then only principals of proposal "
            f"{proposal_id} can read it.")


def availability_message(dataset_id: str, product_id: str, version: str, run: Run, location: str,
                         files: list[dict], release: dt.date, embargoed: bool,
                         proposal: Proposal | None) -> tuple[str, dict]:
    """The PI's notification: a subject and a JSON body, stating when the dataset becomes public."""
    l1_count = sum("l1" in f["tags"] for f in files)
    names = [f["name"] for f in files if "l1" not in f["tags"]]
    summary = f"{len(files)} file(s) under {location}" + (f": {l1_count} L1 frames" if l1_count else "") + \
              (f"{', ' if l1_count else ': '}{', '.join(names)}" if names else "")
    subject = f"obsflow: dataset {dataset_id} of proposal {run.proposal_id} is available"
    return subject, {
        "dataset_id": dataset_id, "product_id": product_id, "version": version, "proposal_id": run.proposal_id,
        "candidate_id": run.candidate_id, "recipe": run.recipe_key, "location": location, "l1_frames": l1_count,
        "files": names, "summary": summary, "release_date": release.isoformat(),
        "embargoed": embargoed, "access": release_sentence(run.proposal_id, release, embargoed, proposal),
        "pi": {"name": proposal.pi_name, "email": proposal.pi_email} if proposal else None,
    }
