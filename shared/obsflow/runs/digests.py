"""Task digests: what a task's outputs depend on, so an unchanged task is reused, not re-run.

A task's digest covers its name and entrypoint, the task code version (the obsflow
release and the task image), the parameter and option values it uses, the run's inputs
(frames and upstream files) and the digests of its upstream tasks, so a change anywhere
above a task changes its digest too. A task that does not declare ``reuse`` also covers
the run id: its outputs may name the run (L1 headers carry the dataset id), so only the
same run (a redrive) reuses them. A data-parallel task run in chunks records each chunk's outputs under
a digest of its own (``chunk_digest``). Pure functions: the runtime and the planner agree.
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


def chunk_digest(digest: str, index: int, count: int) -> str:
    """The digest of chunk ``index`` of ``count`` of a data-parallel task: each chunk's outputs are its own."""
    return digest_of({"task": digest, "chunk": [index, count]})


def recorded_under(recipe: Recipe, digests: dict[str, str], chunks: dict[str, int]) -> dict[str, list[str]]:
    """The digests each task's outputs are recorded under: its own, or, of a data-parallel task run in several
    chunks (``chunks``: its chunk count), each chunk's. A task is reusable when all of them are recorded."""
    return {task.name: [chunk_digest(digests[task.name], i, chunks[task.name]) for i in range(chunks[task.name])]
            if chunks.get(task.name, 1) > 1 else [digests[task.name]] for task in recipe.tasks}
