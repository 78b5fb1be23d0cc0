"""Provenance queries: which datasets used a frame, a recipe, a code version, a calibration, which pass QC
filters; which frames a dataset used. Each filter is one index query (datasets by recipe, status, code version
or instance; catalogue edges by input; QC values by metric and value), never a scan; several filters intersect
their keys, and only the survivors are read, without their large JSON attributes."""

from __future__ import annotations

from obsflow import catalogue
from obsflow.errors import NotFound
from obsflow.qc import UNINDEXED, QcFilter, check_known
from obsflow.tables import datasets, qc_values


def _downstream_closure(instance_ids: list[str]) -> set[str]:
    found, pending = set(), list(instance_ids)
    while pending:
        current = pending.pop()
        if current not in found:
            found.add(current)
            pending.extend(catalogue.downstream_ids(current))
    return found


def _by_frame(file_id: str) -> set[str]:
    """Datasets made from the frame, directly or from a dataset that was (a summary of its science)."""
    instances = _downstream_closure(catalogue.users_of(file_id))
    return {i for instance in instances for i in datasets.ids_where("by_instance", instance)}


def _by_calibration(dataset_id: str) -> set[str]:
    """Datasets whose runs consumed the calibration dataset (as recorded in their provenance)."""
    calibration = datasets.get(dataset_id)
    if calibration is None or not calibration.instance_id:
        raise NotFound(f"no calibration dataset {dataset_id!r}; `obsflow calibrations list` shows them")
    return {d.dataset_id for user in catalogue.downstream_ids(calibration.instance_id)
            for d in datasets.of_instance(user)
            if any(u["dataset_id"] == dataset_id for u in d.provenance.get("upstream_datasets", []))}


def _index_of(name: str, value: str) -> tuple[str, str] | None:
    """The datasets index that answers a filter directly (None for the catalogue-graph filters)."""
    if name == "recipe":
        recipe_name, _, version = value.partition("@")
        return ("by_recipe", value) if version else ("by_recipe_name", recipe_name)
    index = {"code_version": "by_code_version", "status": "by_status", "campaign": "by_campaign",
             "embargo": "under_embargo"}.get(name)
    return (index, value) if index else None


def _ids(name: str, value) -> set[str]:
    if name == "qc":
        return qc_values.dataset_ids(value)
    if name == "uses_frame":
        return _by_frame(value)
    if name == "calibration":
        return _by_calibration(value)
    return datasets.ids_where(*_index_of(name, value))


def _asked(filters: dict[str, str | None]) -> list[tuple[str, str]]:
    """The given filters, the broadest (status) last: once the intersection is empty, nothing more is asked."""
    return sorted(((name, value) for name, value in filters.items() if value), key=lambda f: f[0] == "status")


def check_qc(filters: tuple[QcFilter, ...]) -> None:
    """Refuse QC filters on a metric no dataset has, or while older datasets' QC values are not indexed."""
    if not filters:
        return
    check_known(filters, qc_values.metrics())
    since = qc_values.indexed_since()
    if (datasets.any_created_before(since) if since else datasets.any_dataset()):
        raise ValueError(UNINDEXED)


def dataset_ids(qc: tuple[QcFilter, ...] = (), **filters: str | None) -> set[str]:
    """The ids matching every given filter (uses_frame, recipe, code_version, calibration, status, campaign,
    embargo, and QC filters; at least one): one keys-only index query per filter, intersected."""
    check_qc(qc)
    asked = _asked(filters) + [("qc", f) for f in qc]
    if not asked:
        raise ValueError("a dataset query needs at least one filter")
    found = _ids(*asked[0])
    for name, value in asked[1:]:
        found &= _ids(name, value) if found else set()
    return found


def dataset_rows(uses_frame: str | None = None, recipe: str | None = None, code_version: str | None = None,
                 calibration: str | None = None, status: str | None = None, campaign: str | None = None,
                 embargo: str | None = None, qc: tuple[QcFilter, ...] = ()) -> list[dict]:
    """The listed attributes of the datasets matching every given filter (see `dataset_ids`), or of all, oldest
    first (``embargo`` alone: soonest release first)."""
    asked = _asked({"uses_frame": uses_frame, "recipe": recipe, "code_version": code_version,
                    "calibration": calibration, "status": status, "campaign": campaign, "embargo": embargo})
    if not asked and not qc:
        chosen = datasets.listed_all()  # the whole catalogue, as asked
    elif len(asked) == 1 and not qc and _index_of(*asked[0]):
        chosen = datasets.listed_where(*_index_of(*asked[0]))  # one index query gives the rows themselves
    else:
        chosen = datasets.listed(dataset_ids(qc, **dict(asked)))  # keys intersected, then only the survivors read
    return [dict(d.attribute_values) for d in chosen]


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
