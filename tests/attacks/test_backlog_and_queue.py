"""Attacks, fourth round: the queue levers (resume without the backlog, requeue, cancel, prioritize) at 3 a.m."""

from __future__ import annotations

import pytest

from obsflow.runs.service import NotAllowed
from tests.unit.test_run_service import add_candidate, make_service


def test_skipping_the_backlog_of_a_stage_that_is_not_paused_is_refused_and_skips_nothing():
    # Given a stage paused, resumed without its backlog, and then a new observation queued while it runs
    service = make_service(capacity=1)
    service.pause("summit network down")
    add_candidate(service, "c1")
    [old] = service.submit().planned
    assert service.resume("ops", skip_backlog="the night is lost") == [old]
    add_candidate(service, "c2")
    add_candidate(service, "c3")
    report = service.submit()
    [queued] = [r for r in report.planned if r not in report.started]
    # When the same command is run again from the shell's history
    with pytest.raises(NotAllowed, match="submission is not paused, so nothing queued is a backlog") as refused:
        service.resume("ops", skip_backlog="the night is lost")
    # Then it says what to do instead, and tonight's queued run stays queued, with no second ticket
    assert "`obsflow runs cancel RUN --reason`" in str(refused.value)
    assert service.store.runs[queued].status == "READY"
    assert len([t for t in service.store.tickets.values() if t.kind == "skipped-backlog"]) == 1


def test_a_skipped_run_nobody_wants_can_be_cancelled_and_then_is_not_requeued():
    # Given a run skipped with the backlog
    service = make_service(capacity=1)
    service.pause("maintenance")
    add_candidate(service, "c1")
    add_candidate(service, "c2")
    unwanted, wanted = service.submit().planned
    service.resume("ops", skip_backlog="old data")
    # When the operator cancels the one nobody wants
    cancelled = service.cancel(unwanted, "ops", "bad night, never to be processed")
    # Then it ends CANCELLED with who and why, nothing was stopped (it never ran), and its instance says so
    assert cancelled.status == "CANCELLED" and "cancelled by ops: bad night" in cancelled.waiting_reason
    assert service.executions.stopped == []
    assert f"run {unwanted}" in service.store.instances[cancelled.instance_id].state_reason
    # And `requeue --skipped` brings back the other one only
    assert service.requeue(None, "ops", "wanted after all") == [wanted]
    assert service.store.runs[unwanted].status == "CANCELLED"


@pytest.mark.parametrize("priority", [5.5, float("nan"), float("inf"), -1, 100, True, "50"])
def test_a_priority_is_a_whole_number_in_range_or_refused_with_the_range(priority):
    # Given a queued run
    service = make_service(capacity=1)
    service.pause("hold the queue")
    add_candidate(service, "c1")
    [run_id] = service.submit().planned
    before = service.store.runs[run_id].priority
    # When it is re-prioritized to a value that is no whole number 0-99, Then it is refused and unchanged
    with pytest.raises(ValueError, match="a priority is a whole number 0-99"):
        service.prioritize(run_id, priority, "ops", "rush")
    assert service.store.runs[run_id].priority == before
