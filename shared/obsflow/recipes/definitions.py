"""The recipes and discovery rules this release ships: data files under ``shipped/``, validated on import.

Each recipe version is one YAML file (``shipped/recipes/<name>-<version>.yaml``), the same
format `obsflow recipes register FILE` takes; the discovery rules are ``shipped/discovery-rules.yaml``.
"""

from __future__ import annotations

from importlib import resources

import yaml

from obsflow.recipes.model import MAX_TASKS, Recipe, RecipeError
from obsflow.recipes.rules import DiscoveryRule, in_dependency_order

_SHIPPED = resources.files("obsflow.recipes") / "shipped"


def parse_recipe(text: str, source: str) -> Recipe:
    """A recipe from YAML or JSON text; RecipeError naming ``source`` if it is not a valid recipe."""
    if len(text) > MAX_RECIPE_CHARACTERS:  # before parsing: a huge file is refused at once, not after minutes
        raise RecipeError(f"{source}: {len(text):,} characters; a recipe has at most {MAX_RECIPE_CHARACTERS:,} "
                          f"(and at most {MAX_TASKS} tasks)")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RecipeError(f"{source}: not YAML or JSON: {exc}") from None
    if not isinstance(document, dict):
        raise RecipeError(f"{source}: a recipe is a mapping (name, version, tasks, ...)")
    try:
        return Recipe.model_validate(document)
    except ValueError as exc:
        raise RecipeError(f"{source}: {exc}") from None


MAX_RECIPE_CHARACTERS = 256 * 1024  # a recipe is one DynamoDB item: 400 KB at most


def _load_recipes() -> tuple[Recipe, ...]:
    files = sorted((_SHIPPED / "recipes").iterdir(), key=lambda f: f.name)
    return tuple(parse_recipe(f.read_text(), f.name) for f in files if f.name.endswith(".yaml"))


def parse_rules(text: str, source: str) -> tuple[DiscoveryRule, ...]:
    """Discovery rules from YAML or JSON text (a list), in dependency order; RecipeError naming ``source``."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RecipeError(f"{source}: not YAML or JSON: {exc}") from None
    if not isinstance(document, list) or not document:
        raise RecipeError(f"{source}: discovery rules are a list of rules (name, instrument, recipe, group_by, inputs)")
    try:
        return tuple(in_dependency_order(tuple(DiscoveryRule.model_validate(rule) for rule in document)))
    except ValueError as exc:
        raise RecipeError(f"{source}: {exc}") from None


def _load_rules() -> tuple[DiscoveryRule, ...]:
    return parse_rules((_SHIPPED / "discovery-rules.yaml").read_text(), "discovery-rules.yaml")


RECIPES: tuple[Recipe, ...] = _load_recipes()
RULES: tuple[DiscoveryRule, ...] = _load_rules()
