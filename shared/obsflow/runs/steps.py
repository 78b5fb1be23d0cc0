"""What the state machine's Lambdas do: StartRun, Catalog, FinishRun, FailRun."""

from __future__ import annotations

import json

from obsflow import aws
from obsflow.errors import NotFound
from obsflow.ingest.store import transient
from obsflow.observability import logger
from obsflow.recipes import registry
from obsflow.runs import documents, layout, lifecycle, submitter
from obsflow.settings import Settings
from obsflow.tables import datasets, recipe_instances, runs
from obsflow.tables.base import save_if_new
from obsflow.tables.datasets import DatasetItem
from obsflow.tables.runs import RunItem


def start_run(settings: Settings, run_id: str, execution_arn: str) -> dict:
    run = lifecycle.require(run_id)
    at = lifecycle.now()
    lifecycle.transition(
        run_id, runs.RUNNING, (runs.SUBMITTED,), detail=execution_arn,
        actions=[RunItem.started_at.set(at), RunItem.execution_arn.set(execution_arn), RunItem.error.remove()], at=at,
    )
    return {"run_id": run_id, "recipe": run.recipe, "version": run.version, "proposal_id": run.proposal_id,
            "share_identifier": layout.share_identifier(run.proposal_id), "scheduling_priority": int(run.priority)}


def task_records(settings: Settings, run: RunItem) -> list[dict]:
    """The provenance record of every task of the run, in the order they finished."""
    s3 = aws.client(settings, "s3")
    recipe = registry.get(run.recipe, run.version)
    records = []
    for task in recipe.tasks:
        try:
            records.append(documents.get_json(s3, settings.bucket_name("work"), layout.task_record_key(run.run_id, task.name)))
        except NotFound:
            continue
    return sorted(records, key=lambda r: r.get("finished_at") or "")


def version_key(input_dataset: dict, run: RunItem, records: list[dict], recipe) -> str:
    """What the products depend on: input frames, parameter values, task order, code versions, manual influence."""
    return layout.digest_of({
        "frames": sorted((f["file_id"], f.get("etag") or "") for f in input_dataset["frames"]),
        "configuration": run.configuration,
        "task_order": [[task.name for task in level] for level in recipe.levels()],
        "code": sorted({(r["task"], r["code_version"], json.dumps(r["libraries"], sort_keys=True)) for r in records}),
        "manual": sorted((r["task"], bool(r["manual"]), r.get("operator") or "", r.get("note") or "") for r in records),
    })[:16]


