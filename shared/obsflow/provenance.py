"""Provenance queries: which datasets used a frame, a recipe, a code version, a calibration; which
frames a dataset used. Each filter is one index query (datasets by recipe, status, code version or
instance; catalogue edges by input), never a scan; several filters intersect."""

from __future__ import annotations

from obsflow import catalogue
from obsflow.errors import NotFound
from obsflow.tables import datasets
from obsflow.tables.datasets import DatasetItem

LISTED = ("files", "provenance")


def _downstream_closure(instance_ids: list[str]) -> set[str]:
    found, pending = set(), list(instance_ids)
    while pending:
        current = pending.pop()
        if current not in found:
            found.add(current)
            pending.extend(catalogue.downstream_ids(current))
    return found


def _by_frame(file_id: str) -> list[DatasetItem]:
    """Datasets made from the frame, directly or from a dataset that was (a summary of its science)."""
    instances = _downstream_closure(catalogue.users_of(file_id))
    return [d for instance in sorted(instances) for d in datasets.of_instance(instance)]


def _by_calibration(dataset_id: str) -> list[DatasetItem]:
    """Datasets whose runs consumed the calibration dataset (as recorded in their provenance)."""
    calibration = datasets.get(dataset_id)
    if calibration is None or not calibration.instance_id:
        raise NotFound(f"no calibration dataset {dataset_id!r}; `obsflow calibrations list` shows them")
    return [d for user in catalogue.downstream_ids(calibration.instance_id) for d in datasets.of_instance(user)
            if any(u["dataset_id"] == dataset_id for u in d.provenance.get("upstream_datasets", []))]


def _by_recipe(recipe: str) -> list[DatasetItem]:
    name, _, version = recipe.partition("@")
    return [d for d in datasets.of_recipe_name(name) if not version or d.recipe == f"{name}@{version}"]


def dataset_rows(uses_frame: str | None = None, recipe: str | None = None, code_version: str | None = None,
                 calibration: str | None = None, status: str | None = None, campaign: str | None = None) -> list[dict]:
    selections = [items for wanted, items in (
        (uses_frame, lambda: _by_frame(uses_frame)),
        (recipe, lambda: _by_recipe(recipe)),
        (code_version, lambda: datasets.of_code_version(code_version)),
        (calibration, lambda: _by_calibration(calibration)),
        (status, lambda: datasets.with_status(status)),
        (campaign, lambda: datasets.of_campaign(campaign)),
    ) if wanted]
    if not selections:
        chosen = datasets.all_datasets()  # the whole catalogue, as asked
    else:
        found = [{d.dataset_id: d for d in select()} for select in selections]
        common = set.intersection(*(set(f) for f in found))
        chosen = [found[0][i] for i in common]
    return [{k: v for k, v in d.attribute_values.items() if k not in LISTED}
            for d in sorted(chosen, key=lambda d: d.created_at)]


def frames_used_by(dataset_id: str) -> list[dict]:
    """Every raw frame the dataset was made from: its own inputs, then those of the datasets it consumed."""
    rows, pending, seen = [], [(dataset_id, dataset_id)], set()
    while pending:
        current, via = pending.pop(0)
        if current in seen:
            continue
        seen.add(current)
        item = datasets.get(current)
        if item is None:
            raise NotFound(f"no dataset {current!r}; `obsflow datasets list` shows the catalogued ones")
        rows += [{**frame, "dataset_id": current, "via": via if current != dataset_id else None}
                 for frame in item.provenance.get("input_frames", [])]
        pending += [(u["dataset_id"], current) for u in item.provenance.get("upstream_datasets", [])]
    return rows
