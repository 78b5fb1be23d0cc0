"""QC values: the numbers a dataset's quality JSON holds, for campaigns' summaries, comparisons and the gates
that certify master calibrations."""

from __future__ import annotations

import statistics

from obsflow.runs.domain import Dataset
from obsflow.runs.ports import Documents


def qc_values(metrics: dict) -> dict[str, float]:
    """A dataset's QC values from its quality metrics: numeric top-level values, the median over frames of each
    numeric per-frame value, and the number of warnings."""
    values = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    frames = metrics.get("frames") if isinstance(metrics.get("frames"), list) else []
    for key in sorted({k for f in frames if isinstance(f, dict) for k in f}):
        numbers = [f[key] for f in frames if isinstance(f.get(key), (int, float)) and not isinstance(f.get(key), bool)]
        if numbers:
            values[f"median_{key}"] = float(statistics.median(numbers))
    if isinstance(metrics.get("warnings"), list):
        values["warnings"] = float(len(metrics["warnings"]))
    return values


def dataset_qc_values(dataset: Dataset, documents: Documents) -> dict[str, float]:
    """Every QC value of a dataset: those of each of its JSON files tagged ``quality``, of any recipe."""
    values: dict[str, float] = {}
    for file in dataset.files:
        if "quality" in file["tags"] and file["name"].endswith(".json"):
            values.update(qc_values(documents.get_json("data", file["key"])))
    return values
