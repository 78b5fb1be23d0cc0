"""Step Functions: the interpreter's Batch integration and Parallel failures as on AWS.

Step Functions -> Batch: the interpreter's parameter normalisation is a no-op for
Batch, so ``batch:submitJob.sync`` sends PascalCase names to a camelCase API. Here it
maps them through botocore's operation model, as AWS does.

A ``.sync`` task: the interpreter looks at the job every 0.5 s; here every 0.1 s, so a chain of short jobs (a
hosted pipeline's 16 nodes) does not wait a quarter of a second on average after each (AWS's own wait is the
service's: Fargate's start-up dwarfs it).

Parallel states: a branch failing with a States.* error (a failed Batch job is
States.TaskFailed) crashes the interpreter, which rewraps it as a custom error name;
here it is re-raised under its own States.* name, so a Catch on the Parallel works.
"""

from __future__ import annotations


SYNC_CHECK_S = 0.1


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


def _branch_error_name(error_name: str | None = None):
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName

    if error_name and error_name.startswith("States."):
        return StatesErrorName.from_name(error_name)
    return CustomErrorName(error_name=error_name)


def apply() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_parallel import branches_decl
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_batch import (
        StateTaskServiceBatch,
    )

    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_callback

    state_task_service_callback._DELAY_SECONDS_SYNC_CONDITION_CHECK = SYNC_CHECK_S
    StateTaskServiceBatch._normalise_parameters = _normalise_batch_parameters
    StateTaskServiceBatch._normalise_response = _normalise_batch_response
    branches_decl.CustomErrorName = _branch_error_name
