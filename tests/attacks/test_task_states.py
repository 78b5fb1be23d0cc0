"""A failed task is never shown as succeeded: task states from Step Functions execution histories.

Found from outside: the state exit that follows a caught failure overwrote it, so `runs show` listed a failed
`parse` as succeeded and the monitor drew it green. And a task left running in the history (its branch aborted
when a sibling failed) was settled as succeeded whenever it had a task record, also one saying it failed.
"""

from __future__ import annotations

import datetime as dt

import pytest

from obsflow.reads.queries import task_progress

T0 = dt.datetime(2026, 12, 5, 3, tzinfo=dt.timezone.utc)


class History:
    """A fake Step Functions client whose one execution has the given events, chained as the service chains them."""

    def __init__(self, *steps: tuple[str, str | None, int | None]):
        # (type, state name for StateEntered/StateExited, the id of the event it follows or None for the last one)
        self.events = []
        for number, (kind, state, previous) in enumerate(steps, 1):
            event = {"id": number, "type": kind, "timestamp": T0 + dt.timedelta(seconds=number),
                     "previousEventId": previous if previous is not None else number - 1}
            if kind.endswith("StateEntered"):
                event["stateEnteredEventDetails"] = {"name": state}
            elif kind.endswith("StateExited"):
                event["stateExitedEventDetails"] = {"name": state}
            self.events.append(event)

    def get_paginator(self, _name):
        events = self.events
        return type("Paginator", (), {"paginate": lambda self, executionArn: [{"events": events}]})()


def statuses(history: History) -> dict[str, str]:
    """The recipe tasks' states (OpenTicket, a Lambda state, is not a task of the recipe)."""
    return {task: entry["status"] for task, entry in task_progress(history, "arn:execution").items()
            if task != "OpenTicket"}


def attempt(state: str, outcome: str, entered: bool = True, after: int | None = None) -> list[tuple]:
    return [*([("TaskStateEntered", state, after)] if entered else []),
            ("TaskScheduled", None, None), ("TaskStarted", None, None), (outcome, None, None)]


def test_a_caught_top_level_failure_stays_failed():
    # Given `parse` failed, and its Catch went on to OpenTicket (the state exits first)
    history = History(("ExecutionStarted", None, 0), *attempt("parse", "TaskFailed"),
                      ("TaskStateExited", "parse", None), ("TaskStateEntered", "OpenTicket", None))
    # Then parse is failed, not succeeded
    assert statuses(history) == {"parse": "failed"}


def test_a_failure_inside_a_parallel_branch_stays_failed_beside_a_sibling_that_succeeded():
    # Given a Parallel state whose branches run `darks` (fails) and `gains` (succeeds), interleaved
    history = History(("ExecutionStarted", None, 0), ("ParallelStateEntered", "level 1", None),
                      ("TaskStateEntered", "darks", 2), ("TaskStateEntered", "gains", 2),
                      ("TaskScheduled", None, 3), ("TaskScheduled", None, 4),
                      ("TaskFailed", None, 5), ("TaskStateExited", "darks", 7),
                      ("TaskSucceeded", None, 6), ("TaskStateExited", "gains", 9),
                      ("ParallelStateFailed", None, None))
    assert statuses(history) == {"darks": "failed", "gains": "succeeded"}


def test_a_failed_chunk_fails_its_task():
    # Given a data-parallel task whose array job over its chunks failed (its gather never ran)
    history = History(("ExecutionStarted", None, 0), *attempt("frames chunks", "TaskFailed"),
                      ("TaskStateExited", "frames chunks", None), ("TaskStateEntered", "OpenTicket", None))
    assert statuses(history) == {"frames": "failed"}


@pytest.mark.parametrize("chunks", [False, True])
def test_a_failed_attempt_that_a_retry_made_good_is_succeeded(chunks):
    # Given a task whose first job failed and whose Retry's job succeeded
    state = "frames chunks" if chunks else "frames"
    steps = [("ExecutionStarted", None, 0), *attempt(state, "TaskFailed"), *attempt(state, "TaskSucceeded", False),
             ("TaskStateExited", state, None)]
    if chunks:
        steps += [*attempt("frames gather", "TaskSucceeded"), ("TaskStateExited", "frames gather", None)]
    # Then it succeeded
    assert statuses(History(*steps)) == {"frames": "succeeded"}


def test_a_task_aborted_with_its_branch_whose_job_failed_is_not_drawn_succeeded():
    from obsflow.reads.queries import _settle_task_states
    from obsflow.runs import layout
    from tests.unit.test_run_service import add_candidate, make_service

    # Given a run of frame-census whose observe_stats failed in its branch, which aborted dark_level's branch
    # (its history leaves dark_level running), dark_level's job having failed too, and inventory succeeded
    service = make_service()
    service.discover(add_candidate(service, "c1"))
    [run_id] = service.submit().planned
    for task, status in (("inventory", "succeeded"), ("dark_level", "failed"), ("observe_stats", "failed")):
        service.documents.put_json("work", layout.task_record_key(run_id, task),
                                   {"task": task, "status": status, "finished_at": "2026-12-05T03:00:00+00:00"})
    detail = {"tasks": [{"task": "inventory", "status": "succeeded"}, {"task": "dark_level", "status": "running"},
                        {"task": "observe_stats", "status": "failed"}, {"task": "summary", "status": "pending"}]}
    # When the ended run's task states are settled from its task records
    _settle_task_states(detail, service.finished_tasks(run_id))
    # Then dark_level, whose record says it failed, is not drawn succeeded
    assert {t["task"]: t["status"] for t in detail["tasks"]} == {
        "inventory": "succeeded", "dark_level": "stopped", "observe_stats": "failed", "summary": "not run"}
