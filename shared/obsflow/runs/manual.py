"""Manual processing: by definition (the recipe says so) or by exception (a failed run).

A manual run executes the recipe's tasks on the operator's machine with the same task
entrypoint, against the real buckets; each task records the operator and note in its
provenance. It is then catalogued, the PI notified and the run finished, as an
automated run would be.
"""

from __future__ import annotations

import getpass
import json
import subprocess
import sys
from collections.abc import Callable

from obsflow import aws
from obsflow.errors import ObsflowError
from obsflow.recipes import registry
from obsflow.recipes.asl import TASK_COMMAND
from obsflow.runs import lifecycle, steps
from obsflow.runs.service_desk import file_ticket
from obsflow.settings import Settings
from obsflow.tables import runs
from obsflow.tables.runs import RunItem
from obsflow.tables.tickets import TicketItem


class ManualRunFailed(ObsflowError):
    pass


def hold_for_operator(settings: Settings, run: RunItem) -> None:
    """READY -> MANUAL with one ticket that says how to run it."""
    if not lifecycle.transition(run.run_id, runs.MANUAL, (runs.READY,), detail="manual by definition"):
        return
    ticket = TicketItem(
        f"TKT-{run.run_id}-manual", kind="manual", created_at=lifecycle.now(),
        summary=f"run {run.run_id} of {run.recipe}@{run.version} is manual by definition",
        run_id=run.run_id, candidate_id=run.candidate_id, proposal_id=run.proposal_id,
        recipe=f"{run.recipe}@{run.version}",
        suggested_action=f"`obsflow runs execute {run.run_id} --manual --note TEXT` on an operator machine",
    )
    file_ticket(settings, ticket)


def execute(settings: Settings, run_id: str, note: str, echo: Callable[[str], None] = print,
            operator: str | None = None) -> RunItem:
    run = lifecycle.require(run_id)
    operator = operator or getpass.getuser()
    recipe = registry.get(run.recipe, run.version)
    if not lifecycle.transition(run_id, runs.RUNNING, (runs.MANUAL, runs.FAILED),
                                detail=f"manual execution by {operator}: {note}",
                                actions=[RunItem.started_at.set(lifecycle.now()), RunItem.error.remove()]):
        raise ManualRunFailed(f"run {run_id} is {run.status}; only a MANUAL or FAILED run can be executed by hand")
    for level in recipe.levels():
        for task in level:
            echo(f"  {task.name}: running on this machine ...")
            command = [sys.executable, *TASK_COMMAND[1:], recipe.name, task.name, "--run-id", run_id,
                       "--manual", "--operator", operator, "--note", note]
            completed = subprocess.run(command, capture_output=True, text=True, check=False)
            if completed.returncode != 0:
                error = {"Error": "ManualTaskFailed", "Cause": json.dumps(
                    {"task": task.name, "exit_code": completed.returncode, "stderr": completed.stderr[-2000:]})}
                steps.fail_run(settings, run_id, error)
                raise ManualRunFailed(f"task {task.name} failed (exit code {completed.returncode}): "
                                      f"{completed.stderr.strip().splitlines()[-1] if completed.stderr.strip() else ''}")
            echo(f"  {task.name}: {completed.stdout.strip().splitlines()[-1] if completed.stdout.strip() else 'done'}")
    result = steps.catalog(settings, run_id)
    aws.client(settings, "sns").publish(
        TopicArn=aws.topic_arn(settings, "pi-notifications"), Subject=result["subject"][:100], Message=result["message"],
        MessageAttributes={"proposal_id": {"DataType": "String", "StringValue": result["proposal_id"]},
                           "dataset_id": {"DataType": "String", "StringValue": result["dataset_id"]}},
    )
    steps.finish_run(settings, run_id)
    return runs.get(run_id)
