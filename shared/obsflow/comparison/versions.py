"""Two versions of a product compared: the read model behind `obsflow datasets compare` and the monitor's
/compare page.

It reads through a port (``VersionReads``): the datasets' records, their quality metrics, the headers of their
FITS products (ranged reads, no data) and the data of one frame at a time, so the memory it needs is that of one
pair of frames, whatever the size of the datasets. Differences are always B - A.

Frames are matched by the observe frame they came from (the FILE_ID their header carries: each version names its
files after itself), and a FITS product without one by its name, the dataset's own id left out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from obsflow.comparison.pixels import ShapeMismatch, differences
from obsflow.errors import NotFound
from obsflow.qc import qc_values

OBSERVE_FRAME_KEYWORD = "FILE_ID"  # SPEC-0214: the raw frame (ID___002) a Level 1 frame was made from
SUMMARY_FIELDS = ("product_id", "kind", "proposal_id", "status", "recipe", "version_key", "code_version", "run_id",
                  "campaign", "frame_count", "created_at")


class UnreadableFrame(ValueError):
    """A FITS product whose image cannot be read (the message says which and why)."""


class VersionReads(Protocol):
    def dataset(self, dataset_id: str) -> dict | None:
        """The dataset's record (its attributes, ``files`` and ``provenance``), or None if there is none."""

    def document(self, bucket: str, key: str) -> dict:
        """A small JSON product of a dataset."""

    def frame_header(self, bucket: str, key: str) -> Mapping:
        """A FITS product's image header (keyword -> value), read without its data."""

    def frame_data(self, bucket: str, key: str):
        """A FITS product's image, as an array (UnreadableFrame if it has none)."""


