"""The recipes this release of obsflow ships: data, validated on import."""

from __future__ import annotations

from obsflow.recipes.model import DatedValue, Option, Parameter, Recipe, TaskSpec

FRAME_CENSUS = Recipe(
    name="frame-census",
    version="1.0.0",
    instrument="VBI",
    modes=("census",),  # chosen by name only, never by instrument match
    description="A small diamond-shaped recipe: inventory the input frames, measure dark level and "
    "observe-frame statistics side by side, then summarise. Used by tests and benchmarks.",
    documentation_url="https://github.com/obsflow/obsflow/blob/main/README.md#recipes",
    priority=10,
    tasks=(
        TaskSpec(name="inventory", entrypoint="obsflow_tasks.census:Inventory",
                 description="read every input frame's header and group the frames by task type"),
        TaskSpec(name="dark_level", entrypoint="obsflow_tasks.census:DarkLevel", upstreams=("inventory",),
                 description="median level of the dark frames"),
        TaskSpec(name="observe_stats", entrypoint="obsflow_tasks.census:ObserveStats", upstreams=("inventory",),
                 resource_class="multi-core", description="mean and RMS of each observe frame above the dark level"),
        TaskSpec(name="summary", entrypoint="obsflow_tasks.census:Summary", upstreams=("dark_level", "observe_stats"),
                 description="one JSON product with the census"),
    ),
    parameters=(
        Parameter(name="saturation_level", type="int", minimum=1, maximum=65535,
                  description="counts above which a pixel is saturated",
                  values=(DatedValue(effective_from="2020-01-01", value=60000),
                          DatedValue(effective_from="2026-06-01", value=62000))),
    ),
    run_configuration=(
        Option(name="fail_task", type="str", default="",
               choices=("", "inventory", "dark_level", "observe_stats", "summary"),
               description="make this task fail on purpose, as a configuration error (tests and demos)"),
        Option(name="fail_once_task", type="str", default="",
               choices=("", "inventory", "dark_level", "observe_stats", "summary"),
               description="make this task fail once per run, as an infrastructure error; a redrive then succeeds"),
    ),
)

# The same tasks, manual by definition: a ticket instead of an execution, then `obsflow runs execute ID --manual`.
FRAME_CENSUS_MANUAL = Recipe.model_validate({
    **FRAME_CENSUS.model_dump(), "name": "frame-census-manual", "automated": False,
    "description": "frame-census, run by an operator (manual by definition).",
})

RECIPES: tuple[Recipe, ...] = (FRAME_CENSUS, FRAME_CENSUS_MANUAL)
