"""The state machine of a recipe, generated from its DAG.

StartRun -> the tasks (Batch jobs, submitJob.sync; the tasks of one dependency level
side by side in a Parallel state, each followed in its branch by the tasks that need only it) -> Catalog -> NotifyPI (science only) -> FinishRun. Transient
errors are retried with backoff; anything else goes to OpenTicket -> FailRun -> Fail.

The state machine carries run ids, never frame lists, so the number of state
transitions of a run does not depend on how many frames it processes.

ARNs are ``${Placeholders}``: CloudFormation fills them from DefinitionSubstitutions,
the local stack with ``render``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from obsflow.recipes.model import Recipe, TaskSpec

LAMBDA_TRANSIENT = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "TransientError",
]
BATCH_TRANSIENT = ["Batch.AWSBatchException", "Batch.ServerException", "Batch.TooManyRequestsException"]
SNS_TRANSIENT = ["SNS.InternalErrorException", "SNS.ThrottledException", "SNS.KMSThrottlingException"]
TASK_COMMAND = ("python", "-m", "obsflow_tasks")
# The Lambdas a state machine's states call.
STATE_MACHINE_FUNCTIONS = ("start-run", "catalog", "finish-run", "fail-run", "open-ticket")

_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def camel(name: str) -> str:
    """``high-memory`` -> ``HighMemory``."""
    return "".join(part.title() for part in name.split("-"))


def function_key(function: str) -> str:
    return f"{camel(function)}FunctionArn"


def job_queue_key(resource_class: str) -> str:
    return f"JobQueue{camel(resource_class)}"


def job_definition_field(resource_class: str) -> str:
    """Where StartRun's result names the job definition of a resource class: the stage's, or a developer
    campaign's revision with another task image."""
    return resource_class.replace("-", "_")


PI_TOPIC_KEY = "PiNotificationsTopicArn"


def ref(key: str) -> str:
    return "${" + key + "}"


def substitutions(function_arns: dict[str, str], pi_topic_arn: str, job_queues: dict[str, str]) -> dict[str, str]:
    """Placeholder -> value, from ARNs (or names) keyed by function and resource class."""
    return {
        **{function_key(f): arn for f, arn in function_arns.items()},
        PI_TOPIC_KEY: pi_topic_arn,
        **{job_queue_key(rc): queue for rc, queue in job_queues.items()},
    }


def _retry(errors: list[str]) -> list[dict]:
    return [{"ErrorEquals": errors, "IntervalSeconds": 2, "MaxAttempts": 4, "BackoffRate": 2.0}]


def _catch() -> list[dict]:
    return [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "OpenTicket"}]


def _lambda(function: str, payload: dict, result_path: str | None, next_state: str | None, catch: bool = True) -> dict:
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": ref(function_key(function)), "Payload": payload},
        "ResultSelector": {"result.$": "$.Payload"},
        "ResultPath": result_path,
        "Retry": _retry(LAMBDA_TRANSIENT),
    }
    if catch:
        state["Catch"] = _catch()
    state.update({"Next": next_state} if next_state else {"End": True})
    return state


def _task_state(recipe: Recipe, task: TaskSpec, chunks: bool = False) -> dict:
    """A Batch job of the task; ``chunks``: an array job, one child per chunk of its frames (each reads its index
    from AWS_BATCH_JOB_ARRAY_INDEX)."""
    words = (*TASK_COMMAND, recipe.name, task.name, "--run-id")
    command = ", ".join(f"'{part}'" for part in words)
    parameters = {
        "JobName.$": f"States.Format('{{}}-{task.name}', $.run_id)",
        "JobQueue": ref(job_queue_key(task.resource_class)),
        "JobDefinition.$": f"$.start.result.job_definitions.{job_definition_field(task.resource_class)}",
        "ContainerOverrides": {"Command.$": f"States.Array({command}, $.run_id)"},
        # The job queues share capacity fairly between proposals, and a run's priority orders its jobs.
        "ShareIdentifier.$": "$.start.result.share_identifier",
        "SchedulingPriorityOverride.$": "$.start.result.scheduling_priority",
    }
    if chunks:
        parameters["ArrayProperties"] = {"Size.$": f"$.start.result.chunks.{task.name}"}
    retry = _retry(BATCH_TRANSIENT)
    if task.retries:  # a hosted pipeline node's own retries (DKIST's Airflow retries the node after its delay)
        retry.append({"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": task.retry_delay_s,
                      "MaxAttempts": task.retries, "BackoffRate": 1.0})
    return {
        "Type": "Task",
        "Comment": ("its chunks, side by side: " if chunks else "") + (task.description or task.entrypoint),
        "Resource": "arn:aws:states:::batch:submitJob.sync",
        "Parameters": parameters,
        "ResultPath": None,
        "Retry": retry,
    }