def catalog(settings: Settings, run_id: str) -> dict:
    """Copy the run's products to <proposal>/<dataset id>/ in the data bucket and record the dataset."""
    run = lifecycle.require(run_id)
    s3 = aws.client(settings, "s3")
    work, data = settings.bucket_name("work"), settings.bucket_name("data")
    recipe = registry.get(run.recipe, run.version)
    dataset_id = layout.dataset_id(run_id)
    prefix = layout.dataset_prefix(run.proposal_id, dataset_id)
    records = task_records(settings, run)
    with transient(f"could not catalogue run {run_id}"):
        instance = recipe_instances.get(run.instance_id)
        input_dataset = documents.get_json(s3, work, instance.input_dataset_key)
        product_id = layout.product_id(f["file_id"] for f in input_dataset["frames"] if f["role"] == "observe")
        files = []
        for record in records:
            for output in record.get("outputs", []):
                if "product" not in output["tags"]:
                    continue
                key = prefix + output["name"]
                s3.copy_object(Bucket=data, Key=key, CopySource={"Bucket": work, "Key": output["key"]})
                files.append({"name": output["name"], "key": key, "sha256": output["sha256"], "size": output["size"],
                              "task": record["task"], "tags": output["tags"], "content_type": output.get("content_type")})
        s3.put_object(Bucket=data, Key=prefix + "SHA256SUMS", ContentType="text/plain",
                      Body="".join(f"{f['sha256']}  {f['name']}\n" for f in sorted(files, key=lambda f: f["name"])).encode())
        provenance = {
            "run_id": run_id, "recipe": run.recipe, "recipe_version": run.version, "instance_id": run.instance_id,
            "candidate_id": run.candidate_id, "configuration": run.configuration,
            "input_frames": [{k: f.get(k) for k in ("file_id", "op_id", "task_type", "key", "version_id", "etag")}
                             for f in input_dataset["frames"]],
            "tasks": [{k: v for k, v in record.items() if k != "outputs"} for record in records],
        }
        documents.put_json(s3, data, prefix + "provenance.json", provenance)
        key = version_key(input_dataset, run, records, recipe)
        save_if_new(DatasetItem(
            dataset_id, run_id=run_id, proposal_id=run.proposal_id, candidate_id=run.candidate_id,
            recipe=f"{run.recipe}@{run.version}", bucket=data, prefix=prefix, product_id=product_id,
            version_key=key, frame_count=sum("l1" in f["tags"] for f in files), files=files,
            provenance=provenance, created_at=lifecycle.now(),
        ))
        for older in datasets.of_product(product_id):
            if older.dataset_id != dataset_id and older.status == datasets.ACTIVE:
                older.update(actions=[DatasetItem.status.set(datasets.DEPRECATED),
                                      DatasetItem.superseded_by.set(dataset_id)])
        run.update(actions=[RunItem.dataset_id.set(dataset_id)])
    names = ", ".join(f["name"] for f in files if "l1" not in f["tags"])
    l1_count = sum("l1" in f["tags"] for f in files)
    summary = f"{len(files)} file(s) under s3://{data}/{prefix}" + (f": {l1_count} L1 frames" if l1_count else "") + \
              (f"{', ' if l1_count else ': '}{names}" if names else "")
    logger.info("dataset catalogued", extra={"run_id": run_id, "dataset_id": dataset_id, "files": len(files)})
    return {
        "dataset_id": dataset_id,
        "proposal_id": run.proposal_id,
        "subject": f"obsflow: dataset {dataset_id} of proposal {run.proposal_id} is available",
        "message": documents.encode({
            "dataset_id": dataset_id, "product_id": product_id, "version": key, "proposal_id": run.proposal_id,
            "candidate_id": run.candidate_id, "recipe": f"{run.recipe}@{run.version}",
            "location": f"s3://{data}/{prefix}", "l1_frames": l1_count,
            "files": [f["name"] for f in files if "l1" not in f["tags"]], "summary": summary,
        }).decode(),
    }


def finish_run(settings: Settings, run_id: str) -> dict:
    run = lifecycle.require(run_id)
    # Scratch first: a run that reads SUCCEEDED has no scratch left (a retried call deletes nothing more).
    with transient(f"could not remove the scratch of run {run_id}"):
        removed = documents.delete_prefix(aws.client(settings, "s3"), settings.bucket_name("work"), layout.scratch_prefix(run_id))
    at = lifecycle.now()
    lifecycle.transition(run_id, runs.SUCCEEDED, (runs.RUNNING,), actions=[RunItem.finished_at.set(at)], at=at)
    lifecycle.give_back_slots(run)
    logger.info("run succeeded", extra={"run_id": run_id, "scratch_objects_removed": removed})
    submitter.nudge(settings, f"run {run_id} finished")
    return {"run_id": run_id, "status": runs.SUCCEEDED, "scratch_objects_removed": removed}


def fail_run(settings: Settings, run_id: str, error: dict) -> dict:
    run = lifecycle.require(run_id)
    at = lifecycle.now()
    lifecycle.transition(
        run_id, runs.FAILED, (runs.SUBMITTED, runs.RUNNING), detail=error.get("Error"),
        actions=[RunItem.finished_at.set(at), RunItem.error.set(error)], at=at,
    )
    lifecycle.give_back_slots(run)
    logger.warning("run failed", extra={"run_id": run_id, "error": error.get("Error")})
    submitter.nudge(settings, f"run {run_id} failed")
    return {"run_id": run_id, "status": runs.FAILED}
