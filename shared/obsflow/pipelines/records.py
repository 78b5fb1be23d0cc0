"""A pipeline run's records, as DKIST's metadata store holds them, kept by obsflow in the work bucket.

A DKIST recipe run is known by an integer; obsflow's runs by a string. ``recipe_run_id`` derives the one from
the other (48 bits of its SHA-256), and the task that starts a pipeline node records the pairing
(``link``), so the metadata store can find the run. What the tasks record (statuses, provenance, quality,
receipt accounts) is kept with the run, one document each.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import uuid

from obsflow.errors import NotFound
from obsflow.runs import documents, layout

# DKIST's RecipeRunConfiguration: the run options a pipeline recipe passes through as its configuration.
DKIST_CONFIGURATION = ("validate_l1_on_write", "destination_bucket", "tile_size", "teardown_enabled")
RECORD_KINDS = ("status", "provenance", "quality", "receipt")
_DATASET_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class UnknownRecipeRun(LookupError):
    """No obsflow run is known by this recipe run id."""


def _integer(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


def recipe_run_id(run_id: str) -> int:
    """The DKIST recipe run id of an obsflow run: stable, a positive integer below 2**48."""
    return _integer(run_id)


def link_key(recipe_run: int) -> str:
    return f"pipelines/recipe-runs/{recipe_run}.json"


def record_prefix(run_id: str, kind: str) -> str:
    return f"runs/{run_id}/pipeline/{kind}/"


def quality_prefix(dataset_id: str) -> str:
    if not _DATASET_ID.match(dataset_id or ""):
        raise ValueError(f"a dataset id is 1-64 letters, digits, '.', '_' or '-', not {dataset_id!r}")
    return f"pipelines/qualities/{dataset_id}/"


def with_bucket(value, bucket: str):
    """A file parameter's value (``{"__file__": {"objectKey": ...}}``) names the bucket obsflow keeps it in."""
    if isinstance(value, dict) and isinstance(value.get("__file__"), dict):
        return {"__file__": {"bucket": bucket, **value["__file__"]}}
    return value


def input_dataset_parts(input_dataset: dict, configuration: dict, observed_on: str,
                        file_bucket: str = "") -> dict[str, list]:
    """DKIST's input dataset parts of an obsflow input dataset: the observe frames, every other frame (and the
    files of upstream datasets) as calibration frames, and each parameter's as-run value."""

    def by_bucket(objects) -> list[dict]:
        grouped: dict[str, list[str]] = {}
        for bucket, key in objects:
            grouped.setdefault(bucket, []).append(key)
        return [{"bucket": bucket, "object_keys": keys} for bucket, keys in grouped.items()]

    frames = input_dataset["frames"]
    observe = [(f["bucket"], f["key"]) for f in frames if f["role"] == "observe"]
    calibration = [(f["bucket"], f["key"]) for f in frames if f["role"] != "observe"]
    for upstream in input_dataset.get("upstream", []):
        calibration.extend((file.get("bucket") or upstream.get("bucket"), file["key"]) for file in upstream["files"])
    parameters = [{"parameterName": name, "parameterValues": [{
        "parameterValueId": _integer(f"{name}={value!r}") % 2**31,
        "parameterValue": json.dumps(with_bucket(value, file_bucket)),
        "parameterValueStartDate": f"{observed_on}T00:00:00"}]}
        for name, value in sorted(configuration.get("parameters", {}).items())]
    return {"observe_frames": by_bucket(observe), "calibration_frames": by_bucket(calibration),
            "parameters": parameters}


class S3PipelineRecords:
    """``metadata_store.PipelineRecords`` over obsflow's documents in the work bucket."""

    def __init__(self, s3, work_bucket: str, clock=lambda: dt.datetime.now(dt.timezone.utc)):
        self.s3 = s3
        self.work = work_bucket
        self.clock = clock

    def link(self, run_id: str) -> int:
        """Record that the run's DKIST recipe run id names it; the id."""
        recipe_run = recipe_run_id(run_id)
        try:
            linked = documents.get_json(self.s3, self.work, link_key(recipe_run))["run_id"]
        except NotFound:
            linked = None
        if linked not in (None, run_id):  # 48 bits: never seen, and never silent
            raise ValueError(f"recipe run id {recipe_run} already names run {linked}, not {run_id}")
        if linked is None:
            documents.put_json(self.s3, self.work, link_key(recipe_run), {"run_id": run_id})
        return recipe_run

    def run_id(self, recipe_run: int) -> str:
        try:
            return documents.get_json(self.s3, self.work, link_key(recipe_run))["run_id"]
        except NotFound:
            raise UnknownRecipeRun(f"no obsflow run has recipe run id {recipe_run}") from None

    def recipe_run(self, recipe_run: int) -> dict:
        run = documents.get_json(self.s3, self.work, layout.run_document_key(self.run_id(recipe_run)))
        input_dataset = documents.get_json(self.s3, run["input_dataset"]["bucket"], run["input_dataset"]["key"])
        options = run["configuration"].get("options", {})
        return {
            "configuration": {key: options[key] for key in DKIST_CONFIGURATION if key in options},
            "parts": input_dataset_parts(input_dataset, run["configuration"], input_dataset["observed_on"], self.work),
            "input_dataset_id": _integer(run["input_dataset"]["key"]) % 2**31,
            "recipe_instance_id": _integer(run.get("instance_id") or run["run_id"]) % 2**31,
        }

    def record(self, recipe_run: int | None, kind: str, document: dict) -> int:
        if kind not in RECORD_KINDS:
            raise ValueError(f"unknown record kind {kind!r}")
        identifier = uuid.uuid4().int % 2**48
        stamped = {**document, "id": identifier, "recorded_at": self.clock().isoformat()}
        if kind in ("quality", "receipt"):
            prefix = quality_prefix(document["datasetId"]) + ("receipt/" if kind == "receipt" else "")
        else:
            prefix = record_prefix(self.run_id(recipe_run), kind)
        documents.put_json(self.s3, self.work, f"{prefix}{self.clock():%Y%m%dT%H%M%S.%f}-{identifier}.json", stamped)
        return identifier

    def recorded(self, recipe_run: int | None, kind: str, dataset_id: str | None = None) -> list[dict]:
        if kind == "quality":
            prefix = quality_prefix(dataset_id or "")
        else:
            prefix = record_prefix(self.run_id(recipe_run), kind)
        found = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.work, Prefix=prefix):
            for item in page.get("Contents", []):
                if item["Key"].count("/") == prefix.count("/"):  # not the receipts under a dataset's qualities
                    found.append(documents.get_json(self.s3, self.work, item["Key"]))
        return found