FOR_THE_PI = "ForThePI"
# The parts of a data-parallel task: "<task> chunks", ...; "<task> gather" in state machines made before the last
# chunk to finish recorded the task (their executions are still shown).
CHUNKS, GATHER, WHOLE = "chunks", "gather", "whole"


def task_of_state(state: str) -> tuple[str, str | None]:
    """The task a Task state runs, and which part of a data-parallel task it is (None for an ordinary task)."""
    task, _, part = state.partition(" ")
    return task, part or None


REUSED = "reused"  # "<task> reused?" chooses, "<task> reused" passes: a task StartRun found made already


def reused_choice_name(task: str) -> str:
    return f"{task} {REUSED}?"


def in_chunks_name(task: str) -> str:
    """A data-parallel task's Choice: its chunks' array job, or one job for a single chunk."""
    return f"{task} in {CHUNKS}?"


def _reused_states(task: TaskSpec, otherwise: str, next_state: str | None) -> dict:
    """A reusable task: skipped when StartRun recorded an earlier run's outputs for it (``runs.reuse``)."""
    passed = {"Type": "Pass", "Comment": "made already by an earlier run: no job starts"}
    passed.update({"Next": next_state} if next_state else {"End": True})
    return {
        reused_choice_name(task.name): {
            "Type": "Choice", "Comment": "its outputs were made by an earlier run (same digest)",
            "Choices": [{"Variable": f"$.start.result.reused.{task.name}", "BooleanEquals": True,
                         "Next": f"{task.name} {REUSED}"}],
            "Default": otherwise},
        f"{task.name} {REUSED}": passed,
    }


def _task_states(recipe: Recipe, task: TaskSpec, next_state: str | None) -> dict[str, dict]:
    """The states of one task, its entry first, going on to ``next_state`` (None: the end of its branch). A
    data-parallel task: one array job over its chunks (the last chunk to finish records the task), or (a run of
    one chunk: an array job has at least two children) one job over every frame."""
    after = {"Next": next_state} if next_state else {"End": True}
    if not task.data_parallel:
        states = {task.name: {**_task_state(recipe, task), **after}}
    else:
        chunks, whole = f"{task.name} {CHUNKS}", f"{task.name} {WHOLE}"
        # Not named as the task: a stage of this task alone is a Parallel of that name, and Step Functions wants
        # every state's name unique in the whole state machine.
        states = {
            in_chunks_name(task.name): {
                "Type": "Choice", "Comment": "one job per chunk of frames, or one job for a single chunk",
                "Choices": [{"Variable": f"$.start.result.chunks.{task.name}", "NumericGreaterThan": 1, "Next": chunks}],
                "Default": whole},
            chunks: {**_task_state(recipe, task, chunks=True), **after},
            whole: {**_task_state(recipe, task), **after},
        }
    return {**_reused_states(task, next(iter(states)), next_state), **states} if task.reuse else states


def _branch(recipe: Recipe, chain: list[TaskSpec]) -> dict:
    """A Parallel branch: the chain's tasks one after another."""
    states, next_state = {}, None
    for task in reversed(chain):
        task_states = _task_states(recipe, task, next_state)
        states, next_state = {**task_states, **states}, next(iter(task_states))
    return {"StartAt": next_state, "States": states}


def stages(recipe: Recipe) -> list[list[list[TaskSpec]]]:
    """The recipe's dependency levels as stages of chains. A stage's chains run side by side (a Parallel), a
    chain's tasks one after another. A later task that needs only one chain's tasks (and earlier stages') joins
    that chain, so it starts as soon as they end, not when the slowest chain of the stage does: a quality report
    need not wait for the stamping of every frame."""
    levels, done, found = [list(level) for level in recipe.levels()], set(), []
    while levels:
        chains = [[task] for task in levels.pop(0)]
        joined = len(chains) > 1  # one chain alone: the stages after it wait for it either way
        while joined:
            joined = False
            for task in [task for level in levels for task in level]:
                chain = next((c for c in chains if set(task.upstreams) & {t.name for t in c}
                              and set(task.upstreams) <= done | {t.name for t in c}), None)
                if chain is not None:
                    chain.append(task)
                    levels = [[t for t in level if t is not task] for level in levels]
                    joined = True
            levels = [level for level in levels if level]
        found.append(chains)
        done |= {task.name for chain in chains for task in chain}
    return found


def _stage_states(recipe: Recipe, chains: list[list[TaskSpec]], next_state: str) -> dict[str, dict]:
    """The states of one stage, its entry first."""
    name = " + ".join(chain[0].name for chain in chains)
    if len(chains) == 1 and len(chains[0]) == 1 and not chains[0][0].data_parallel:
        state = _task_state(recipe, chains[0][0])
    else:
        state = {
            "Type": "Parallel",
            "Comment": "independent tasks, run side by side" if len(chains) > 1 else "a data-parallel task",
            "Branches": [_branch(recipe, chain) for chain in chains],
            "ResultPath": None,
        }
    state["Catch"] = _catch()
    state["Next"] = next_state
    if state["Type"] == "Task" and chains[0][0].reuse:
        return {**_reused_states(chains[0][0], name, next_state), name: state}
    return {name: state}


