"""What the state machine's Lambdas do: StartRun, Catalog, FinishRun, FailRun."""

from __future__ import annotations

from obsflow import aws
from obsflow.errors import NotFound
from obsflow.ingest.store import transient
from obsflow.observability import logger
from obsflow.recipes import registry
from obsflow.runs import documents, layout, lifecycle, submitter
from obsflow.settings import Settings
from obsflow.tables import datasets, runs
from obsflow.tables.datasets import DatasetItem
from obsflow.tables.runs import RunItem


def start_run(settings: Settings, run_id: str, execution_arn: str) -> dict:
    run = lifecycle.require(run_id)
    at = lifecycle.now()
    lifecycle.transition(
        run_id, runs.RUNNING, (runs.SUBMITTED,), detail=execution_arn,
        actions=[RunItem.started_at.set(at), RunItem.execution_arn.set(execution_arn), RunItem.error.remove()], at=at,
    )
    return {"run_id": run_id, "recipe": run.recipe, "version": run.version, "proposal_id": run.proposal_id}


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


def catalog(settings: Settings, run_id: str) -> dict:
    """Copy the run's products to <proposal>/<dataset id>/ in the data bucket and record the dataset."""
    run = lifecycle.require(run_id)
    s3 = aws.client(settings, "s3")
    work, data = settings.bucket_name("work"), settings.bucket_name("data")
    dataset_id = layout.dataset_id(run_id)
    prefix = layout.dataset_prefix(run.proposal_id, dataset_id)
    records = task_records(settings, run)
    files = []
    with transient(f"could not catalogue run {run_id}"):
        for record in records:
            for output in record.get("outputs", []):
                if "product" not in output["tags"]:
                    continue
                key = prefix + output["name"]
                s3.copy_object(Bucket=data, Key=key, CopySource={"Bucket": work, "Key": output["key"]})
                files.append({"name": output["name"], "key": key, "sha256": output["sha256"], "size": output["size"],
                              "task": record["task"], "content_type": output.get("content_type")})
        provenance = {
            "run_id": run_id,
            "recipe": run.recipe,
            "recipe_version": run.version,
            "instance_id": run.instance_id,
            "configuration": run.configuration,
            "tasks": [{k: v for k, v in record.items() if k != "outputs"} for record in records],
        }
        documents.put_json(s3, data, prefix + "provenance.json", provenance)
        item = DatasetItem(
            dataset_id, run_id=run_id, proposal_id=run.proposal_id, candidate_id=run.candidate_id,
            recipe=f"{run.recipe}@{run.version}", bucket=data, prefix=prefix, files=files, provenance=provenance,
            created_at=lifecycle.now(),
        )
        if datasets.get(dataset_id) is None:
            item.save()
        run.update(actions=[RunItem.dataset_id.set(dataset_id)])
    summary = f"{len(files)} file(s) under s3://{data}/{prefix}: " + ", ".join(f["name"] for f in files)
    logger.info("dataset catalogued", extra={"run_id": run_id, "dataset_id": dataset_id, "files": len(files)})
    return {
        "dataset_id": dataset_id,
        "proposal_id": run.proposal_id,
        "subject": f"obsflow: dataset {dataset_id} of proposal {run.proposal_id} is available",
        "message": documents.encode({
            "dataset_id": dataset_id, "proposal_id": run.proposal_id, "candidate_id": run.candidate_id,
            "recipe": f"{run.recipe}@{run.version}", "location": f"s3://{data}/{prefix}", "files": files,
            "summary": summary,
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
