"""Attacks, third round: errors are classified and said right."""

from __future__ import annotations

import json
import subprocess
import sys

import boto3
import pytest
from click.testing import CliRunner
from moto import mock_aws

from obsflow.cli import main as cli
from obsflow.dead_letters import peek
from obsflow.runs.domain import ERROR, NEVER_EXECUTED
from obsflow.runs.service import NotAllowed
from tests.unit.test_run_service import add_candidate, make_service


def test_a_task_whose_own_code_cannot_be_imported_is_an_infrastructure_failure(tmp_path, monkeypatch):
    # Given a directory holding an `obsflow/` folder that shadows the real package when it is on the import path
    (tmp_path / "obsflow").mkdir()
    (tmp_path / "obsflow" / "__init__.py").write_text("raise ImportError('a folder named obsflow in the way')\n")
    command = [sys.executable, "-m", "obsflow_tasks", "frame-census", "inventory", "--run-id", "run-1"]
    # When a task starts there with the current directory on its path
    shadowed = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    # Then it is an infrastructure failure (exit 3: redrive once fixed), saying what happened, not "science"
    assert shadowed.returncode == 3 and "obsflow_tasks cannot start: ImportError" in shadowed.stderr
    # And the task runner's command line never takes its code from the current directory
    from obsflow.runs import platform

    recorded = {}
    monkeypatch.setattr(platform.subprocess, "run", lambda command, **kw: recorded.setdefault("command", command)
                        and subprocess.CompletedProcess(command, 0, "", ""))
    platform.SubprocessTaskRunner().run(type("R", (), {"name": "frame-census"}), "inventory", "run-1", "ana", "")
    monkeypatch.undo()
    assert recorded["command"][1:4] == ["-P", "-m", "obsflow_tasks"]
    unshadowed = subprocess.run([sys.executable, *recorded["command"][1:4], "frame-census", "inventory", "--run-id",
                                 "run-1"], cwd=tmp_path, capture_output=True, text=True)
    assert "a folder named obsflow in the way" not in unshadowed.stderr


@pytest.mark.parametrize("exc, code, kind", [
    (ModuleNotFoundError("No module named 'scipy'"), 3, "infrastructure"),
    (ImportError("cannot import name 'x' from 'obsflow_tasks.vbi'"), 3, "infrastructure"),
    (ZeroDivisionError("division by zero"), 1, "science"),
])
def test_a_task_that_cannot_import_what_it_needs_is_an_infrastructure_failure(exc, code, kind):
    from obsflow_tasks.runtime import failure_of

    assert failure_of(exc)[0] == code and failure_of(exc)[1].startswith(f"{kind}: ")


def test_every_dead_lettered_message_is_listed_and_left_in_place():
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        # Given 24 dead-lettered notifications
        for number in range(24):
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"Records": [{"s3": {
                "bucket": {"name": "ingest"}, "object": {"key": f"raw/op/frame_{number:02d}.fits"}}}]}))
        # When they are listed, twice
        first, second = peek(sqs, url), peek(sqs, url)
        # Then every one is shown, both times: listing consumes nothing
        assert len(first) == len(second) == 24
        assert sorted(k for letter in first for k in letter.keys) == [f"raw/op/frame_{n:02d}.fits" for n in range(24)]


@pytest.mark.parametrize("plan", ["rate=abc", "rate=2", "seed=x", "rate=0.1,only=everything", "oops"])
def test_a_malformed_fault_plan_is_said_in_one_line(monkeypatch, plan):
    monkeypatch.setenv("OBSFLOW_FAULTS", plan)
    result = CliRunner().invoke(cli, ["candidates", "list"])
    assert result.exit_code == 2 and "is not rate=R,seed=S" in result.output
    assert "Traceback" not in result.output


def test_a_dynamodb_validation_error_is_not_reported_as_an_unreachable_stack():
    from botocore.exceptions import ClientError

    from obsflow.cli.common import _unreachable
    from obsflow.settings import Settings

    refused = ClientError({"Error": {"Code": "ValidationException", "Message": "One or more parameter values were "
                                     "invalid: an AttributeValue may not contain an empty string"}}, "Query")
    said = _unreachable(Settings(stage="x", AWS_ENDPOINT_URL="http://127.0.0.1:4566"), refused).message
    assert "refused the request (ValidationException)" in said and "local serve" not in said


def test_an_observation_before_a_parameters_first_value_opens_one_ticket_and_can_be_replanned():
    # Given a calibration candidate observed in 2019, before bad_pixel_low's first value (2020-01-01)
    service = make_service()
    add_candidate(service, "c2019", recipe="vbi-calibration", date_obs="2019-06-01T21:00:00")
    # When it is planned, twice
    service.submit()
    service.submit()
    # Then its instance is ERROR with the reason, and one ticket says what to do
    [instance] = service.store.instances.values()
    assert instance.state == ERROR and "2019-06-01" in instance.state_reason
    [ticket] = [t for t in service.store.tickets.values() if t.kind == "planning"]
    assert ticket.candidate_id == "c2019" and "2019-06-01" in ticket.summary
    assert f"obsflow catalogue replan {instance.instance_id}" in ticket.suggested_action
    assert "recipes set-value vbi-calibration" in ticket.suggested_action
    # And once fixed, the operator's re-plan puts it back for the next pass; a planned one is refused
    assert service.replan(instance.instance_id).state == NEVER_EXECUTED
    add_candidate(service, "c2026", recipe="vbi-calibration")
    service.submit()
    planned = next(i for i in service.store.instances.values() if i.input_dataset_key)
    with pytest.raises(NotAllowed, match="only one that could not be planned"):
        service.replan(planned.instance_id)
