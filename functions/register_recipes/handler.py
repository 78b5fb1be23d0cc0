"""RegisterRecipes: after each deployment, record every recipe version in the recipes table (idempotent)."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from obsflow.observability import logger, tracer
from obsflow.recipes import registry
from obsflow.services import bound_settings


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict, context: LambdaContext) -> dict:
    registered = registry.register(bound_settings())
    logger.info("recipes registered", extra={"recipes": registered})
    return {"registered": registered}
