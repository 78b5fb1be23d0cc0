"""Read models for the operator: records as plain dicts, joined the way people ask."""

from __future__ import annotations

import datetime as dt

from obsflow import embargo
from obsflow.statuses import FAILED, READY, SUCCEEDED
from obsflow.errors import NotFound
from obsflow.ingest.readiness import missing
from obsflow.ingest.store import op_state
from obsflow.recipes import asl, registry
from obsflow.recipes.model import Recipe
from obsflow.tables import (
    candidates,
    conflicts,
    datasets,
    frames,
    observing_programs,
    parameter_values,
    proposals,
    quarantine,
    recipe_instances,
    recipes,
    runs,
)
from obsflow.windows import Windows, closed_reason_prefix


def frame_rows(op_id: str | None, default_embargo_days: int) -> list[dict]:
    """The frames, each with its release date (from its proposal's document in force, read now)."""
    items = frames.frames_of_op(op_id) if op_id else sorted(frames.all_frames(), key=lambda f: (f.op_id, f.date_obs))
    known = proposals.get_many({item.proposal_id for item in items})
    return [{**item.attribute_values, "release_date": embargo.release_date(
        known.get(item.proposal_id), dt.date.fromisoformat(item.date_obs[:10]), default_embargo_days).isoformat()}
        for item in items]


def proposal_rows() -> list[dict]:
    return [{k: v for k, v in item.attribute_values.items() if k != "events"} for item in proposals.all_proposals()]


def proposal_detail(proposal_id: str, default_embargo_days: int) -> dict:
    """One proposal: its PI, its embargo rule, its datasets still under embargo and its document's history."""
    item = proposals.get_item(proposal_id)
    under = [{"dataset_id": d.dataset_id, "kind": d.kind, "release_date": d.release_date}
             for d in datasets.listed_where("under_embargo", embargo.EMBARGOED) if d.proposal_id == proposal_id]
    if item is None:
        if not under:
            raise NotFound(f"no proposal document {proposal_id!r} and no dataset of it under embargo; `obsflow "
                           "proposals list` shows the known ones")
        return {"proposal_id": proposal_id, "rule": f"no document: the default embargo ({default_embargo_days} days "
                                                    "after observation)", "under_embargo": under, "events": []}
    return {**{k: v for k, v in item.attribute_values.items() if k != "events"},
            "rule": proposals.proposal_of(item).rule, "under_embargo": under, "events": conflicts.history(item)}


def quarantine_rows() -> list[dict]:
    return [item.attribute_values for item in quarantine.all_quarantined()]


def op_rows() -> list[dict]:
    return [
        {**{k: v for k, v in op.attribute_values.items() if k != "events"}, "received": op_state(op).received,
         "complete": op_state(op).complete, "conflicts": len(op.events or ())}
        for op in observing_programs.all_ops()
    ]


def op_detail(op_id: str) -> dict:
    """One OP: its counts, its candidates and its conflict history."""
    op = observing_programs.get_many([op_id]).get(op_id)
    if op is None:
        raise NotFound(f"no observing program {op_id!r}; `obsflow ops list` shows the known ones")
    state = op_state(op)
    return {**{k: v for k, v in op.attribute_values.items() if k != "events"}, "received": state.received,
            "complete": state.complete, "late_frames": int(op.late_frames or 0), "events": conflicts.history(op)}


def _runs_of(candidate) -> list:
    instance = recipe_instances.get(candidate.instance_id) if candidate.instance_id else None
    if instance is None or not instance.run_ids:
        return []
    return list(runs.RunItem.batch_get(sorted(instance.run_ids)))


def _candidate_row(candidate) -> dict:
    run_items = _runs_of(candidate)
    return {
        **{k: v for k, v in candidate.attribute_values.items() if k != "events"},
        "ops": candidate.op_ids,
        "processing": derived_status(run_items),
        "run_ids": [r.run_id for r in sorted(run_items, key=lambda r: r.created_at)],
    }


def candidate_rows() -> list[dict]:
    return [_candidate_row(c) for c in candidates.all_candidates()]


def candidate_detail(candidate_id: str) -> dict:
    candidate = candidates.get(candidate_id)
    if candidate is None:
        raise NotFound(f"no candidate {candidate_id!r}; `obsflow candidates list` shows the known ones")
    ops = observing_programs.get_many(candidate.op_ids)
    states = {op_id: op_state(op) for op_id, op in ops.items()}
    lacking = missing(candidate.op_ids, states)
    return {
        **_candidate_row(candidate),
        "events": conflicts.history(candidate),
        "ops": [
            {
                "op_id": op_id,
                "role": "observe" if op_id == candidate.observe_op else "calibration",
                "task_type": ops[op_id].task_type if op_id in ops else None,
                "expected": states[op_id].expected if op_id in states else None,
                "received": states[op_id].received if op_id in states else 0,
                "complete": op_id not in lacking,
                "missing": lacking.get(op_id),
            }
            for op_id in candidate.op_ids
        ],
    }


