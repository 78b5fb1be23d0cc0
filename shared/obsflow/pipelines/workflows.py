"""A pipeline's workflows as obsflow recipes: one recipe version per workflow, versioned as the package.

Each node becomes a task run by obsflow's host task (``obsflow_tasks.pipeline:PipelineNode``) with the
pipeline's own class; the node's resource queue becomes a resource class and its retries the task's.
"""

from __future__ import annotations

import re
from importlib import resources

import yaml

from obsflow.recipes.model import Option, Parameter, PipelineSource, Recipe, RecipeError, TaskSpec

HOST_TASK = "obsflow_tasks.pipeline:PipelineNode"
# After a production workflow has handed its L1 data over: the inventory, ASDF and quality report, as DKIST's data
# center makes them from it (dkist-inventory, dkist-quality).
PRODUCTS_TASK = "obsflow_tasks.pipeline:DatasetProducts"
PRODUCTS_AFTER = ("TransferL1Data", "SubmitDatasetMetadata")
LAST_NODE = "Teardown"  # the products follow it: they read what the run handed over, not its scratch
RESOURCE_CLASSES = {"default": "default", "high_memory": "high-memory"}
# DKIST's recipe run configuration (RecipeRunConfiguration), as run options.
RUN_CONFIGURATION = (
    Option(name="validate_l1_on_write", type="bool", default=True,
           description="validate each L1 frame against SPEC-0214 as it is written"),
    Option(name="teardown_enabled", type="bool", default=True,
           description="Teardown removes the run's scratch and scratch inventory"),
)


def task_name(class_name: str) -> str:
    """``TransferL0Data`` -> ``transfer_l0_data``."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", class_name)
    return words.lower()[:48]


def recipe_name(workflow_name: str) -> str:
    """``l0_to_l1_vbi_no-speckle`` -> ``l0-to-l1-vbi-no-speckle``."""
    name = re.sub(r"[^a-z0-9-]+", "-", workflow_name.lower()).strip("-")
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,62}", name):
        raise RecipeError(f"workflow {workflow_name!r} gives no recipe name (a letter, then up to 62 of a-z, 0-9, -)")
    return name


def known_parameters(package: str) -> tuple[Parameter, ...]:
    """The science parameters obsflow knows a package's tasks read, with dated values (``parameters/``)."""
    document = resources.files("obsflow.pipelines") / "parameters" / f"{package}.yaml"
    if not document.is_file():
        return ()
    return tuple(Parameter.model_validate(p) for p in yaml.safe_load(document.read_text()) or [])


PARAMETER_FILES = "pipelines/parameter-files/"


def parameter_files(package: str) -> list[tuple[str, bytes]]:
    """The files a package's file parameters name: (key in the work bucket, content)."""
    folder = resources.files("obsflow.pipelines") / "parameters" / package
    if not folder.is_dir():
        return []
    return [(f"{PARAMETER_FILES}{package}/{f.name}", f.read_bytes()) for f in sorted(folder.iterdir(), key=lambda f: f.name)
            if f.is_file()]


def source_url(package: str, version: str) -> str:
    return f"https://pypi.org/project/{package}/{version}/"


DOCS_BASE_URL = "https://docs.dkist.nso.edu"


def documentation_url(category: str, version: str, workflow_name: str) -> str:
    """The workflow's page of the exact version, where DKIST publishes it (and where its L1 headers' CAL_URL
    points: dkist-processing-common's WriteL1Frame)."""
    return f"{DOCS_BASE_URL}/projects/{category.lower()}/en/v{version}/{workflow_name}.html"


def recipe_of(package: str, version: str, workflow: dict, parameters: tuple[Parameter, ...] = ()) -> Recipe:
    """The recipe version of one workflow, as ``host/read_workflows.py`` describes it."""
    names = {node["name"]: task_name(node["name"]) for node in workflow["nodes"]}
    tasks = []
    for node in workflow["nodes"]:
        queue = node.get("resource_queue") or "default"
        if queue not in RESOURCE_CLASSES:
            raise RecipeError(f"{package} {version} workflow {workflow['workflow_name']}: node {node['name']} asks "
                              f"for resource queue {queue!r}; obsflow maps {', '.join(RESOURCE_CLASSES)}")
        tasks.append(TaskSpec(
            name=names[node["name"]], entrypoint=HOST_TASK, pipeline_task=node["task"],
            upstreams=tuple(names[u] for u in node["upstreams"]), resource_class=RESOURCE_CLASSES[queue],
            description=node.get("description") or node["name"], retries=node.get("retries", 0),
            retry_delay_s=max(1, min(3600, node.get("retry_delay_seconds") or 60)),
        ))
    handing_over = [names[n["name"]] for n in workflow["nodes"] if n["name"] in PRODUCTS_AFTER]
    if "transfer_l1_data" in handing_over:
        # After the last node when there is one: a task beside it would hold it back (a level waits for its slowest)
        after = [names[LAST_NODE]] if LAST_NODE in names else handing_over
        tasks.append(TaskSpec(name="dataset_products", entrypoint=PRODUCTS_TASK, upstreams=tuple(after),
                              description="obsflow: the dataset inventory and ASDF (dkist-inventory) and the quality "
                                          "report (dkist-quality) of the L1 data the workflow handed over"))
    category = workflow.get("category") or package.removeprefix("dkist-processing-")
    return Recipe(
        name=recipe_name(workflow["workflow_name"]), version=version, instrument=category.upper(),
        description=(workflow.get("description") or f"{package} workflow {workflow['workflow_name']}").split("\n\n")[0],
        documentation_url=documentation_url(category, version, workflow["workflow_name"]), tasks=tuple(tasks), parameters=parameters,
        run_configuration=RUN_CONFIGURATION,
        pipeline=PipelineSource(package=package, version=version, workflow=workflow["workflow_name"],
                                module=workflow["module"], source_url=source_url(package, version)),
    )
