"""Service-desk tickets for failed runs: exactly one per failure, with what an operator needs.

The ticket id is derived from the run and its attempt, so a re-delivered
failure finds the ticket it already opened instead of opening a second.
"""

from __future__ import annotations

import json

from obsflow import aws
from obsflow.runs import lifecycle
from obsflow.runs.service_desk import file_ticket
from obsflow.settings import Settings
from obsflow.tables import tickets
from obsflow.tables.tickets import TicketItem

LOG_LINES = 20
# Task runtime exit codes (obsflow_tasks): what kind of failure each means.
EXIT_KINDS = {1: "science", 2: "configuration", 3: "infrastructure"}
ACTIONS = {
    "infrastructure": "resume: `obsflow runs redrive {run_id}` (completed tasks are not run again)",
    "configuration": "adjust and retry: `obsflow runs retry {run_id} --set KEY=VALUE`",
    "science": "process manually: `obsflow runs execute {run_id} --manual`, or retry with other parameters",
}


def describe_failure(error: dict) -> dict:
    """Failed task, error type and message, exit code and kind, from a Step Functions error."""
    name, cause = error.get("Error", "Unknown"), error.get("Cause") or ""
    try:
        detail = json.loads(cause)
    except (TypeError, json.JSONDecodeError):
        detail = {}
    facts = {"error_type": name, "error_message": cause[:2000], "failed_task": None, "exit_code": None,
             "log_stream": None, "kind": "infrastructure"}
    job = _pascal_keys(detail) if isinstance(detail, dict) else {}
    if "JobName" in job:  # a Batch job: the cause is its description (PascalCase from Step Functions)
        container = job.get("Container") or {}
        name = job["JobName"]
        facts["failed_task"] = name.split("-", 2)[-1] if name.count("-") >= 2 else name
        facts["exit_code"] = container.get("ExitCode")
        facts["log_stream"] = container.get("LogStreamName")
        facts["error_message"] = f"{job.get('StatusReason', 'job failed')} (exit code {facts['exit_code']})"
        facts["kind"] = EXIT_KINDS.get(facts["exit_code"], "infrastructure")
    elif isinstance(detail, dict) and "errorMessage" in detail:  # a Lambda error
        facts["error_message"] = detail["errorMessage"]
        facts["kind"] = "infrastructure"
    return facts


def _pascal_keys(value):
    if isinstance(value, dict):
        return {key[:1].upper() + key[1:]: _pascal_keys(item) for key, item in value.items()}
    return value


def log_excerpt(settings: Settings, log_stream: str | None) -> str | None:
    if not log_stream:
        return None
    try:
        events = aws.client(settings, "logs").get_log_events(
            logGroupName=settings.task_log_group, logStreamName=log_stream, limit=LOG_LINES, startFromHead=False
        )["events"]
    except Exception as exc:  # noqa: BLE001  (an excerpt is a convenience; the ticket matters)
        return f"(log excerpt unavailable: {exc})"
    return "\n".join(event["message"] for event in events)


def _console_escape(name: str) -> str:
    return name.replace("/", "$252F")


def links(settings: Settings, execution_arn: str | None, log_stream: str | None) -> dict:
    if settings.endpoint_url:  # the local stack has no console: name the records instead
        return {"execution": execution_arn, "logs": f"{settings.task_log_group}/{log_stream}" if log_stream else None}
    region = settings.region
    result = {}
    if execution_arn:
        result["execution"] = (
            f"https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"
        )
    if log_stream:
        result["logs"] = (
            f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logsV2:log-groups/log-group/"
            f"{_console_escape(settings.task_log_group)}/log-events/{_console_escape(log_stream)}"
        )
    return result


def open_for_failure(settings: Settings, run_id: str, error: dict, execution_arn: str | None) -> dict:
    run = lifecycle.require(run_id)
    # One ticket per attempt (a redrive starts a new one); a re-delivered failure maps to the same.
    attempt = max(1, sum(1 for entry in run.history if entry.status == "RUNNING"))
    ticket_id = f"TKT-{run_id}-{attempt}"
    existing = tickets.get(ticket_id)
    if existing is not None:
        return {"ticket_id": ticket_id, "created": False}
    facts = describe_failure(error)
    ticket = TicketItem(
        ticket_id,
        kind=f"failure:{facts['kind']}",
        summary=f"run {run_id} ({run.recipe}@{run.version}) failed"
        + (f" in task {facts['failed_task']}" if facts["failed_task"] else "") + f": {facts['error_type']}",
        run_id=run_id,
        candidate_id=run.candidate_id,
        proposal_id=run.proposal_id,
        recipe=f"{run.recipe}@{run.version}",
        failed_task=facts["failed_task"],
        error_type=facts["error_type"],
        error_message=facts["error_message"],
        exit_code=facts["exit_code"],
        log_excerpt=log_excerpt(settings, facts["log_stream"]),
        links=links(settings, execution_arn, facts["log_stream"]),
        suggested_action=ACTIONS[facts["kind"]].format(run_id=run_id),
        created_at=lifecycle.now(),
    )
    return {"ticket_id": ticket_id, "created": file_ticket(settings, ticket)}
