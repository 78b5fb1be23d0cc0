"""Manual by exception: retry a failed run with adjusted configuration, or resume (redrive) it."""

from __future__ import annotations

import datetime as dt
import json

from obsflow.errors import NotFound, ObsflowError
from obsflow.recipes import registry
from obsflow.runs import layout, lifecycle, planner, submitter
from obsflow.settings import Settings
from obsflow.tables import recipe_instances, runs
from obsflow.tables.base import save_if_new
from obsflow.tables.recipe_instances import RecipeInstanceItem
from obsflow.tables.runs import RunItem


class NotAllowed(ObsflowError):
    """The run is not in a state that allows this operation."""


def _ended(run_id: str, allowed: tuple[str, ...]) -> RunItem:
    run = lifecycle.require(run_id)
    if run.status not in allowed:
        raise NotAllowed(f"run {run_id} is {run.status}; only a {' or '.join(allowed)} run can be "
                         f"{'retried' if len(allowed) > 1 else 'redriven'}")
    return run


def retry(settings: Settings, run_id: str, overrides: dict[str, str]) -> RunItem:
    """A new run of the same recipe instance, its configuration adjusted, linked to the earlier run.

    Retrying a SUCCEEDED run reprocesses it: a new dataset of the same product, the old one
    DEPRECATED. The same retry asked twice names the same new run (its id derives from the overrides).
    """
    failed = _ended(run_id, (runs.FAILED, runs.SUCCEEDED))
    recipe = registry.get(failed.recipe, failed.version)
    instance = recipe_instances.get(failed.instance_id)
    if instance is None:
        raise NotFound(f"the recipe instance {failed.instance_id} of run {run_id} is gone")
    merged = {**(failed.overrides or {}), **overrides}
    configuration = recipe.as_run_configuration(dt.date.fromisoformat(instance.observed_on), merged)
    new_id = layout.run_id(instance.instance_id, retry_of=run_id, attempt=json.dumps(merged, sort_keys=True))
    existing = runs.get(new_id)
    if existing is not None:
        return existing
    run = planner.new_run(instance, recipe, configuration, int(failed.priority), lifecycle.now(),
                          overrides=merged, retry_of=run_id, run_id=new_id)
    planner.write_run_document(settings, run, instance)
    save_if_new(run)
    instance.update(actions=[RecipeInstanceItem.run_ids.add({new_id})])
    submitter.nudge(settings, f"retry of {run_id}")
    return runs.get(new_id)


def redrive(settings: Settings, run_id: str) -> RunItem:
    """Resume the failed run: a new execution of the same run; tasks that succeeded reuse their outputs."""
    _ended(run_id, (runs.FAILED,))  # only a FAILED run can be redriven
    lifecycle.transition(run_id, runs.READY, (runs.FAILED,), detail="redrive",
                         actions=[RunItem.redrives.add(1), RunItem.execution_arn.remove(), RunItem.finished_at.remove()])
    submitter.nudge(settings, f"redrive of {run_id}")
    return runs.get(run_id)
