"""Task digests: what a task's outputs depend on, so an unchanged task is reused, not re-run.

A task's digest covers its name and entrypoint, the task code version (the obsflow
release and the task image), the parameter and option values it uses, the run's inputs
(frames and upstream files) and the digests of its upstream tasks, so a change anywhere
above a task changes its digest too. A task that does not declare ``reuse`` also covers
the run id: its outputs may name the run (L1 headers carry the dataset id), so only the
same run (a redrive) reuses them. Pure functions: the runtime and the planner agree.
"""

from __future__ import annotations

from obsflow.recipes.model import Recipe, TaskSpec
from obsflow.runs.layout import digest_of


def inputs_digest(input_dataset: dict) -> str:
    """What the tasks read of the input dataset: each frame's object version and role, each upstream file's SHA-256.
    Not the instance, candidate or recipe version: a copy of an instance with the same inputs has the same digest."""
    return digest_of({
        "frames": sorted((f["file_id"], f["role"], f["bucket"], f["key"], f.get("version_id") or "", f.get("etag") or "")
                         for f in input_dataset["frames"]),
        "upstream": sorted((u["role"], file["name"], file["sha256"]) for u in input_dataset.get("upstream", [])
                           for file in u["files"]),
    })


def used_configuration(task: TaskSpec, configuration: dict) -> dict:
    """The parameter and option values the task reads (all of them unless it declares ``uses``)."""
    if task.uses is None:
        return configuration
    return {section: {k: v for k, v in values.items() if k in task.uses} for section, values in configuration.items()}


def task_digests(recipe: Recipe, configuration: dict, inputs: str, code_version: str, run_id: str,
                 image: str = "", rerun_from: str | None = None) -> dict[str, str]:
    """Every task's digest, upstream tasks first; ``rerun_from``: a task that runs again in this run whatever
    was recorded (and so does everything below it)."""
    digests: dict[str, str] = {}
    for level in recipe.levels():
        for task in level:
            digests[task.name] = digest_of({
                "task": task.name, "entrypoint": task.entrypoint, "code": code_version, "image": image,
                "configuration": used_configuration(task, configuration), "inputs": inputs,
                "upstreams": sorted(digests[name] for name in task.upstreams),
                "run": None if task.reuse and task.name != rerun_from else run_id,
            })
    return digests
