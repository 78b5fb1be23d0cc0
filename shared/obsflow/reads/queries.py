"""Read models for the operator: records as plain dicts, joined the way people ask."""

from __future__ import annotations

import datetime as dt

from obsflow import embargo
from obsflow.errors import NotFound
from obsflow.ingest.readiness import OpState, missing
from obsflow.reads import pages
from obsflow.reads.ports import OperatorReads
from obsflow.recipes import asl, registry
from obsflow.runs.domain import Run, slot_wait
from obsflow.statuses import FAILED, READY, RUN_STATUSES, SUCCEEDED
from obsflow.windows import Windows, closed_reason_prefix


def _without_events(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "events"}


def _op_state(record: dict) -> OpState:
    return OpState(record.get("expected"), int(record.get("received") or 0))


def _op_ids(candidate: dict) -> list[str]:
    return [candidate["observe_op"], *(candidate.get("calibration_ops") or [])]


def _op_row(op: dict) -> dict:
    state = _op_state(op)
    return {**_without_events(op), "received": state.received, "complete": state.complete,
            "conflicts": len(op.get("events") or ())}


def derived_status(runs: list[Run]) -> str | None:
    """An instance's (or candidate's) status: that of its latest run."""
    if not runs:
        return None
    return max(runs, key=lambda r: r.created_at).status


def _run_row(record: dict) -> dict:
    end, start = record.get("finished_at"), record.get("started_at")
    return {**record, "duration_s": round((end - start).total_seconds(), 1) if end and start else None}


def _access(record: dict) -> str:
    """Who may read the dataset, from the recorded facts: its release date, and when and how it was released."""
    release_date, released_at = record["release_date"], record.get("released_at")
    if record.get("embargo"):
        return f"under embargo until {release_date}: private to proposal {record['proposal_id']}"
    early = next((d for d in reversed(record.get("decisions") or []) if d.get("decision") == "release-early"), None)
    if early:
        return (f"public since {early['at'][:10]}, released before its release date {early['release_date']} by "
                f"{early['by']}: {early['reason']}")
    if released_at and released_at.date().isoformat() < release_date:  # never by the job: say so
        return f"public since {released_at.date()} although its release date is {release_date}: check it"
    return f"public since {release_date}"


