"""A Lambda handler's usage, recorded with the runs it worked for.

``@metered(function)`` counts what one invocation asks of AWS (``obsflow.metering``) and how long it ran, and records
it as one usage entry per run (``runs.accounting``): its request, its seconds at the function's configured memory
(``settings.FUNCTION_SIZES``, what the stack deploys), and its requests. The run is the event's ``run_id``; a
handler that works for several (the submitter) names them from its result, and each gets an equal share. A failed
invocation is recorded too (Lambda bills it), and recording never fails the handler.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable

from obsflow import metering
from obsflow.observability import logger
from obsflow.settings import FUNCTION_SIZES


def the_event_run(event: dict, result) -> Iterable[str]:
    return [event["run_id"]] if event.get("run_id") else []


def the_runs_of_the_pass(event: dict, report: dict | None) -> Iterable[str]:
    """A submitter pass works for the runs it planned, started or held for a person (MANUAL); a pass that did none
    of that is the stage's own cost, no run's."""
    return [*report["planned"], *report["started"], *report["manual"]] if report else []


def metered(function: str, runs: Callable[[dict, object], Iterable[str]] = the_event_run):
    memory_mb = FUNCTION_SIZES[function][1]

    def decorate(handler):
        @functools.wraps(handler)
        def wrapper(event: dict, context) -> dict:
            result = None
            request_id = getattr(context, "aws_request_id", None) or "unknown"
            with metering.metering(kind="lambda", function=function, memory_mb=memory_mb,
                                   source=f"lambda-{function}-{request_id}") as meter:
                try:
                    result = handler(event, context)
                    return result
                finally:
                    entry = {**meter.entry(), "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
                    _record(function, event, result, runs, entry)
        return wrapper

    return decorate


def _record(function: str, event: dict, result, runs, entry: dict) -> None:
    from obsflow.services import run_service

    try:
        run_ids = list(runs(event, result))
        if run_ids:
            run_service().record_usage(run_ids, entry)
    except Exception:  # noqa: BLE001  (a cost not recorded must not fail the step that ran)
        logger.warning("usage not recorded", extra={"function": function}, exc_info=True)
