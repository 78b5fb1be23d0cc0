"""Lambda: every invocation (the Invoke API, Step Functions tasks) runs the deployed handler
in this process; an exception becomes Lambda's error payload.

An asynchronous invocation (``InvocationType=Event``) is answered at once and run on a thread
of its own, as Lambda queues it; moto would run it inside the request, so a caller that
nudges the submitter would wait for the whole pass. A function with reserved concurrency
runs that many invocations at a time, the rest waiting their turn in order, as Lambda's
throttled asynchronous events do: one submitter pass at a time.
"""

from __future__ import annotations

import json
import queue
import threading

_queues: dict[str, queue.SimpleQueue] = {}
_queues_lock = threading.Lock()
IDLE_S = 30.0


def _invoke_in_process(self, event=None) -> tuple[str, bool, str]:
    from obsflow.local.lambda_runtime import invoke_local

    payload = json.loads(event) if isinstance(event, (str, bytes)) else (event or {})
    result, errored = invoke_local(self.function_name, payload)
    return json.dumps(result), errored, ""


def _drain(function, events: queue.SimpleQueue) -> None:
    """Run the queued events in turn; after IDLE_S with none, end (a stopped stack's queue keeps no thread)."""
    while True:
        try:
            body = events.get(timeout=IDLE_S)
        except queue.Empty:
            with _queues_lock:  # an event is queued under the same lock: none can be put after this look
                if events.empty():
                    del _queues[function.function_arn]
                    return
            continue
        function._invoke_lambda(event=body)


def _invoke_later(function, body) -> None:
    """A reserved function's events in turn, on one thread (how many run at once is lambda_runtime's gate);
    the others each on a thread of its own."""
    if not function.reserved_concurrency:
        threading.Thread(target=function._invoke_lambda, kwargs={"event": body}, daemon=True,
                         name=f"event-{function.function_name}").start()
        return
    with _queues_lock:
        events = _queues.get(function.function_arn)
        if events is None:
            events = _queues[function.function_arn] = queue.SimpleQueue()
            threading.Thread(target=_drain, args=(function, events), daemon=True,
                             name=f"events-{function.function_name}").start()
        events.put(body)


def apply() -> None:
    from moto.awslambda.models import LambdaFunction

    if getattr(LambdaFunction.invoke, "patched", False):
        return
    synchronous = LambdaFunction.invoke

    def invoke(self, body, request_headers, response_headers):
        if request_headers.get("x-amz-invocation-type") == "Event":
            _invoke_later(self, body)
            return ""
        return synchronous(self, body, request_headers, response_headers)

    invoke.patched = True
    LambdaFunction._invoke_lambda = _invoke_in_process
    LambdaFunction.invoke = invoke
