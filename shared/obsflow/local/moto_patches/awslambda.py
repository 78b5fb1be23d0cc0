"""Lambda: every invocation (the Invoke API, Step Functions tasks) runs the deployed handler
in this process; an exception becomes Lambda's error payload."""

from __future__ import annotations

import json


def _invoke_in_process(self, event=None) -> tuple[str, bool, str]:
    from obsflow.local.lambda_runtime import invoke_local

    payload = json.loads(event) if isinstance(event, (str, bytes)) else (event or {})
    result, errored = invoke_local(self.function_name, payload)
    return json.dumps(result), errored, ""


def apply() -> None:
    from moto.awslambda.models import LambdaFunction

    LambdaFunction._invoke_lambda = _invoke_in_process