# -- recipes and runs -----------------------------------------------------------------
def recipe_rows() -> list[dict]:
    return [
        {**item.attribute_values, "tasks": [t["name"] for t in item.definition["tasks"]],
         "description": item.definition["description"]}
        for item in recipes.all_recipes()
    ]


def recipe_detail(name: str) -> dict:
    """The latest registered version, with the parameter values set as data (and who set them, and why)."""
    versions = recipes.versions(name)
    recipe = registry.registered(name)
    latest = next(item for item in versions if item.version == recipe.version)
    return {
        **recipe.model_dump(mode="json"),
        "versions": sorted((r.version for r in versions), key=registry.version_key),
        "state_machine": latest.state_machine,
        "registered_by": latest.registered_by,
        "levels": [[task.name for task in level] for level in recipe.levels()],
        "set_values": [{k: item.attribute_values.get(k) for k in ("parameter", "value", "effective_from", "set_by",
                                                                  "reason", "set_at")}
                       for item in parameter_values.of_recipe(name)],
    }


def derived_status(run_items: list) -> str | None:
    """An instance's (or candidate's) status: that of its latest run."""
    if not run_items:
        return None
    return max(run_items, key=lambda r: r.created_at).status


def run_rows(status: str | None = None) -> list[dict]:
    items = runs.with_status(status) if status else runs.all_runs()
    return [_run_row(item) for item in items]


def _run_row(item) -> dict:
    row = dict(item.attribute_values)
    row["history"] = [entry.as_dict() for entry in item.history]
    end = item.finished_at
    row["duration_s"] = round((end - item.started_at).total_seconds(), 1) if end and item.started_at else None
    return row


def run_detail(run_id: str, sfn=None, console_links: bool = False) -> dict:
    item = runs.get(run_id)
    if item is None:
        raise NotFound(f"no run {run_id!r}; `obsflow runs list` shows the known ones")
    detail = _run_row(item)
    recipe = Recipe.model_validate(recipes.RecipeItem.get(item.recipe, item.version).definition)
    progress = task_progress(sfn, item.execution_arn) if sfn is not None and item.execution_arn else {}
    detail["tasks"] = [
        {"task": task.name, "resource_class": task.resource_class, "upstreams": list(task.upstreams),
         **progress.get(task.name, {"status": "pending", "started": None, "ended": None})}
        for task in recipe.tasks
    ]
    if console_links and item.execution_arn:
        region = item.execution_arn.split(":")[3]
        detail["console"] = (f"https://{region}.console.aws.amazon.com/states/home?region={region}"
                             f"#/v2/executions/details/{item.execution_arn}")
    return detail


def ended_run_detail(run_id: str, sfn, run_service, console_links: bool = False) -> dict:
    """``run_detail``, and for an ended run each task's real final state and why it failed (if it did)."""
    detail = run_detail(run_id, sfn, console_links)
    if detail["status"] in (FAILED, SUCCEEDED):
        _settle_task_states(detail, run_service.finished_tasks(run_id))
        detail["failure"] = run_service.failure(run_id)
    return detail


def _settle_task_states(detail: dict, finished: set[str]) -> None:
    """An ended execution leaves the siblings of a failed task 'running' in its history: each either
    finished (its task record exists: ``finished``) or was stopped with the run; the tasks after them never ran."""
    for task in detail["tasks"]:
        if task["status"] == "running":
            task["status"] = "succeeded" if task["task"] in finished else "stopped"
        elif task["status"] == "pending":
            task["status"] = "not run"


