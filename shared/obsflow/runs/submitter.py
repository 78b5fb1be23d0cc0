"""Plan READY candidates and start READY runs: priority order, within the run slots.

Called when candidates become READY or runs finish (an asynchronous nudge) and on a
schedule. Two submitters at once are safe: slots and the READY -> SUBMITTED
transition are one conditional transaction, and an execution is named by its run id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from obsflow import aws
from obsflow.errors import NotFound, TransientError
from obsflow.observability import logger
from obsflow.recipes import registry
from obsflow.recipes.model import RESOURCE_CLASSES
from obsflow.runs import control, lifecycle, manual, planner
from obsflow.settings import Settings
from obsflow.tables import candidates as candidates_table
from obsflow.tables import capacity, runs
from obsflow.tables.candidates import CandidateItem
from obsflow.tables.runs import RunItem



@dataclass
class SubmitReport:
    paused: bool = False
    planned: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    waiting: dict[str, str] = field(default_factory=dict)
    manual: list[str] = field(default_factory=list)


def plan_ready_candidates(settings: Settings, report: SubmitReport) -> None:
    for candidate in candidates_table.with_status(candidates_table.READY):
        try:
            plan = planner.plan(settings, candidate)
        except (NotFound, ValueError) as exc:
            # No recipe, or nothing to process: a person has to decide; keep it visible.
            CandidateItem(candidate.candidate_id).update(
                actions=[CandidateItem.status.set(candidates_table.HELD), CandidateItem.held_reason.set(str(exc))]
            )
            logger.warning("candidate held", extra={"candidate_id": candidate.candidate_id, "reason": str(exc)})
            report.held.append(candidate.candidate_id)
            continue
        if plan.created:
            report.planned.append(plan.run_id)


def start_execution(settings: Settings, run: RunItem) -> str:
    """Start (or find) the run's execution; its name derives from the run, so this is idempotent."""
    sfn = aws.client(settings, "stepfunctions")
    machine = aws.state_machine_arn(settings, run.recipe, run.version)
    payload = json.dumps({"run_id": run.run_id, "recipe": run.recipe, "version": run.version, "proposal_id": run.proposal_id})
    name = runs.execution_name(run)
    try:
        return sfn.start_execution(stateMachineArn=machine, name=name, input=payload)["executionArn"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ExecutionAlreadyExists":
            return machine.replace(":stateMachine:", ":execution:") + f":{name}"
        raise TransientError(f"could not start run {run.run_id} on {machine}: {exc}") from exc
    except BotoCoreError as exc:
        raise TransientError(f"could not start run {run.run_id} on {machine}: {exc}") from exc


def _waiting_reason(run: RunItem, in_use: dict[str, set[str]], settings: Settings) -> str | None:
    full = [f"{rc} {len(in_use[rc])}/{settings.capacity(rc)}" for rc in run.resource_classes
            if len(in_use[rc]) >= settings.capacity(rc)]
    return f"waiting for a run slot: {', '.join(full)} in use" if full else None


def start_ready_runs(settings: Settings, report: SubmitReport) -> None:
    in_use = capacity.in_use(list(RESOURCE_CLASSES))
    for run in runs.with_status(runs.READY):
        if not registry.get(run.recipe, run.version).automated:
            manual.hold_for_operator(settings, run)
            report.manual.append(run.run_id)
            continue
        reason = _waiting_reason(run, in_use, settings)
        if reason is None and not lifecycle.take_slots(settings, run, lifecycle.now()):
            in_use = capacity.in_use(list(RESOURCE_CLASSES))  # someone else took a slot or the run
            reason = _waiting_reason(run, in_use, settings)
            if reason is None:
                continue  # another submitter started it
        if reason is not None:
            report.waiting[run.run_id] = reason
            if run.waiting_reason != reason:
                lifecycle.note_waiting(run.run_id, reason)
            continue
        for rc in run.resource_classes:
            in_use[rc].add(run.run_id)
        _launch(settings, run, report)


def _launch(settings: Settings, run: RunItem, report: SubmitReport) -> None:
    try:
        execution_arn = start_execution(settings, run)
    except TransientError:
        # Undo, so the run is picked up again on the next call.
        lifecycle.transition(run.run_id, runs.READY, (runs.SUBMITTED,), detail="execution could not be started")
        lifecycle.give_back_slots(run)
        raise
    run.update(actions=[RunItem.execution_arn.set(execution_arn)])
    report.started.append(run.run_id)
    logger.info("run started", extra={"run_id": run.run_id, "execution_arn": execution_arn})


def resume_unlaunched(settings: Settings, report: SubmitReport) -> None:
    """A submitter that stopped between taking slots and starting the execution left these."""
    for run in runs.with_status(runs.SUBMITTED):
        if run.execution_arn is None:
            _launch(settings, run, report)


def submit(settings: Settings) -> SubmitReport:
    report = SubmitReport()
    plan_ready_candidates(settings, report)
    if control.is_paused(settings):
        report.paused = True
        return report
    resume_unlaunched(settings, report)
    start_ready_runs(settings, report)
    return report


def nudge(settings: Settings, reason: str) -> None:
    """Ask the submitter to run soon (asynchronous invoke); the schedule covers a lost nudge."""
    try:
        aws.client(settings, "lambda").invoke(
            FunctionName=settings.function_name("submitter"),
            InvocationType="Event",
            Payload=json.dumps({"nudge": reason}).encode(),
        )
    except (ClientError, BotoCoreError) as exc:
        logger.warning("could not nudge the submitter; the schedule will pick the work up", extra={"error": str(exc)})