# -- provenance ---------------------------------------------------------------------------------------------------
def _flat(values: Mapping | None, prefix: str = "") -> dict[str, object]:
    flat = {}
    for name, value in (values or {}).items():
        if isinstance(value, Mapping) and value:
            flat.update(_flat(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def configuration_changes(a: Mapping | None, b: Mapping | None) -> list[dict]:
    """Each parameter or option whose value differs (None: not set in that version), e.g. options.movie_fps."""
    flat_a, flat_b = _flat(a), _flat(b)
    return [{"name": name, "a": flat_a.get(name), "b": flat_b.get(name)}
            for name in sorted(flat_a.keys() | flat_b.keys()) if flat_a.get(name) != flat_b.get(name)]


def _task_versions(tasks: list[dict]) -> dict[str, dict[str, object]]:
    return {t["task"]: {"code_version": t.get("code_version"),
                        **{f"library {name}": v for name, v in sorted((t.get("libraries") or {}).items())}}
            for t in tasks if t.get("task")}


def code_changes(a_tasks: list[dict], b_tasks: list[dict]) -> list[dict]:
    """Per task, each code or library version that differs (a task that ran in one version only, too)."""
    a, b = _task_versions(a_tasks), _task_versions(b_tasks)
    rows = []
    for task in [*a, *(t for t in b if t not in a)]:
        items = a.get(task, {}) | b.get(task, {})
        rows += [{"task": task, "item": item, "a": a.get(task, {}).get(item), "b": b.get(task, {}).get(item)}
                 for item in items if a.get(task, {}).get(item) != b.get(task, {}).get(item)]
    return rows


def _frame_row(frame: dict) -> dict:
    return {k: frame.get(k) for k in ("file_id", "op_id", "role", "task_type")}


def input_changes(a_frames: list[dict], b_frames: list[dict]) -> dict:
    """The input frames added in B, removed from A, and those in both but in another version (a re-sent frame)."""
    a = {f["file_id"]: f for f in a_frames}
    b = {f["file_id"]: f for f in b_frames}
    return {"added": [_frame_row(b[i]) for i in sorted(b.keys() - a.keys())],
            "removed": [_frame_row(a[i]) for i in sorted(a.keys() - b.keys())],
            "changed": [{**_frame_row(b[i]), "a_version": a[i].get("version_id") or a[i].get("etag"),
                         "b_version": b[i].get("version_id") or b[i].get("etag")}
                        for i in sorted(a.keys() & b.keys())
                        if (a[i].get("version_id"), a[i].get("etag")) != (b[i].get("version_id"), b[i].get("etag"))],
            "unchanged": sum(1 for i in a.keys() & b.keys()
                             if (a[i].get("version_id"), a[i].get("etag")) == (b[i].get("version_id"), b[i].get("etag")))}


def upstream_changes(a_upstream: list[dict], b_upstream: list[dict]) -> list[dict]:
    """The datasets each version was made from (its master calibrations; a summary's science): in both, or one."""
    a = {u["dataset_id"]: u for u in a_upstream}
    b = {u["dataset_id"]: u for u in b_upstream}
    return [{**{k: (a.get(i) or b[i]).get(k) for k in ("role", "dataset_id", "recipe", "version_key")},
             "used_by": "both" if i in a and i in b else "A" if i in a else "B"}
            for i in [*a, *(i for i in b if i not in a)]]


def summary_changes(a: dict, b: dict) -> list[dict]:
    return [{"field": name, "a": a.get(name), "b": b.get(name), "same": a.get(name) == b.get(name)}
            for name in SUMMARY_FIELDS]


# -- QC values ----------------------------------------------------------------------------------------------------
def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def qc_of(metrics: Mapping | None) -> dict[str, dict]:
    """A dataset's QC values, name -> value and unit: its QC table's rows, then the values ``qc_values`` derives."""
    if not metrics:
        return {}
    table = {row["name"]: {"value": row.get("value"), "unit": row.get("unit") or ""}
             for row in metrics.get("qc") or [] if isinstance(row, Mapping) and row.get("name")}
    return table | {name: {"value": value, "unit": ""} for name, value in sorted(qc_values(dict(metrics)).items())
                    if name not in table}


def qc_changes(a: dict[str, dict], b: dict[str, dict]) -> list[dict]:
    """Each QC value of both versions, with B - A where both are numbers."""
    rows = []
    for name in [*a, *(n for n in b if n not in a)]:
        value_a, value_b = a.get(name, {}).get("value"), b.get(name, {}).get("value")
        number_a, number_b = _number(value_a), _number(value_b)
        difference = number_b - number_a if number_a is not None and number_b is not None else None
        rows.append({"name": name, "a": value_a, "b": value_b, "difference": difference,
                     "unit": (a.get(name) or b.get(name))["unit"], "same": value_a == value_b})
    return rows


def quality_metrics_files(files: list[dict]) -> list[dict]:
    """The quality metrics JSON among a dataset's files (as campaigns aggregate them)."""
    return [f for f in files if "quality" in (f.get("tags") or []) and f["name"].endswith(".json")]


# -- frames -------------------------------------------------------------------------------------------------------
def fits_products(files: list[dict]) -> list[dict]:
    """The FITS products of a dataset (its L1 frames, a calibration's masters), by name."""
    return sorted((f for f in files if f["name"].lower().endswith((".fits", ".fits.gz", ".fts"))
                   and "product" in (f.get("tags") or ["product"])), key=lambda f: f["name"])


def frame_key(file: dict, header: Mapping, dataset_id: str) -> tuple[str, str]:
    """What matches a frame with its counterpart: the observe frame it came from, else its name without the
    dataset's id (each version names its files after itself)."""
    observe = header.get(OBSERVE_FRAME_KEYWORD)
    if isinstance(observe, str) and observe.strip():
        return "observe frame", observe.strip()
    return "name", file["name"].replace(dataset_id, "*")


def frame_summary(rows: list[dict], only_a: list[dict], only_b: list[dict]) -> dict:
    compared = [r for r in rows if "error" not in r]
    largest = [r["max_abs"] for r in compared if r["max_abs"] is not None]
    return {"compared": len(compared), "identical": sum(r["identical"] for r in compared),
            "differing": sum(not r["identical"] for r in compared), "not_comparable": len(rows) - len(compared),
            "largest_max_abs": max(largest) if largest else None, "only_in_a": len(only_a), "only_in_b": len(only_b)}


class _Kept(dict):
    """A dict that keeps its newest ``size`` entries."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def keep(self, key, make: Callable):
        if key is None or self.size <= 0:
            return make()
        if key not in self:
            self[key] = make()
            while len(self) > self.size:
                del self[next(iter(self))]
        return self[key]


class VersionComparison:
    """Compares two datasets. Results per frame are kept by the files' SHA-256 (``cache_size`` of them), so a page
    that asks again reads only the records and the small documents."""

    def __init__(self, reads: VersionReads, cache_size: int = 0):
        self.reads = reads
        self._keys = _Kept(cache_size)
        self._differences = _Kept(cache_size)

    def records(self, a_id: str, b_id: str) -> tuple[dict, dict]:
        """Both datasets' records (nothing of their data is read yet: access is checked on these)."""
        found = []
        for dataset_id in (a_id, b_id):
            record = self.reads.dataset(dataset_id)
            if record is None:
                raise NotFound(f"no dataset {dataset_id!r}; `obsflow datasets list` shows the catalogued ones")
            found.append(record)
        return found[0], found[1]

    def compare(self, a: dict, b: dict, pixels: bool = True) -> dict:
        """Provenance, QC values and (``pixels``) per-frame statistics of B - A."""
        same_product = a.get("product_id") == b.get("product_id")
        prov_a, prov_b = a.get("provenance") or {}, b.get("provenance") or {}
        inputs = input_changes(prov_a.get("input_frames", []), prov_b.get("input_frames", []))
        result = {
            "a": a["dataset_id"], "b": b["dataset_id"], "same_product": same_product,
            "note": None if same_product else (
                f"{a['dataset_id']} and {b['dataset_id']} are not versions of one product: {a['dataset_id']} is of "
                f"{a.get('product_id')}, {b['dataset_id']} of {b.get('product_id')}; compared anyway, frame by frame "
                "where they share an observe frame"),
            "summary": summary_changes(a, b),
            "configuration": configuration_changes(prov_a.get("configuration"), prov_b.get("configuration")),
            "code": code_changes(prov_a.get("tasks", []), prov_b.get("tasks", [])),
            "inputs": inputs,
            "upstream": upstream_changes(prov_a.get("upstream_datasets", []), prov_b.get("upstream_datasets", [])),
            "qc": qc_changes(self._qc(a), self._qc(b)),
        }
        if pixels:
            result.update(self.frames(a, b))
        return result

    def _qc(self, dataset: dict) -> dict[str, dict]:
        values: dict[str, dict] = {}
        for file in quality_metrics_files(dataset.get("files", [])):
            values.update(qc_of(self.reads.document(dataset["bucket"], file["key"])))
        return values

    def _keyed(self, dataset: dict) -> dict[tuple[str, str], dict]:
        keyed = {}
        for file in fits_products(dataset.get("files", [])):
            key = self._keys.keep(file.get("sha256") and (dataset["dataset_id"], file["sha256"]), lambda: frame_key(
                file, self.reads.frame_header(dataset["bucket"], file["key"]), dataset["dataset_id"]))
            keyed.setdefault(key, file)
        return keyed

    def frames(self, a: dict, b: dict) -> dict:
        """Per frame in both: the statistics of B - A, one pair of frames in memory at a time; and those in one."""
        keyed_a, keyed_b = self._keyed(a), self._keyed(b)
        rows = []
        for key in [k for k in keyed_a if k in keyed_b]:
            file_a, file_b = keyed_a[key], keyed_b[key]
            row = {"matched_by": key[0], "frame": key[1], "a_file": file_a["name"], "b_file": file_b["name"]}
            try:
                row.update(self._differences.keep(
                    file_a.get("sha256") and file_b.get("sha256") and (file_a["sha256"], file_b["sha256"]),
                    lambda: differences(self.reads.frame_data(a["bucket"], file_a["key"]),
                                        self.reads.frame_data(b["bucket"], file_b["key"])).as_dict()))
            except (ShapeMismatch, UnreadableFrame) as exc:
                row["error"] = str(exc)
            rows.append(row)
        only_a = [{"matched_by": k[0], "frame": k[1], "file": f["name"]} for k, f in keyed_a.items() if k not in keyed_b]
        only_b = [{"matched_by": k[0], "frame": k[1], "file": f["name"]} for k, f in keyed_b.items() if k not in keyed_a]
        return {"frames": rows, "frames_only_in_a": only_a, "frames_only_in_b": only_b,
                "frames_summary": frame_summary(rows, only_a, only_b)}
