"""Attacks, fourth round: a run cancelled while the submitter launches it runs none of its tasks."""

from __future__ import annotations

import pytest

from obsflow.runs.service import NotAllowed
from tests.unit.fakes import FakeExecutions
from tests.unit.test_run_service import add_candidate, make_service


class CancelledWhileStarting(FakeExecutions):
    """Step Functions, with an operator's `obsflow runs cancel` landing between the submitter's taking of the
    run's slots and the execution's start."""

    def __init__(self):
        super().__init__()
        self.service = None

    def start(self, run):
        if not self.started:  # the first run only
            self.service.cancel(run.run_id, "ops", "wrong calibration, stop it")
        return super().start(run)


def test_a_run_cancelled_while_its_execution_starts_runs_no_task_and_files_no_ticket():
    # Given two queued runs and one slot, and the first cancelled just as its execution is started
    executions = CancelledWhileStarting()
    service = make_service(capacity=1, executions=executions)
    executions.service = service
    add_candidate(service, "c1")
    add_candidate(service, "c2")
    [cancelled] = service.submit().started
    arn = service.store.runs[cancelled].execution_arn
    # When its execution's first step (StartRun) runs
    with pytest.raises(NotAllowed, match="was cancelled before its execution started") as refused:
        service.start_run(cancelled, arn)
    # Then it is refused, saying who cancelled it and why, so the execution goes no further than its failure path
    assert "cancelled by ops: wrong calibration" in str(refused.value)
    error = {"Error": "NotAllowed", "Cause": str(refused.value)}
    assert service.open_ticket_for_failure(cancelled, error, arn)["ticket_id"] is None
    service.fail_run(cancelled, error)
    # And the run stays CANCELLED, with no ticket, and the other run takes the slot
    assert service.store.runs[cancelled].status == "CANCELLED" and service.store.tickets == {}
    [other] = service.submit().started
    assert other != cancelled and service.store.runs[other].status == "SUBMITTED"


def test_a_start_event_delivered_twice_still_starts_the_run_once():
    # Given a run started by its execution
    service = make_service(capacity=1)
    add_candidate(service, "c1")
    [run_id] = service.submit().started
    arn = service.store.runs[run_id].execution_arn
    first = service.start_run(run_id, arn)
    # When the same start is delivered again, Then it answers the same, and the run is RUNNING
    assert service.start_run(run_id, arn) == first and service.store.runs[run_id].status == "RUNNING"
