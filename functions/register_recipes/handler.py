"""RegisterRecipes: record recipe versions in the recipes table, never overwriting one.

After each deployment (a CDK trigger) it records every shipped version, whose state machines the
stack holds. Given a definition (`obsflow recipes register FILE`), it records that version and
creates its state machine: a new version runs without a code release.
"""

from aws_lambda_powertools.utilities.typing import LambdaContext

from obsflow import aws
from obsflow.observability import logger, tracer
from obsflow.pipelines.service import check_added
from obsflow.recipes import registry
from obsflow.recipes.model import Recipe
from obsflow.runs.platform import StateMachines
from obsflow.services import bound_settings


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict, context: LambdaContext) -> dict:
    settings = bound_settings()
    if "definition" not in event:
        registered = registry.register(settings)
        logger.info("shipped recipes registered", extra={"recipes": registered})
        return {"registered": registered}
    recipe = Recipe.model_validate(event["definition"])  # its tasks are obsflow's task package's (the model checks)
    check_added(aws.client(settings, "s3"), settings.bucket_name("work"), recipe)  # a pipeline's: only its own tasks
    new = registry.register_recipe(settings, recipe, registered_by=event.get("registered_by") or "unknown")
    state_machine = StateMachines(settings).deploy(recipe)
    logger.info("recipe registered", extra={"recipe": recipe.key, "new": new, "state_machine": state_machine})
    return {"recipe": recipe.key, "new": new, "state_machine": state_machine}
