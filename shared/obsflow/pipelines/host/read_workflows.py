"""Print a pipeline package's workflows as JSON: run by the pipeline's own Python (``python read_workflows.py
PACKAGE``). Reads each ``dkist_processing_core.Workflow`` object of ``<package>.workflows``; Airflow is imported
(dkist_processing_core needs it) but no scheduler runs."""

import importlib
import json
import logging
import pkgutil
import sys

logging.disable(logging.CRITICAL)  # the frameworks log their whole configuration on import


def describe(package: str) -> list[dict]:
    from dkist_processing_core import Workflow

    workflows_package = importlib.import_module(f"{package}.workflows")
    found = []
    for module_info in sorted(pkgutil.iter_modules(workflows_package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package}.workflows.{module_info.name}")
        for attribute, workflow in sorted(vars(module).items()):
            if not isinstance(workflow, Workflow) or workflow.workflow_package != module.__package__:
                continue  # an imported workflow is listed where it is defined
            found.append({
                "workflow_name": workflow.workflow_name,
                "module": module.__name__,
                "attribute": attribute,
                "category": workflow.category,
                "description": (module.__doc__ or "").strip(),
                "nodes": [{
                    "task": f"{node.task.__module__}:{node.task.__name__}",
                    "name": node.task.__name__,
                    "description": (node.task.__doc__ or "").strip().split("\n\n")[0],
                    "upstreams": sorted({upstream.__name__ for upstream in node.upstreams}),
                    "resource_queue": getattr(node.resource_queue, "value", str(node.resource_queue)),
                    "retries": int(getattr(node.task, "retries", 0) or 0),
                    "retry_delay_seconds": int(getattr(node.task, "retry_delay_seconds", 0) or 0),
                } for node in workflow.nodes],
            })
    return found


if __name__ == "__main__":
    json.dump({"package": sys.argv[1], "workflows": describe(sys.argv[1])}, sys.stdout)