class Queries:
    def __init__(self, reads: OperatorReads):
        self.reads = reads

    # -- ingest's records ----------------------------------------------------------------
    def frame_rows(self, op_id: str | None, default_embargo_days: int) -> list[dict]:
        """The frames, each with its release date (from its proposal's document in force, read now)."""
        records = self.reads.frame_records(op_id)
        known = self.reads.proposals({record["proposal_id"] for record in records})
        return [{**record, "release_date": embargo.release_date(
            known.get(record["proposal_id"]), dt.date.fromisoformat(record["date_obs"][:10]),
            default_embargo_days).isoformat()} for record in records]

    def proposal_rows(self) -> list[dict]:
        return [_without_events(record) for record in self.reads.proposal_records()]

    def proposal_detail(self, proposal_id: str, default_embargo_days: int) -> dict:
        """One proposal: its PI, its embargo rule, its datasets still under embargo and its document's history."""
        record = self.reads.proposal_record(proposal_id)
        under = [{"dataset_id": d["dataset_id"], "kind": d["kind"], "release_date": d["release_date"]}
                 for d in self.reads.listed_datasets_with("embargo", embargo.EMBARGOED) if d["proposal_id"] == proposal_id]
        if record is None:
            if not under:
                raise NotFound(f"no proposal document {proposal_id!r} and no dataset of it under embargo; `obsflow "
                               "proposals list` shows the known ones")
            return {"proposal_id": proposal_id, "rule": f"no document: the default embargo ({default_embargo_days} "
                                                        "days after observation)", "under_embargo": under, "events": []}
        return {**_without_events(record), "rule": self.reads.proposals({proposal_id})[proposal_id].rule,
                "under_embargo": under, "events": record.get("events") or []}

    def quarantine_rows(self) -> list[dict]:
        return self.reads.quarantine_records()

    def op_rows(self) -> list[dict]:
        return [_op_row(op) for op in self.reads.op_records()]

    def newest_op_rows(self, limit: int) -> list[dict]:
        """The OPs whose first frame came last."""
        return [_op_row(op) for op in self.reads.newest_op_records(limit)]

    def op_detail(self, op_id: str) -> dict:
        """One OP: its counts, its candidates and its conflict history."""
        op = self.reads.op_record(op_id)
        if op is None:
            raise NotFound(f"no observing program {op_id!r}; `obsflow ops list` shows the known ones")
        state = _op_state(op)
        return {**_without_events(op), "received": state.received, "complete": state.complete,
                "late_frames": int(op.get("late_frames") or 0), "events": op.get("events") or []}

    def _candidate_rows(self, candidates: list[dict]) -> list[dict]:
        """Each candidate with what its science instance's runs say: the instances read together, then their runs
        (two requests a page, not two a candidate)."""
        instances = self.reads.instances_without_inputs([c["instance_id"] for c in candidates if c.get("instance_id")])
        runs = self.reads.runs_by_id([run_id for instance in instances.values() for run_id in instance.run_ids])
        rows = []
        for candidate in candidates:
            instance = instances.get(candidate.get("instance_id"))
            own = sorted((runs[r] for r in (instance.run_ids if instance else ()) if r in runs),
                         key=lambda r: r.created_at)
            rows.append({**_without_events(candidate), "ops": _op_ids(candidate), "processing": derived_status(own),
                         "run_ids": [r.run_id for r in own]})
        return rows

    def candidate_rows(self) -> list[dict]:
        return self._candidate_rows(self.reads.candidate_records())

    def newest_candidate_rows(self, limit: int) -> list[dict]:
        return self._candidate_rows(self.reads.newest_candidate_records(limit))

    def candidate_detail(self, candidate_id: str) -> dict:
        candidate = self.reads.candidate_record(candidate_id)
        if candidate is None:
            raise NotFound(f"no candidate {candidate_id!r}; `obsflow candidates list` shows the known ones")
        op_ids = _op_ids(candidate)
        ops = self.reads.op_progress(op_ids)
        states = {op_id: OpState(op.expected, op.received) for op_id, op in ops.items()}
        lacking = missing(op_ids, states)
        return {
            **self._candidate_rows([candidate])[0],
            "events": candidate.get("events") or [],
            "ops": [
                {
                    "op_id": op_id,
                    "role": "observe" if op_id == candidate["observe_op"] else "calibration",
                    "task_type": ops[op_id].task_type if op_id in ops else None,
                    "expected": states[op_id].expected if op_id in states else None,
                    "received": states[op_id].received if op_id in states else 0,
                    "complete": op_id not in lacking,
                    "missing": lacking.get(op_id),
                }
                for op_id in op_ids
            ],
        }

    # -- recipes and runs -----------------------------------------------------------------
    def recipe_rows(self) -> list[dict]:
        return [{**record, "tasks": [t["name"] for t in record["definition"]["tasks"]],
                 "description": record["definition"]["description"]} for record in self.reads.recipe_records()]

    def recipe_detail(self, name: str) -> dict:
        """The latest registered version, with the parameter values set as data (and who set them, and why)."""
        recipe = self.reads.registered_recipe(name)
        versions = self.reads.recipe_records(name)
        latest = next(record for record in versions if record["version"] == recipe.version)
        return {
            **recipe.model_dump(mode="json"),
            "versions": sorted((r["version"] for r in versions), key=registry.version_key),
            "state_machine": latest["state_machine"],
            "registered_by": latest.get("registered_by"),
            "levels": [[task.name for task in level] for level in recipe.levels()],
            "set_values": [{k: record.get(k) for k in ("parameter", "value", "effective_from", "set_by", "reason",
                                                       "set_at")}
                           for record in self.reads.parameter_value_records(name)],
        }

    def run_rows(self, status: str | None = None) -> list[dict]:
        return self._run_rows(self.reads.run_records(status))

    def _run_rows(self, records: list[dict]) -> list[dict]:
        """Rows of runs; a READY run that records no other reason says which of its slots are full (read once)."""
        rows, slots = [_run_row(record) for record in records], None
        for row in rows:
            if row["status"] == READY and not row.get("waiting_reason"):
                slots = slots or self.reads.run_slots()
                row["waiting_reason"] = slot_wait(row["resource_classes"], *slots)
        return rows

    def run_page(self, status: str | None = None, limit: int = pages.DEFAULT_LIMIT,
                 next_token: str | None = None) -> pages.Page:
        """A page of runs: of ``status`` in start order, else all newest first."""
        listing = f"runs:{status or ''}"
        records, following = self.reads.run_records_page(status, limit, pages.position(listing, next_token))
        return pages.Page(self._run_rows(records), pages.token(listing, following))

    def runs_entered_since(self, at: dt.datetime) -> dict[str, int]:
        """How many runs entered each status from the start of ``at``'s hour (UTC) on, in the order a run moves
        through them (a day's moves, whatever the history holds)."""
        order = {status: place for place, status in enumerate(RUN_STATUSES)}
        return dict(sorted(self.reads.runs_entered_since(at).items(),
                           key=lambda counted: (order.get(counted[0], len(order)), counted[0])))

    def run_detail(self, run_id: str, sfn=None, console_links: bool = False) -> dict:
        record = self.reads.run_record(run_id)
        if record is None:
            raise NotFound(f"no run {run_id!r}; `obsflow runs list` shows the known ones")
        [detail] = self._run_rows([record])
        recipe = self.reads.recipe_version(record["recipe"], record["version"])
        execution_arn = record.get("execution_arn")
        progress = task_progress(sfn, execution_arn) if sfn is not None and execution_arn else {}
        detail["tasks"] = [
            {"task": task.name, "resource_class": task.resource_class, "upstreams": list(task.upstreams),
             **progress.get(task.name, {"status": "pending", "started": None, "ended": None})}
            for task in recipe.tasks
        ]
        if console_links and execution_arn:
            region = execution_arn.split(":")[3]
            detail["console"] = (f"https://{region}.console.aws.amazon.com/states/home?region={region}"
                                 f"#/v2/executions/details/{execution_arn}")
        return detail

    def ended_run_detail(self, run_id: str, sfn, run_service, console_links: bool = False) -> dict:
        """``run_detail``, and for an ended run each task's real final state and why it failed (if it did)."""
        detail = self.run_detail(run_id, sfn, console_links)
        if detail["status"] in (FAILED, SUCCEEDED):
            _settle_task_states(detail, run_service.finished_tasks(run_id))
            detail["failure"] = run_service.failure(run_id)
        return detail

    # -- datasets ----------------------------------------------------------------------------
    def _dataset(self, dataset_id: str) -> dict:
        record = self.reads.dataset_record(dataset_id)
        if record is None:
            raise NotFound(f"no dataset {dataset_id!r}; `obsflow datasets list` shows the catalogued ones")
        return record

    def dataset_detail(self, dataset_id: str) -> dict:
        record = self._dataset(dataset_id)
        provenance = record["provenance"]
        detail = {k: v for k, v in record.items() if k != "provenance"}
        # frame_count counts the L1 frames it holds (none for master calibrations or summaries); this, what it came from
        detail["input_frames"] = len(provenance.get("input_frames", []))
        # the master calibrations it was made from, each with its association's score (runs.association)
        detail["calibrations"] = [u for u in provenance.get("upstream_datasets", []) if u.get("kind") == "calibration"]
        if record.get("release_date"):
            detail["access"] = _access(record)
        detail["versions"] = [{"dataset_id": d.dataset_id, "status": d.status, "version_key": d.version_key,
                               "created_at": d.created_at} for d in self.reads.datasets_of_product(record["product_id"])]
        return detail

    def dataset_provenance(self, dataset_id: str) -> dict:
        """Runs, tasks with code versions and manual influence, and input frames of a dataset."""
        record = self._dataset(dataset_id)
        provenance = record["provenance"]
        chain, current = [], self.reads.run(record["run_id"])
        while current is not None:
            chain.append({"run_id": current.run_id, "status": current.status, "retry_of": current.retry_of,
                          "created_at": current.created_at, "overrides": current.overrides})
            current = self.reads.run(current.retry_of) if current.retry_of else None
        return {
            "dataset_id": dataset_id, "product_id": record["product_id"], "version_key": record["version_key"],
            "recipe": record["recipe"], "runs": chain, "configuration": provenance["configuration"],
            "tasks": [{k: t.get(k) for k in ("task", "recipe_version", "code_version", "libraries", "started_at",
                                             "finished_at", "manual", "operator", "note", "host")}
                      for t in provenance["tasks"]],
            "input_frames": provenance.get("input_frames", []),
        }

    def window_rows(self, windows: Windows, at: dt.datetime) -> list[dict]:
        """Each processing window: open or not at ``at``, its next change, and the queued runs waiting for it (the
        queue is read only while a window is closed: no run waits for an open one)."""
        states = windows.states(at)
        reasons = [run.waiting_reason or "" for run in self.reads.runs_with_status(READY)] \
            if not all(state.open for state in states) else []
        return [{"key": state.key, "window": state.window.spec, "when": state.window.describe(windows.site),
                 "open": state.open, "next_change": state.next_change,
                 "runs_waiting": sum(reason.startswith(closed_reason_prefix(state.key)) for reason in reasons)}
                for state in states]


def _settle_task_states(detail: dict, finished: set[str]) -> None:
    """An ended execution leaves the siblings of a failed task 'running' in its history: each either
    succeeded (its task record says so: ``finished``) or was stopped with the run; the tasks after them never ran."""
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
