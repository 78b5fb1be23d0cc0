"""Provenance queries: which datasets used a frame, a recipe, a code version, a calibration, which pass QC
filters; which frames a dataset used. Each filter is one index query (datasets by recipe, status, code version
or instance; catalogue edges by input; QC values by metric and value), never a scan; several filters intersect
their keys, and only the survivors are read, without their large JSON attributes."""

from __future__ import annotations

from obsflow.errors import NotFound
from obsflow.qc import UNINDEXED, QcFilter, check_known
from obsflow.reads import pages
from obsflow.reads.catalogue import Catalogue
from obsflow.reads.ports import ProvenanceReads

# The filters of `obsflow datasets list` that name an indexed dataset field (the others follow the catalogue)
_FIELD_FILTERS = ("code_version", "status", "campaign", "embargo")


def _field_of(name: str, value: str) -> tuple[str, str] | None:
    """The indexed dataset field that answers a filter directly (None for the catalogue-graph filters)."""
    if name == "recipe":
        recipe_name, _, version = value.partition("@")
        return ("recipe", value) if version else ("recipe_name", recipe_name)
    return (name, value) if name in _FIELD_FILTERS else None


def _asked(filters: dict[str, str | None]) -> list[tuple[str, str]]:
    """The given filters, the broadest (status) last: once the intersection is empty, nothing more is asked."""
    return sorted(((name, value) for name, value in filters.items() if value), key=lambda f: f[0] == "status")


def _created_then_id(row: dict) -> tuple[str, str]:
    return str(row["created_at"]), row["dataset_id"]


def _release_then_id(row: dict) -> tuple[str, str]:
    return str(row["release_date"]), row["dataset_id"]


class Provenance:
    def __init__(self, reads: ProvenanceReads):
        self.reads = reads
        self.catalogue = Catalogue(reads)

    def _downstream_closure(self, instance_ids: list[str]) -> set[str]:
        found, pending = set(), list(instance_ids)
        while pending:
            current = pending.pop()
            if current not in found:
                found.add(current)
                pending.extend(self.catalogue.downstream_ids(current))
        return found

    def _by_frame(self, file_id: str) -> set[str]:
        """Datasets made from the frame, directly or from a dataset that was (a summary of its science)."""
        instances = self._downstream_closure(self.catalogue.users_of(file_id))
        return {i for instance in instances for i in self.reads.dataset_ids_with("instance_id", instance)}

    def _by_calibration(self, dataset_id: str) -> set[str]:
        """Datasets whose runs consumed the calibration dataset (as recorded in their provenance)."""
        calibration = self.reads.dataset(dataset_id)
        if calibration is None or not calibration.instance_id:
            raise NotFound(f"no calibration dataset {dataset_id!r}; `obsflow calibrations list` shows them")
        return {d.dataset_id for user in self.catalogue.downstream_ids(calibration.instance_id)
                for d in self.reads.datasets_of_instance(user)
                if any(u["dataset_id"] == dataset_id for u in d.provenance.get("upstream_datasets", []))}

    def _ids(self, name: str, value) -> set[str]:
        if name == "qc":
            return self.reads.qc_dataset_ids(value)
        if name == "uses_frame":
            return self._by_frame(value)
        if name == "calibration":
            return self._by_calibration(value)
        return self.reads.dataset_ids_with(*_field_of(name, value))

    def check_qc(self, filters: tuple[QcFilter, ...]) -> None:
        """Refuse QC filters on a metric no dataset has, or while older datasets' QC values are not indexed."""
        if not filters:
            return
        check_known(filters, self.reads.qc_metrics())
        if self.reads.any_dataset_created_before(self.reads.qc_indexed_since()):
            raise ValueError(UNINDEXED)

    def dataset_ids(self, qc: tuple[QcFilter, ...] = (), **filters: str | None) -> set[str]:
        """The ids matching every given filter (uses_frame, recipe, code_version, calibration, status, campaign,
        embargo, and QC filters; at least one): one keys-only index query per filter, intersected."""
        self.check_qc(qc)
        asked = _asked(filters) + [("qc", f) for f in qc]
        if not asked:
            raise ValueError("a dataset query needs at least one filter")
        found = self._ids(*asked[0])
        for name, value in asked[1:]:
            found &= self._ids(name, value) if found else set()
        return found

    def dataset_rows(self, uses_frame: str | None = None, recipe: str | None = None, code_version: str | None = None,
                     calibration: str | None = None, status: str | None = None, campaign: str | None = None,
                     embargo: str | None = None, qc: tuple[QcFilter, ...] = ()) -> list[dict]:
        """The listed attributes of the datasets matching every given filter (see `dataset_ids`), or of all, oldest
        first (``embargo`` alone: soonest release first)."""
        asked = _asked({"uses_frame": uses_frame, "recipe": recipe, "code_version": code_version,
                        "calibration": calibration, "status": status, "campaign": campaign, "embargo": embargo})
        if not asked and not qc:
            return self.reads.all_listed_datasets()  # the whole catalogue, as asked
        if len(asked) == 1 and not qc and _field_of(*asked[0]):
            return self.reads.listed_datasets_with(*_field_of(*asked[0]))  # one index query gives the rows themselves
        return self.reads.listed_datasets(self.dataset_ids(qc, **dict(asked)))  # keys intersected, then the survivors

    def dataset_page(self, uses_frame: str | None = None, recipe: str | None = None, code_version: str | None = None,
                     calibration: str | None = None, status: str | None = None, campaign: str | None = None,
                     embargo: str | None = None, qc: tuple[QcFilter, ...] = (), limit: int = pages.DEFAULT_LIMIT,
                     next_token: str | None = None) -> pages.Page:
        """A page of datasets, newest first (under embargo alone: soonest release first): of all from the listing
        index; of those matching filters, found whole from the indexes they name (see `dataset_rows`), a page of
        them."""
        asked = _asked({"uses_frame": uses_frame, "recipe": recipe, "code_version": code_version,
                        "calibration": calibration, "status": status, "campaign": campaign, "embargo": embargo})
        listing = "datasets:" + ";".join([f"{k}={v}" for k, v in asked] + [str(f) for f in qc])
        start = pages.position(listing, next_token)
        if not asked and not qc:
            rows, following = self.reads.listed_datasets_page(limit, start)
        elif [name for name, _ in asked] == ["embargo"] and not qc:  # what is released next, first
            rows = sorted(self.dataset_rows(embargo=embargo), key=_release_then_id)
            rows, following = pages.rows_after(rows, _release_then_id, limit, start, descending=False)
        else:
            rows = sorted(self.dataset_rows(**dict(asked), qc=qc), key=_created_then_id, reverse=True)
            rows, following = pages.rows_after(rows, _created_then_id, limit, start)
        return pages.Page(rows, pages.token(listing, following))

    def frames_used_by(self, dataset_id: str) -> list[dict]:
        """Every raw frame the dataset was made from: its own inputs, then those of the datasets it consumed."""
        rows, pending, seen = [], [(dataset_id, dataset_id)], set()
        while pending:
            current, via = pending.pop(0)
            if current in seen:
                continue
            seen.add(current)
            dataset = self.reads.dataset(current)
            if dataset is None:
                raise NotFound(f"no dataset {current!r}; `obsflow datasets list` shows the catalogued ones")
            rows += [{**frame, "dataset_id": current, "via": via if current != dataset_id else None}
                     for frame in dataset.provenance.get("input_frames", [])]
            pending += [(u["dataset_id"], current) for u in dataset.provenance.get("upstream_datasets", [])]
        return rows
