"""Which recipes exist: the shipped ones (files), and every version registered as data in the recipes table.

A version is registered once and never overwritten. Parameter values set as data
(`obsflow recipes set-value`) are merged into each version that has the parameter.
"""

from __future__ import annotations

import datetime as dt
import json

from pynamodb.exceptions import PutError

from obsflow.errors import NotFound, ObsflowError
from obsflow.recipes.definitions import RECIPES
from obsflow.recipes.model import DatedValue, Recipe, RecipeError
from obsflow.settings import Settings
from obsflow.tables import parameter_values, recipes
from obsflow.tables.base import CONDITION_FAILED
from obsflow.tables.parameter_values import ParameterValueItem
from obsflow.tables.recipes import RecipeItem


class VersionConflict(ObsflowError):
    """A recipe version is registered with another definition: versions are never overwritten."""


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def get(name: str, version: str | None = None, recipes: tuple[Recipe, ...] = RECIPES) -> Recipe:
    """The named shipped recipe (its latest version unless ``version`` is given)."""
    matching = [r for r in recipes if r.name == name and (version is None or r.version == version)]
    if not matching:
        known = ", ".join(sorted({r.key for r in recipes}))
        raise NotFound(f"no recipe {name!r}{' version ' + version if version else ''}; known recipes: {known}")
    return max(matching, key=lambda r: version_key(r.version))


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
    return max(matching, key=lambda r: version_key(r.version))


# -- registered as data ----------------------------------------------------------------------
def _definition(recipe: Recipe) -> dict:
    return json.loads(recipe.model_dump_json())


def register_recipe(settings: Settings, recipe: Recipe, registered_by: str = "deployment", at=None) -> bool:
    """Record the version; True if it is new, False if it was registered with the same definition.

    VersionConflict if it was registered with another: a changed recipe needs a new version.
    """
    item = RecipeItem(
        recipe.name, recipe.version, instrument=recipe.instrument, automated=recipe.automated,
        priority=recipe.priority, state_machine=settings.state_machine_name(recipe.name, recipe.version),
        definition=_definition(recipe), registered_at=at or dt.datetime.now(dt.timezone.utc),
        registered_by=registered_by,
    )
    try:
        item.save(condition=RecipeItem.name.does_not_exist())
        return True
    except PutError as exc:
        if exc.cause_response_code != CONDITION_FAILED:
            raise
    existing = RecipeItem.get(recipe.name, recipe.version, consistent_read=True)
    # Compared as models: a field added to the model since (with its default) is no change.
    if Recipe.model_validate(existing.definition) != recipe:
        raise VersionConflict(f"{recipe.key} is registered with another definition (by {existing.registered_by or '?'} "
                              f"at {existing.registered_at:%Y-%m-%d %H:%M}); a version is never overwritten: "
                              "give the changed recipe a new version")
    return False


def register(settings: Settings, shipped: tuple[Recipe, ...] = RECIPES) -> list[str]:
    """Record every shipped version (idempotent); VersionConflict names any shipped version changed in place."""
    conflicts = []
    for recipe in shipped:
        try:
            register_recipe(settings, recipe)
        except VersionConflict as exc:
            conflicts.append(str(exc))
    if conflicts:
        raise VersionConflict("; ".join(conflicts))
    return [recipe.key for recipe in shipped]


def _with_set_values(recipe: Recipe, settings_: list[ParameterValueItem]) -> Recipe:
    """``recipe`` with the values set as data added to its parameters' dated values (a later setting of the
    same effective date wins)."""
    if not settings_:
        return recipe
    parameters = []
    for parameter in recipe.parameters:
        dated = {v.effective_from: v for v in parameter.values}
        for item in sorted((i for i in settings_ if i.parameter == parameter.name), key=lambda i: i.set_at):
            day = dt.date.fromisoformat(item.effective_from)
            dated[day] = DatedValue(effective_from=day, value=item.value)
        parameters.append(parameter.model_copy(update={"values": tuple(sorted(dated.values(), key=lambda v: v.effective_from))}))
    return recipe.model_copy(update={"parameters": tuple(parameters)})


def registered(name: str, version: str | None = None) -> Recipe:
    """A registered version (the latest unless ``version`` is given), with the parameter values set as data."""
    items = [item for item in recipes.versions(name) if version is None or item.version == version]
    if not items:
        raise NotFound(f"no recipe {name!r}{' version ' + version if version else ''} is registered; "
                       "`obsflow recipes list` shows the registered ones")
    latest = max(items, key=lambda item: version_key(item.version))
    return _with_set_values(Recipe.model_validate(latest.definition), parameter_values.of_recipe(name))


def set_value(name: str, parameter: str, value, effective_from: dt.date, set_by: str, reason: str,
              at: dt.datetime | None = None) -> dict:
    """Record a dated value of a parameter, checked against the valid values of every version that has it."""
    versions = [Recipe.model_validate(item.definition) for item in recipes.versions(name)]
    if not versions:
        raise NotFound(f"no recipe {name!r} is registered; `obsflow recipes list` shows the registered ones")
    having = [r for r in versions if any(p.name == parameter for p in r.parameters)]
    if not having:
        known = sorted({p.name for r in versions for p in r.parameters})
        raise RecipeError(f"recipe {name} has no parameter {parameter!r}; its parameters: {', '.join(known) or 'none'}")
    checked = None
    for recipe in having:
        checked = next(p for p in recipe.parameters if p.name == parameter).check(value)
    at = at or dt.datetime.now(dt.timezone.utc)
    item = ParameterValueItem(name, f"{parameter}#{effective_from.isoformat()}#{at.isoformat()}", parameter=parameter,
                              value=checked, effective_from=effective_from.isoformat(), set_by=set_by, reason=reason,
                              set_at=at)
    item.save()
    return {"recipe": name, "parameter": parameter, "value": checked, "effective_from": effective_from.isoformat(),
            "set_by": set_by, "reason": reason, "versions": [r.version for r in having]}
