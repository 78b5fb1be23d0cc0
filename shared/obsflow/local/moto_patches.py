"""Local-runtime fixes to moto 5.2.5 internals (pinned), applied by the local stack.

Step Functions -> Batch: the interpreter's parameter normalisation is a no-op for
Batch, so ``batch:submitJob.sync`` sends PascalCase names to a camelCase API. Here it
maps them through botocore's operation model, as AWS does.

Parallel states: a branch failing with a States.* error (a failed Batch job is
States.TaskFailed) crashes the interpreter, which rewraps it as a custom error name;
here it is re-raised under its own States.* name, so a Catch on the Parallel works.

Batch jobs: moto's Docker-free backend marks every job SUCCEEDED without running it.
Here each job runs its command as a subprocess of this virtualenv (the task image's
entrypoint), in the background, and ends SUCCEEDED or FAILED by its exit code, with
its output in CloudWatch Logs (the job definition's awslogs group) and its exit code in DescribeJobs,
like on AWS.

Lambda: every invocation (the Invoke API, Step Functions tasks) runs the deployed
handler in this process; an exception becomes Lambda's error payload.

TransactWriteItems: moto deep-copies every table a transaction touches, to roll back
on failure, so each transaction costs time in proportion to the table's size (a
2,000-frame inventory makes every batch ~20x slower than on DynamoDB). This version
keeps DynamoDB's semantics (all-or-nothing, per-item cancellation reasons, one
operation per item) by checking every condition first and writing only when all
hold; it snapshots just the items it writes, for the rare failure mid-write.

Query: moto sorts the whole table on every query and compares every item's key through
DynamoType, so one query on a 27,000-item table took 0.6 s whatever it returned. Here a
query considers only the items of the queried partition (of the table or of a global
secondary index with string keys), as DynamoDB reads only those; moto's own query then
sorts, pages, filters and projects them as before.

DynamoDB responses: moto's model-driven serializer walks every attribute value of every
returned item through botocore's shapes (about 1 ms per item of 15 attributes), although
an item of strings, numbers and booleans is already in DynamoDB's wire format; such items
are passed through as they are, the rest (binary, sets, maps, lists) as before. For the same
reason a projection of top-level attributes of those types copies them, where moto converted the
whole item once per projected attribute.
"""

from __future__ import annotations

import copy
import datetime
import inspect
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend

_OPERATIONS = {"ConditionCheck", "Put", "Delete", "Update"}


_query_scope = threading.local()


