"""From a READY candidate to a recipe instance, its input dataset document and a READY run.

Ids derive from the candidate and recipe version, and every record is written with
a does-not-exist condition, so planning the same candidate twice (readiness
signalled twice, two submitters at once) still gives exactly one run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from obsflow import aws
from obsflow.ingest.store import transient
from obsflow.observability import logger
from obsflow.recipes import registry
from obsflow.recipes.model import Recipe
from obsflow.runs import documents, layout
from obsflow.runs.lifecycle import now
from obsflow.settings import Settings
from obsflow.tables import candidates as candidates_table
from obsflow.tables import runs
from obsflow.tables.base import save_if_new, update_if
from obsflow.tables.candidates import CandidateItem
from obsflow.tables.frames import FrameItem, frames_of_op
from obsflow.tables.recipe_instances import RecipeInstanceItem
from obsflow.tables.runs import HistoryEntry, RunItem


@dataclass(frozen=True)
class Plan:
    instance_id: str
    run_id: str
    recipe: Recipe
    created: bool


def input_dataset(candidate: CandidateItem, recipe: Recipe, frames: list[FrameItem]) -> dict:
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


def new_run(instance: RecipeInstanceItem, recipe: Recipe, configuration: dict, priority: int, at: dt.datetime,
            overrides: dict | None = None, retry_of: str | None = None, run_id: str | None = None) -> RunItem:
    run_id = run_id or layout.run_id(instance.instance_id, retry_of)
    return RunItem(
        run_id,
        instance_id=instance.instance_id,
        candidate_id=instance.candidate_id,
        proposal_id=instance.proposal_id,
        recipe=recipe.name,
        version=recipe.version,
        priority=priority,
        resource_classes=recipe.resource_classes(),
        status=runs.READY,
        queue_key=runs.queue_key(priority, at, run_id),
        configuration=configuration,
        overrides=overrides,
        history=[HistoryEntry(status=runs.READY, at=at, detail=f"retry of {retry_of}" if retry_of else "planned")],
        created_at=at,
        retry_of=retry_of,
    )


def write_run_document(settings: Settings, run: RunItem, instance: RecipeInstanceItem, manual: bool = False) -> None:
    """What a task needs to know about its run; tasks read S3 only, never the tables."""
    documents.put_json(aws.client(settings, "s3"), settings.bucket_name("work"), layout.run_document_key(run.run_id), {
        "run_id": run.run_id,
        "instance_id": instance.instance_id,
        "candidate_id": instance.candidate_id,
        "proposal_id": instance.proposal_id,
        "recipe": run.recipe,
        "recipe_version": run.version,
        "configuration": run.configuration,
        "input_dataset": {"bucket": settings.bucket_name("work"), "key": instance.input_dataset_key,
                          "sha256": instance.input_dataset_sha256},
        "manual": manual,
    })


def plan(settings: Settings, candidate: CandidateItem) -> Plan:
    """The candidate's recipe instance and first run (created now, or found)."""
    recipe = registry.select(candidate.instrument, candidate.recipe)
    at = now()
    instance_id = layout.instance_id(candidate.candidate_id, recipe.name, recipe.version)
    with transient(f"could not plan candidate {candidate.candidate_id}"):
        frames = [frame for op_id in candidate.op_ids for frame in frames_of_op(op_id)]
        dataset = input_dataset(candidate, recipe, frames)
        key = layout.input_dataset_key(instance_id)
        sha256 = documents.put_json(aws.client(settings, "s3"), settings.bucket_name("work"), key, dataset)
        instance = RecipeInstanceItem(
            instance_id,
            candidate_id=candidate.candidate_id,
            proposal_id=candidate.proposal_id,
            recipe=recipe.name,
            version=recipe.version,
            input_dataset_key=key,
            input_dataset_sha256=sha256,
            observed_on=dataset["observed_on"],
            created_at=at,
        )
        save_if_new(instance)
        instance = RecipeInstanceItem.get(instance_id, consistent_read=True)
        priority = candidate.priority if candidate.priority is not None else recipe.priority
        configuration = recipe.as_run_configuration(dt.date.fromisoformat(instance.observed_on))
        run = new_run(instance, recipe, configuration, priority, at)
        write_run_document(settings, run, instance)
        created = save_if_new(run)
        instance.update(actions=[RecipeInstanceItem.run_ids.add({run.run_id})])
        update_if(
            CandidateItem(candidate.candidate_id),
            [CandidateItem.status.set(candidates_table.PLANNED), CandidateItem.instance_id.set(instance_id)],
            CandidateItem.status == candidates_table.READY,
        )
    if created:
        logger.info("run planned", extra={"candidate_id": candidate.candidate_id, "run_id": run.run_id, "recipe": recipe.key})
    return Plan(instance_id, run.run_id, recipe, created)
