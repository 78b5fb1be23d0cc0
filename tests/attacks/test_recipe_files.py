"""Attacks, third round: recipes from files cannot name arbitrary code, alias a version, or be unbounded."""

from __future__ import annotations

import json
import subprocess
import sys

import boto3
import pytest
from moto import mock_aws

from obsflow.pipelines.service import check_added, record_key
from obsflow.pipelines.workflows import recipe_of
from obsflow.recipes.definitions import RECIPES, parse_recipe
from obsflow.recipes.model import Recipe, RecipeError
from obsflow.runs import documents
from tests.unit.test_pipelines import workflow

CENSUS = RECIPES[0].model_dump(mode="json")


def _with_task(**changes) -> str:
    return json.dumps({**CENSUS, "tasks": [{**CENSUS["tasks"][0], "upstreams": [], **changes}]})


@pytest.mark.parametrize("entrypoint", ["os:system", "this:s", "subprocess:Popen", "obsflow_tasks_evil.x:Task",
                                        "obsflow_tasks.census:DarkLevel;os:system"])
def test_a_task_outside_obsflows_task_package_is_refused_by_the_model(entrypoint):
    # Given a recipe file naming code elsewhere; then the recipe model itself refuses it (so the register function,
    # which validates every definition it is sent, does too)
    with pytest.raises(RecipeError, match="is not a task of obsflow's task package"):
        parse_recipe(_with_task(entrypoint=entrypoint), "evil.json")


def test_checking_a_recipes_tasks_imports_nothing():
    # Given a fresh interpreter; when the CLI's check reads whether the task package defines the tasks
    script = ("import sys; from obsflow.recipes import task_package as t; "
              "print(t.defines('obsflow_tasks.census:DarkLevel'), t.defines('obsflow_tasks.census:Nope'), "
              "[m for m in sys.modules if m.startswith('obsflow_tasks')])")
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    # Then it answers from the source, and no module of the task package was imported
    assert completed.stdout.strip() == "True False []"


@pytest.mark.parametrize("version", ["01.0.0", "1.00.0", "1.0.0-rc1", "1.0", "v1.0.0", "1.0.0 "])
def test_a_version_is_canonical_so_none_is_an_alias_of_another(version):
    with pytest.raises(RecipeError, match="is not MAJOR.MINOR.PATCH without leading zeros"):
        parse_recipe(json.dumps({**CENSUS, "version": version}), "alias.json")


def test_a_huge_recipe_is_refused_at_once_naming_the_limit():
    # Given a file of 10,000 tasks
    tasks = [{**CENSUS["tasks"][0], "name": f"t{i}", "upstreams": []} for i in range(10_000)]
    # Then it is refused before it is parsed, naming the limits
    with pytest.raises(RecipeError, match=r"a recipe has at most 262,144 \(and at most 300 tasks\)"):
        parse_recipe(json.dumps({**CENSUS, "tasks": tasks}), "huge.json")
    # And a smaller file of too many tasks names the task limit
    with pytest.raises(RecipeError, match="at most 300 items"):
        parse_recipe(json.dumps({**CENSUS, "tasks": tasks[:301]}), "many.json")


def test_a_pipeline_recipe_is_registered_only_for_an_added_pipeline_and_only_with_its_own_task_classes():
    recipe = recipe_of("dkist-processing-test", "1.34.4", workflow("input_to_output_test_fail"))
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="work")
        # Given no pipeline added: refused, saying what to do
        with pytest.raises(RecipeError, match="obsflow pipelines add dkist-processing-test==1.34.4"):
            check_added(s3, "work", recipe)
        # Given the pipeline added, as `pipelines add` records it: its own recipe passes
        documents.put_json(s3, "work", record_key("dkist-processing-test", "1.34.4"), {"workflows": [
            {"recipe": recipe.name, "task_classes": [t.pipeline_task for t in recipe.tasks if t.pipeline_task]}]})
        check_added(s3, "work", recipe)
        # When a definition sent to the register function swaps a node's class for other code, it is refused
        evil = Recipe.model_validate({**recipe.model_dump(mode="json"), "tasks": [
            {**recipe.tasks[0].model_dump(mode="json"), "pipeline_task": "os:system"}]})
        with pytest.raises(RecipeError, match="does not have: os:system"):
            check_added(s3, "work", evil)
