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

_VBI = "obsflow_tasks.vbi.tasks:"
_VBI_TASKS = ("parse", "dark", "gain", "science", "write_l1", "quality_metrics", "browse_movie", "quality_report",
              "asdf_inventory")
VBI_L1 = Recipe(
    name="vbi-l1",
    version="1.0.0",
    instrument="VBI",
    description="Reference Level 0 -> Level 1 recipe for VBI-like imagers: darks per exposure, a normalised gain "
    "with its bad pixels, calibrated frames, SPEC-0214 L1 frames with provenance and checksums, quality metrics "
    "and report, a browse movie, ASDF metadata and an inventory.",
    documentation_url="https://github.com/obsflow/obsflow/blob/main/README.md#the-reference-recipe-vbi-l1",
    priority=50,
    tasks=(
        TaskSpec(name="parse", entrypoint=_VBI + "Parse", description="read every header, group by task type, check consistency"),
        TaskSpec(name="dark", entrypoint=_VBI + "Dark", upstreams=("parse",), description="average darks per exposure time"),
        TaskSpec(name="gain", entrypoint=_VBI + "Gain", upstreams=("dark",), description="dark-subtracted normalised flat, bad pixels"),
        TaskSpec(name="science", entrypoint=_VBI + "Science", upstreams=("gain",), resource_class="high-memory",
                 description="subtract dark, divide by gain, flag bad pixels"),
        TaskSpec(name="write_l1", entrypoint=_VBI + "WriteL1", upstreams=("science",), description="SPEC-0214 L1 frames"),
        TaskSpec(name="quality_metrics", entrypoint=_VBI + "QualityMetrics", upstreams=("science",),
                 description="Fried parameter, light level, averages, RMS, counts, warnings"),
        TaskSpec(name="browse_movie", entrypoint=_VBI + "BrowseMovie", upstreams=("science",), resource_class="multi-core",
                 description="H.264 browse movie"),
        TaskSpec(name="quality_report", entrypoint=_VBI + "QualityReport", upstreams=("quality_metrics",),
                 description="PDF quality report"),
        TaskSpec(name="asdf_inventory", entrypoint=_VBI + "AsdfInventory", upstreams=("write_l1",),
                 description="ASDF metadata and dataset inventory"),
    ),
    parameters=(
        Parameter(name="bad_pixel_low", type="float", minimum=0.0, maximum=1.0,
                  description="normalised gain below which a pixel is bad",
                  values=(DatedValue(effective_from="2020-01-01", value=0.5),)),
        Parameter(name="bad_pixel_high", type="float", minimum=1.0, maximum=10.0,
                  description="normalised gain above which a pixel is bad",
                  values=(DatedValue(effective_from="2020-01-01", value=2.0),
                          DatedValue(effective_from="2026-06-01", value=1.5))),
        Parameter(name="light_level_tolerance", type="float", minimum=0.0, maximum=1.0,
                  description="relative light-level variation above which the quality report warns",
                  values=(DatedValue(effective_from="2020-01-01", value=0.2),)),
    ),
    run_configuration=(
        Option(name="movie_fps", type="int", minimum=1, maximum=30, default=6, description="browse movie frame rate"),
        Option(name="movie_width", type="int", minimum=64, maximum=1920, default=512,
               description="browse movie width in pixels (at most the frame width)"),
        Option(name="fail_task", type="str", default="", choices=("", *_VBI_TASKS),
               description="make this task fail on purpose, as a configuration error (tests and demos)"),
        Option(name="fail_once_task", type="str", default="", choices=("", *_VBI_TASKS),
               description="make this task fail once per run, as an infrastructure error; a redrive then succeeds"),
    ),
)

RECIPES: tuple[Recipe, ...] = (FRAME_CENSUS, FRAME_CENSUS_MANUAL, VBI_L1)
