"""Submitter Lambda: plan READY candidates, start READY runs by priority within the run slots.

Invoked asynchronously when work appears (a nudge) and on a schedule.
"""

from aws_lambda_powertools.utilities.typing import LambdaContext

from obsflow.observability import logger, metrics, tracer
from obsflow.services import run_service
from obsflow.usage import metered, the_runs_of_the_pass


@metered("submitter", runs=the_runs_of_the_pass)  # its pass, shared among the runs it planned or started
@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    report = run_service().submit()
    metrics.add_metric(name="RunsPlanned", unit="Count", value=len(report.planned))
    metrics.add_metric(name="RunsStarted", unit="Count", value=len(report.started))
    metrics.add_metric(name="RunsWaiting", unit="Count", value=len(report.waiting))
    return report.__dict__
