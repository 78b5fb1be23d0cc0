"""Catalog: the run's products become a dataset under <proposal>/<dataset id>/."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from obsflow.observability import logger, tracer
from obsflow.runs.steps import catalog
from obsflow.settings import bound_settings


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict, context: LambdaContext) -> dict:
    return catalog(bound_settings(), event["run_id"])
