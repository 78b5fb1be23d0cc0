"""Pipelines as a noun: add a published package version (its environment, its workflows as recipes), list them,
show one. A pipeline's record is a document in the work bucket (``pipelines/<package>/<version>.json``)."""

from __future__ import annotations

import datetime as dt
from typing import Callable

from obsflow.errors import NotFound
from obsflow.pipelines import environments
from obsflow.pipelines.workflows import known_parameters, parameter_files, recipe_of
from obsflow.recipes.model import Recipe, RecipeError
from obsflow.runs import documents

PREFIX = "pipelines/packages/"


def record_key(package: str, version: str) -> str:
    return f"{PREFIX}{package}/{version}.json"


class PipelineService:
    """``register`` records a recipe version and makes its state machine (the register-recipes function on a
    stage): it answers ``{"new": bool, "state_machine": str}``. ``job_definitions`` are the pipeline version's
    (runs.platform.BatchJobDefinitions.for_pipeline: a deployed stage's CDK app made them, or it refuses)."""

    def __init__(self, settings, s3, register: Callable[[Recipe], dict],
                 job_definitions: Callable[[str, str], dict[str, str]],
                 clock=lambda: dt.datetime.now(dt.timezone.utc)):
        self.settings, self.s3, self.register, self.clock = settings, s3, register, clock
        self.job_definitions = job_definitions
        self.work = settings.bucket_name("work")

    def add(self, requirement: str, added_by: str, log=print) -> dict:
        package, version = environments.parse_requirement(requirement)
        job_definitions = self.job_definitions(package, version)  # before a build of minutes: the stage can run it
        if not self.settings.local_endpoint:
            log(f"stage '{self.settings.stage}' runs {package}=={version} in its task image; the same environment is "
                "built here to read its workflows")
        environment = environments.build(self.settings, package, version, log)
        parameters = known_parameters(package)
        for key, content in parameter_files(package):
            self.s3.put_object(Bucket=self.work, Key=key, Body=content)
        recipes = [(workflow["workflow_name"], recipe_of(package, version, workflow, parameters))
                   for workflow in environment.workflows]
        record = {"package": package, "version": version, "name": f"{package}=={version}",
                  "environment": str(environment.path), "python": str(environment.python),
                  "build_seconds": environment.description.get("build_seconds"),
                  "size_bytes": environment.description.get("size_bytes"),
                  "parameters": [p.name for p in parameters],
                  "workflows": [{"workflow": name, "recipe": recipe.name, "version": version, "tasks": len(recipe.tasks),
                                 "task_classes": sorted({t.pipeline_task for t in recipe.tasks if t.pipeline_task}),
                                 "instrument": recipe.instrument, "resource_classes": recipe.resource_classes()}
                                for name, recipe in recipes],
                  "job_definitions": job_definitions, "added_by": added_by, "added_at": self.clock().isoformat()}
        # Recorded first: the register function accepts a pipeline's recipe only with the task classes recorded here.
        documents.put_json(self.s3, self.work, record_key(package, version), record)
        for (name, recipe), entry in zip(recipes, record["workflows"]):
            result = self.register(recipe)
            log(f"  {recipe.key}: {'registered' if result['new'] else 'already registered'} "
                f"({len(recipe.tasks)} tasks; workflow {name})")
            entry["state_machine"] = result["state_machine"]
        documents.put_json(self.s3, self.work, record_key(package, version), record)
        return record

    def list(self) -> list[dict]:
        found = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.work, Prefix=PREFIX):
            for item in page.get("Contents", []):
                found.append(documents.get_json(self.s3, self.work, item["Key"]))
        return sorted(found, key=lambda p: (p["package"], p["version"]))

    def show(self, name: str) -> dict:
        """A pipeline by ``PACKAGE`` (its latest version) or ``PACKAGE==VERSION``."""
        package, _, version = name.partition("==")
        versions = [p for p in self.list() if p["package"] == package and version in ("", p["version"])]
        if not versions:
            known = ", ".join(p["name"] for p in self.list()) or "none yet"
            raise NotFound(f"no pipeline {name!r} has been added ({known}); `obsflow pipelines add PACKAGE==VERSION`")
        return max(versions, key=lambda p: tuple(int(x) for x in p["version"].split(".")))


def check_added(s3, work_bucket: str, recipe: Recipe) -> None:
    """A hosted pipeline's recipe is registered only for a pipeline this stage has added, naming only the task
    classes its workflow has: a definition sent to the register function cannot name other code."""
    source = recipe.pipeline
    if source is None:
        return
    try:
        record = documents.get_json(s3, work_bucket, record_key(source.package, source.version))
    except NotFound:
        raise RecipeError(f"{recipe.key} is a workflow of {source.package}=={source.version}, which this stage has "
                          f"not added: `obsflow pipelines add {source.package}=={source.version}`") from None
    classes = next((set(w.get("task_classes", ())) for w in record["workflows"] if w["recipe"] == recipe.name), set())
    foreign = sorted({t.pipeline_task for t in recipe.tasks if t.pipeline_task} - classes)
    if foreign:
        raise RecipeError(f"{recipe.key} names task classes that workflow {source.workflow} of {source.package}=="
                          f"{source.version} does not have: {', '.join(foreign)}")