def _partition(table, hash_key, index_name: str | None, hash_key_conditions) -> list | None:
    """The items a query can return, or None where the fast path does not apply (moto decides then)."""
    if index_name is None:
        if hash_key is None:
            return None
        partition = table.items.get(hash_key)
        if partition is None:
            return []
        return list(partition.values()) if table.range_key_attr else [partition]
    index = next((i for i in table.global_indexes or [] if i.name == index_name), None)
    wanted = list(hash_key_conditions or [])
    hash_names = [k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"] if index else []
    if not wanted or sorted(name for name, _ in wanted) != sorted(hash_names) or any(v.type != "S" for _, v in wanted):
        return None
    partitions = table.items.values()
    items = [i for p in partitions for i in p.values()] if table.range_key_attr else list(partitions)
    for name, value in wanted:  # a tight loop per key attribute: this runs over the whole table
        items = [i for i in items if (a := i.attrs.get(name)) is not None and a.value == value.value and a.type == "S"]
    return items


def _query_in_partition(original):
    signature = inspect.signature(original)

    def query(self, *args, **kwargs):
        asked = signature.bind(self, *args, **kwargs).arguments
        _query_scope.items = _partition(self, asked.get("hash_key"), asked.get("index_name"),
                                        asked.get("hash_key_conditions"))
        try:
            return original(self, *args, **kwargs)
        finally:
            _query_scope.items = None

    query.patched = True
    return query


def _all_items_in_scope(original):
    def all_items(self):
        scoped = getattr(_query_scope, "items", None)
        return original(self) if scoped is None else scoped

    all_items.patched = True
    return all_items


_WIRE_READY = {"S": str, "N": str, "BOOL": bool, "NULL": bool}


def _is_wire_ready(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and all(
        isinstance(v, _WIRE_READY.get(t, ())) for t, v in value.items())


def _project_plain_attributes(original):
    def project(self, projection_expressions):
        names = [e[0] for e in projection_expressions if len(e) == 1 and "[" not in e[0]]
        kept = {n: {a.type: a.value} for n in names if (a := self.attrs.get(n)) is not None}
        if len(names) < len(projection_expressions) or not all(_is_wire_ready(v) for v in kept.values()):
            return original(self, projection_expressions)
        return type(self)(self.hash_key, self.range_key, kept)

    project.patched = True
    return project


def _attribute_maps_as_they_are(original):
    def serialize_map(self, serialized, value, shape, key):
        if shape.name == "AttributeMap" and all(_is_wire_ready(v) for v in value.values()):
            self._default_serialize(serialized, dict(value), shape, key)
        else:
            original(self, serialized, value, shape, key)

    serialize_map.patched = True
    return serialize_map


def _item_key(backend: DynamoDBBackend, op_type: str, op: dict) -> dict:
    if op_type != "Put":
        return op["Key"]
    table = backend.get_table(op["TableName"])
    key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = op["Item"][table.range_key_attr]
    return key


def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    operations, seen = [], set()
    for item in transact_items:
        if len(item) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        if op_type not in _OPERATIONS:
            raise ValueError("Unsupported transaction operation")
        key = _item_key(self, op_type, op)
        identity = (str(op["TableName"]), str(dict(sorted(key.items()))))
        if identity in seen:
            raise MultipleTransactionsException()
        seen.add(identity)
        operations.append((op_type, op, key))

    # Phase 1: every condition against the state before the transaction.
    errors: list[tuple] = []
    for op_type, op, key in operations:
        old = None
        try:
            current = self.get_item(op["TableName"], key)
            expression = op.get("ConditionExpression")
            if expression is not None:
                condition = get_filter_expression(
                    expression, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
                )
                if not condition.expr(current):
                    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                        old = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=old)
            errors.append((None, None, None))
        except ConditionalCheckFailed as exc:
            errors.append(("ConditionalCheckFailed", str(exc.message), old))
        except Exception as exc:  # noqa: BLE001  (reported per item, as moto does)
            errors.append((type(exc).__name__, str(exc), None))
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)

    # Phase 2: write, keeping copies of only the items written.
    written: list[tuple[str, dict, Any]] = []
    try:
        for op_type, op, key in operations:
            if op_type == "ConditionCheck":
                continue
            table_name = op["TableName"]
            written.append((table_name, key, copy.deepcopy(self.get_item(table_name, key))))
            names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            if op_type == "Put":
                self.put_item(table_name, op["Item"], expression_attribute_names=names, expression_attribute_values=values)
            elif op_type == "Delete":
                self.delete_item(table_name, key, expression_attribute_names=names, expression_attribute_values=values)
            else:
                self.update_item(table_name, key, update_expression=op["UpdateExpression"],
                                 expression_attribute_names=names, expression_attribute_values=values)
    except Exception as exc:
        _restore(self, written)
        if isinstance(exc, MockValidationException):  # as moto reports it
            raise
        raise TransactionCanceledException([(type(exc).__name__, str(exc), None)] * len(operations)) from exc


def _restore(backend: DynamoDBBackend, written: list[tuple[str, dict, Any]]) -> None:
    for table_name, key, before in reversed(written):
        table = backend.get_table(table_name)
        if before is None:
            backend.delete_item(table_name, key)
        else:
            table.put_item(before.to_json()["Attributes"])


# -- Step Functions -> Batch ------------------------------------------------------
def _operation_model(service: str, action: str):
    from botocore import xform_name
    from botocore.session import get_session

    model = get_session().get_service_model(service)
    names = {xform_name(name): name for name in model.operation_names}
    return model.operation_model(names.get(action, action))


def _normalise_batch_parameters(self, parameters, boto_service_name=None, service_action_name=None) -> None:
    operation = _operation_model(self._get_boto_service_name(boto_service_name), self._get_boto_service_action(service_action_name))
    self._to_boto_request(parameters, operation.input_shape)


def _normalise_batch_response(self, response, boto_service_name=None, service_action_name=None) -> None:
    operation = _operation_model(self._get_boto_service_name(boto_service_name), self._get_boto_service_action(service_action_name))
    self._from_boto_response(response, operation.output_shape)