def notify_pi_state() -> dict:
    """SNS to the PI topic, with the proposal as a message attribute (a PI subscribes with a filter on it)."""
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::sns:publish",
        "Parameters": {
            "TopicArn": ref(PI_TOPIC_KEY),
            "Subject.$": "$.catalog.result.subject",
            "Message.$": "$.catalog.result.message",
            "MessageAttributes": {
                "proposal_id": {"DataType": "String", "StringValue.$": "$.catalog.result.proposal_id"},
                "dataset_id": {"DataType": "String", "StringValue.$": "$.catalog.result.dataset_id"},
            },
        },
        "ResultPath": None,
        "Retry": _retry(SNS_TRANSIENT),
        "Catch": _catch(),
        "Next": "FinishRun",
    }


def build_definition(recipe: Recipe) -> dict:
    """The Amazon States Language definition of ``recipe``, with ${Placeholders} for ARNs."""
    run = {"run_id.$": "$.run_id"}
    tasks, next_state = {}, "Catalog"
    for stage in reversed(stages(recipe)):  # each stage goes on to the entry of the next
        stage_states = _stage_states(recipe, stage, next_state)
        tasks, next_state = {**stage_states, **tasks}, next(iter(stage_states))
    states: dict[str, dict] = {
        "StartRun": _lambda("start-run", {**run, "execution_arn.$": "$$.Execution.Id"}, "$.start", next_state),
        **tasks,
    }
    # The PI hears of science datasets; master calibrations, summaries and developer runs' datasets quietly.
    states["Catalog"] = _lambda("catalog", run, "$.catalog", FOR_THE_PI if recipe.kind == "science" else "FinishRun")
    if recipe.kind == "science":
        states[FOR_THE_PI] = {
            "Type": "Choice", "Comment": "a developer campaign's dataset is not the PI's",
            "Choices": [{"Variable": "$.catalog.result.notify_pi", "BooleanEquals": True, "Next": "NotifyPI"}],
            "Default": "FinishRun",
        }
        states["NotifyPI"] = notify_pi_state()
    states["FinishRun"] = _lambda("finish-run", run, None, None)
    failure = {**run, "error.$": "$.error", "execution_arn.$": "$$.Execution.Id"}
    states["OpenTicket"] = _lambda("open-ticket", failure, "$.ticket", "FailRun", catch=False)
    # FailRun records the failure even if the ticket could not be opened.
    states["OpenTicket"]["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.ticket_error", "Next": "FailRun"}]
    states["FailRun"] = _lambda("fail-run", failure, None, "RunFailed", catch=False)
    states["RunFailed"] = {"Type": "Fail", "Error": "RunFailed", "Cause": f"a task of recipe {recipe.key} failed; see the run's ticket"}
    return {
        "Comment": f"obsflow recipe {recipe.key}: {recipe.description}",
        "StartAt": "StartRun",
        "States": states,
    }


def success_path(definition: dict, notify_pi: bool = True, chunked: bool = True,
                 reused: frozenset[str] = frozenset()) -> tuple[int, int]:
    """State transitions and Lambda invocations of an execution that succeeds at the first attempt
    (what Step Functions and Lambda bill for), counted along the definition, Parallel branches included;
    ``notify_pi``: whether the run's dataset is the PI's (ForThePI takes its first choice, else its default);
    ``chunked``: whether data-parallel tasks run in several chunks (an array job) or one (a job);
    ``reused``: the tasks StartRun found made already (skipped)."""
    transitions = invocations = 0
    name = definition["StartAt"]
    while name is not None:
        state = definition["States"][name]
        transitions += 1
        invocations += state.get("Resource") == "arn:aws:states:::lambda:invoke"
        for branch in state.get("Branches", []):
            t, i = success_path(branch, notify_pi, chunked, reused)
            transitions, invocations = transitions + t, invocations + i
        if state["Type"] == "Choice":
            task, _, part = name.partition(" ")
            first = notify_pi if name == FOR_THE_PI else task in reused if part == f"{REUSED}?" else chunked
            name = state["Choices"][0]["Next"] if first else state["Default"]
        else:
            name = state.get("Next")
    return transitions, invocations


def placeholders(definition: dict) -> set[str]:
    return set(_PLACEHOLDER.findall(json.dumps(definition)))


def render(definition: dict, values: dict[str, str]) -> str:
    """The definition as JSON with every ${Placeholder} replaced; KeyError names any left unfilled."""
    text = json.dumps(definition, indent=2)
    missing = placeholders(definition) - set(values)
    if missing:
        raise KeyError(f"no value for placeholder(s) {', '.join(sorted(missing))}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)

