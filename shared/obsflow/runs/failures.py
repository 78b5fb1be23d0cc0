"""What a failure is and what its ticket says: pure functions from a Step Functions error to facts, kind and advice
(the tickets themselves are filed by runs.ticketing)."""

from __future__ import annotations

import json

from obsflow.runs.domain import Ticket

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
        if "Size" in (job.get("ArrayProperties") or {}):  # an array job: a data-parallel task's chunks
            facts["array_job_id"], facts["chunks"] = job.get("JobId"), job["ArrayProperties"]["Size"]
    elif isinstance(detail, dict) and "errorMessage" in detail:  # a Lambda error
        facts["error_message"] = detail["errorMessage"]
    elif isinstance(detail, dict) and "exit_code" in detail:  # a task run by hand
        facts["failed_task"] = detail.get("task")
        facts["exit_code"] = detail["exit_code"]
        facts["error_message"] = (detail.get("stderr") or "")[-2000:]
        facts["kind"] = EXIT_KINDS.get(detail["exit_code"], "infrastructure")
    return facts


def with_failed_chunk(facts: dict, chunk: dict | None) -> dict:
    """An array job's facts with its failed chunk's: which one, its exit code, kind and log."""
    if chunk is None:
        return facts
    return {**facts, "exit_code": chunk["exit_code"], "log_stream": chunk["log_stream"],
            "kind": EXIT_KINDS.get(chunk["exit_code"], "infrastructure"),
            "error_message": f"chunk {chunk['index'] + 1} of {facts['chunks']} (array index {chunk['index']}) failed: "
                             f"{chunk['reason']} (exit code {chunk['exit_code']})"}


def _pascal_keys(value):
    if isinstance(value, dict):
        return {key[:1].upper() + key[1:]: _pascal_keys(item) for key, item in value.items()}
    return value


def describe(ticket: Ticket) -> str:
    """The ticket's facts as plain text, for people reading it in the service desk."""
    lines = [ticket.summary, ""]
    for field in ("ticket_id", "kind", "run_id", "recipe", "candidate_id", "proposal_id", "failed_task", "error_type",
                  "error_message", "exit_code", "suggested_action"):
        value = getattr(ticket, field)
        if value is not None:
            lines.append(f"{field}: {value}")
    for name, link in (ticket.links or {}).items():
        if link:
            lines.append(f"{name}: {link}")
    if ticket.log_excerpt:
        lines += ["", "log excerpt:", ticket.log_excerpt]
    return "\n".join(lines)