# -- Parallel branch failures --------------------------------------------------------
def _branch_error_name(error_name: str | None = None):
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName

    if error_name and error_name.startswith("States."):
        return StatesErrorName.from_name(error_name)
    return CustomErrorName(error_name=error_name)


# -- Batch jobs as subprocesses ----------------------------------------------------
def _job_command_and_environment(job) -> tuple[list[str], dict[str, str]]:
    properties = job.job_definition.container_properties or {}
    overrides = job.container_overrides or {}
    command = list(overrides.get("command") or properties.get("command") or [])
    if command and command[0] in ("python", "python3"):
        command[0] = sys.executable  # the image's python is this virtualenv's
    environment = dict(os.environ)
    for variable in [*properties.get("environment", []), *overrides.get("environment", [])]:
        environment[variable["name"]] = variable["value"]
    return command, environment


def _run_job(job) -> None:
    command, environment = _job_command_and_environment(job)
    started = time.time()
    try:
        completed = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
        exit_code, output = completed.returncode, completed.stdout + completed.stderr
    except OSError as exc:
        exit_code, output = 127, f"cannot start {command!r}: {exc}"
    job.exit_code = exit_code
    job.job_stopped_reason = "Essential container in task exited"
    log_options = ((job.job_definition.container_properties or {}).get("logConfiguration") or {}).get("options") or {}
    job._log_group = log_options.get("awslogs-group", job._log_group)  # moto ignores the job's log group
    logs = job._log_backend
    logs.ensure_log_group(job._log_group)
    logs.ensure_log_stream(job._log_group, job._stream_name)
    stamp = int(started * 1000)
    events = [{"timestamp": stamp, "message": line} for line in output.splitlines() if line.strip()]
    if events:
        logs.put_log_events(job._log_group, job._stream_name, events)
    job._mark_stopped(success=exit_code == 0)


def _describe_job_with_exit_code(original):
    """moto drops the container's exit code from DescribeJobs; AWS reports it (tickets use it)."""

    def describe(self) -> dict:
        result = original(self)
        if self.exit_code is not None and isinstance(result.get("container"), dict):
            result["container"]["exitCode"] = self.exit_code
        return result

    describe.patched = True
    return describe


def _start_job(self, include_start_attempt: bool, job) -> None:
    self.backend._jobs[job.job_id] = job
    job.job_started_at = datetime.datetime.now()
    job.log_stream_name = job._stream_name
    if include_start_attempt:
        job._start_attempt()
    threading.Thread(target=_run_job, args=(job,), name=f"batch-job-{job.job_name}", daemon=True).start()


# -- Lambda in-process ---------------------------------------------------------------
def _invoke_in_process(self, event=None) -> tuple[str, bool, str]:
    from obsflow.local.lambda_runtime import invoke_local

    payload = json.loads(event) if isinstance(event, (str, bytes)) else (event or {})
    result, errored = invoke_local(self.function_name, payload)
    return json.dumps(result), errored, ""


def apply() -> None:
    """Install the patches (idempotent)."""
    from moto.awslambda.models import LambdaFunction
    from moto.batch.models import Job
    from moto.batch_simple.models import BatchSimpleBackend
    from moto.core.serialize import BaseJSONSerializer
    from moto.dynamodb.models.dynamo_type import Item
    from moto.dynamodb.models.table import Table
    from moto.stepfunctions.parser.asl.component.state.exec.state_parallel import branches_decl
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_batch import (
        StateTaskServiceBatch,
    )

    DynamoDBBackend.transact_write_items = transact_write_items
    StateTaskServiceBatch._normalise_parameters = _normalise_batch_parameters
    StateTaskServiceBatch._normalise_response = _normalise_batch_response
    branches_decl.CustomErrorName = _branch_error_name
    BatchSimpleBackend._mark_job_as_finished = _start_job
    if not getattr(Job.describe, "patched", False):
        Job.describe = _describe_job_with_exit_code(Job.describe)
    LambdaFunction._invoke_lambda = _invoke_in_process
    if not getattr(Table.query, "patched", False):
        Table.query = _query_in_partition(Table.query)
        Table.all_items = _all_items_in_scope(Table.all_items)
        Item.project = _project_plain_attributes(Item.project)
        BaseJSONSerializer._serialize_type_map = _attribute_maps_as_they_are(BaseJSONSerializer._serialize_type_map)