def task_progress(sfn, execution_arn: str) -> dict[str, dict]:
    """State name -> status, start and end, from the execution history."""
    events = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        events.extend(page["events"])
    by_id = {event["id"]: event for event in events}

    def state_of(event) -> str | None:
        while event is not None:
            if event["type"].endswith("StateEntered"):
                return event["stateEnteredEventDetails"]["name"]
            event = by_id.get(event.get("previousEventId"))
        return None

    progress: dict[str, dict] = {}
    for event in events:
        kind = event["type"]
        if kind == "TaskStateEntered":
            # A data-parallel task runs from its chunks' (or whole) state entered to its exit (or, in state machines
            # made before the last chunk recorded the task, its gather's).
            task, part = asl.task_of_state(event["stateEnteredEventDetails"]["name"])
            if part != asl.GATHER:
                progress[task] = {"status": "running", "started": event["timestamp"], "ended": None}
        elif kind == "TaskStateExited":
            # A state also exits after a failure that a Catch turns into the failure path: it stays failed.
            task, _ = asl.task_of_state(event["stateExitedEventDetails"]["name"])
            entry = progress.setdefault(task, {"status": "running", "started": None})
            if entry["status"] == "failed":
                entry["ended"] = event["timestamp"]
            else:
                entry.update(status="succeeded", ended=event["timestamp"])
        elif kind == "PassStateEntered" and event["stateEnteredEventDetails"]["name"].endswith(f" {asl.REUSED}"):
            task, _ = asl.task_of_state(event["stateEnteredEventDetails"]["name"])  # StartRun found it made already
            progress[task] = {"status": "reused", "started": event["timestamp"], "ended": event["timestamp"]}
        elif kind == "TaskSucceeded":  # a Retry that succeeded after a failed attempt: running again, not failed
            task, _ = asl.task_of_state(state_of(event) or "")
            if progress.get(task, {}).get("status") == "failed":
                progress[task]["status"] = "running"
        elif kind in ("TaskFailed", "TaskTimedOut", "TaskSubmitFailed", "TaskStartFailed"):
            task, _ = asl.task_of_state(state_of(event) or "")
            if task in progress:
                progress[task].update(status="failed", ended=event["timestamp"])
    return progress


# -- datasets ----------------------------------------------------------------------------
def _dataset(dataset_id: str):
    item = datasets.get(dataset_id)
    if item is None:
        raise NotFound(f"no dataset {dataset_id!r}; `obsflow datasets list` shows the catalogued ones")
    return item


def _access(item) -> str:
    """Who may read the dataset, from the recorded facts: its release date, and when and how it was released."""
    if item.embargo:
        return f"under embargo until {item.release_date}: private to proposal {item.proposal_id}"
    early = next((d for d in reversed(item.decisions or []) if d.get("decision") == "release-early"), None)
    if early:
        return (f"public since {early['at'][:10]}, released before its release date {early['release_date']} by "
                f"{early['by']}: {early['reason']}")
    if item.released_at and item.released_at.date().isoformat() < item.release_date:  # never by the job: say so
        return f"public since {item.released_at.date()} although its release date is {item.release_date}: check it"
    return f"public since {item.release_date}"


def dataset_detail(dataset_id: str) -> dict:
    item = _dataset(dataset_id)
    detail = {k: v for k, v in item.attribute_values.items() if k not in ("files_inline", "provenance_inline", "spilled")}
    detail["files"] = item.files
    # frame_count counts the L1 frames it holds (none for master calibrations or summaries); this, what it came from
    detail["input_frames"] = len((item.provenance or {}).get("input_frames", []))
    # the master calibrations it was made from, each with its association's score (runs.association)
    detail["calibrations"] = [u for u in (item.provenance or {}).get("upstream_datasets", []) if u.get("kind") == "calibration"]
    if item.release_date:
        detail["access"] = _access(item)
    detail["versions"] = [{"dataset_id": d.dataset_id, "status": d.status, "version_key": d.version_key,
                           "created_at": d.created_at} for d in datasets.of_product(item.product_id)]
    return detail


def dataset_provenance(dataset_id: str) -> dict:
    """Runs, tasks with code versions and manual influence, and input frames of a dataset."""
    item = _dataset(dataset_id)
    provenance = item.provenance
    run = runs.get(item.run_id)
    chain, current = [], run
    while current is not None:
        chain.append({"run_id": current.run_id, "status": current.status, "retry_of": current.retry_of,
                      "created_at": current.created_at, "overrides": current.overrides})
        current = runs.get(current.retry_of) if current.retry_of else None
    return {
        "dataset_id": dataset_id, "product_id": item.product_id, "version_key": item.version_key,
        "recipe": item.recipe, "runs": chain, "configuration": provenance["configuration"],
        "tasks": [{k: t.get(k) for k in ("task", "recipe_version", "code_version", "libraries", "started_at",
                                         "finished_at", "manual", "operator", "note", "host")}
                  for t in provenance["tasks"]],
        "input_frames": provenance.get("input_frames", []),
    }


def window_rows(windows: Windows, at: dt.datetime) -> list[dict]:
    """Each processing window: open or not at ``at``, its next change, and the queued runs waiting for it."""
    reasons = [item.waiting_reason or "" for item in runs.with_status(READY)]
    return [{"key": state.key, "window": state.window.spec, "when": state.window.describe(windows.site),
             "open": state.open, "next_change": state.next_change,
             "runs_waiting": sum(reason.startswith(closed_reason_prefix(state.key)) for reason in reasons)}
            for state in windows.states(at)]
