"""Pipelines as a noun: add a published package version (its environment, its workflows as recipes), list them,
show one. A pipeline's record is a document in the work bucket (``pipelines/<package>/<version>.json``)."""

from __future__ import annotations

import datetime as dt
from typing import Callable

from obsflow.errors import NotFound
from obsflow.pipelines import environments
from obsflow.pipelines.workflows import known_parameters, parameter_files, recipe_of
from obsflow.recipes.model import Recipe
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
        workflows = []
        for workflow in environment.workflows:
            recipe = recipe_of(package, version, workflow, parameters)
            result = self.register(recipe)
            log(f"  {recipe.key}: {'registered' if result['new'] else 'already registered'} "
                f"({len(recipe.tasks)} tasks; workflow {workflow['workflow_name']})")
            workflows.append({"workflow": workflow["workflow_name"], "recipe": recipe.name, "version": version,
                              "tasks": len(recipe.tasks), "instrument": recipe.instrument,
                              "resource_classes": recipe.resource_classes(), "state_machine": result["state_machine"]})
        record = {"package": package, "version": version, "name": f"{package}=={version}",
                  "environment": str(environment.path), "python": str(environment.python),
                  "build_seconds": environment.description.get("build_seconds"),
                  "size_bytes": environment.description.get("size_bytes"),
                  "parameters": [p.name for p in parameters], "workflows": workflows,
                  "job_definitions": job_definitions,
                  "added_by": added_by, "added_at": self.clock().isoformat()}
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
