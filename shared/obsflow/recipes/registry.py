"""Which recipes exist, which one a candidate gets, and their registration in DynamoDB."""

from __future__ import annotations

import datetime as dt

from obsflow.errors import NotFound
from obsflow.recipes.definitions import RECIPES
from obsflow.recipes.model import Recipe
from obsflow.settings import Settings
from obsflow.tables.recipes import RecipeItem


def _version_key(recipe: Recipe) -> tuple[int, ...]:
    return tuple(int(part) for part in recipe.version.split("."))


def get(name: str, version: str | None = None, recipes: tuple[Recipe, ...] = RECIPES) -> Recipe:
    """The named recipe (its latest version unless ``version`` is given)."""
    matching = [r for r in recipes if r.name == name and (version is None or r.version == version)]
    if not matching:
        known = ", ".join(sorted({r.key for r in recipes}))
        raise NotFound(f"no recipe {name!r}{' version ' + version if version else ''}; known recipes: {known}")
    return max(matching, key=_version_key)


def select(instrument: str, recipe: str | None = None, recipes: tuple[Recipe, ...] = RECIPES) -> Recipe:
    """The candidate's named recipe, else the latest recipe matching its instrument."""
    if recipe:
        return get(recipe, recipes=recipes)
    matching = [r for r in recipes if r.matches(instrument)]
    names = {r.name for r in matching}
    if not matching:
        raise NotFound(f"no recipe matches instrument {instrument!r}; name one in the candidate's 'recipe' field")
    if len(names) > 1:
        raise NotFound(f"instrument {instrument!r} matches several recipes ({', '.join(sorted(names))}); "
                       "name one in the candidate's 'recipe' field")
    return max(matching, key=_version_key)


def register(settings: Settings, recipes: tuple[Recipe, ...] = RECIPES) -> list[str]:
    """Write every recipe version into the recipes table (idempotent); returns their keys."""
    now = dt.datetime.now(dt.timezone.utc)
    for recipe in recipes:
        RecipeItem(
            recipe.name,
            recipe.version,
            instrument=recipe.instrument,
            automated=recipe.automated,
            priority=recipe.priority,
            state_machine=settings.state_machine_name(recipe.name, recipe.version),
            definition=recipe.model_dump(mode="json"),
            registered_at=now,
        ).save()
    return [recipe.key for recipe in recipes]
