"""Algorithm documentation: a page per recipe version and per task, each task documented once."""

from __future__ import annotations

import json
import re
from pathlib import Path

from obsflow import docs
from obsflow.pipelines.workflows import recipe_of
from obsflow.recipes import registry

WORKFLOWS = json.loads((Path(__file__).parent / "fixtures" / "dkist_processing_test_workflows.json").read_text())


def pipeline_recipes():
    """DKIST's test workflows, and a second workflow made of the end-to-end one's nodes (as DKIST's trial
    workflows reuse its production ones')."""
    workflows = [*WORKFLOWS["workflows"], {**WORKFLOWS["workflows"][0], "workflow_name": "input_to_output_test_again"}]
    return [recipe_of("dkist-processing-test", "1.34.4", w) for w in workflows]


def test_each_task_has_one_page_linked_from_every_recipe_version_that_runs_it():
    # Given pipeline recipes of which two share their tasks, and obsflow's own recipes
    recipes = [*pipeline_recipes(), registry.get("vbi-l1"), registry.get("vbi-calibration")]
    # When the pages are built
    files = docs.build(recipes, "0.1.0")
    # Then there is a page per recipe version and one per distinct task (code at a version), no more
    distinct = {(t.pipeline_task or t.entrypoint) for r in recipes for t in r.tasks}
    assert sum(p.startswith("recipes/") for p in files) == len(recipes)
    assert sum(p.startswith("tasks/") for p in files) == len(distinct)
    # And every task a recipe page names links to a page that exists and lists the recipe back
    for recipe in recipes:
        page = files[f"recipes/{docs.recipe_slug(recipe)}.html"]
        linked = re.findall(r"href='\.\./tasks/([^']+)'", page)
        assert len(linked) == len(recipe.tasks)
        for slug in linked:
            assert f"../recipes/{docs.recipe_slug(recipe)}.html" in files[f"tasks/{slug}"]
    # And a task two recipes run is documented once, naming both
    transfer = next(text for path, text in files.items() if path.endswith(":TransferL0Data.html")
                    or path.endswith("TransferL0Data.html"))
    assert transfer.count("../recipes/input-to-output-test-") == 2


def test_a_pipeline_task_links_to_dkists_documentation_and_the_versions_source():
    files = docs.build(pipeline_recipes(), "0.1.0")
    page = next(text for path, text in files.items() if path.endswith("GenerateCalibratedData.html"))
    assert "https://pypi.org/project/dkist-processing-test/1.34.4/" in page
    assert "https://docs.dkist.nso.edu/projects/test/en/v1.34.4/" in page


def test_an_obsflow_task_page_carries_its_documentation_and_code():
    files = docs.build([registry.get("frame-census")], "0.1.0")
    page = next(text for path, text in files.items() if path.startswith("tasks/") and "Summary" in path)
    assert "<pre>" in page and "class Summary" in page


def test_text_from_a_recipe_is_escaped():
    recipe = registry.get("frame-census")
    hostile = recipe.model_copy(update={"description": "<script>alert(1)</script>"})
    page = docs.build([hostile], "0.1.0")[f"recipes/{docs.recipe_slug(hostile)}.html"]
    assert "<script>" not in page and "&lt;script&gt;" in page
