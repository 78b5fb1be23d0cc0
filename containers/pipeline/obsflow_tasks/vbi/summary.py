"""The night summary: every science dataset of one night of one proposal, in one table."""

from __future__ import annotations

import csv
import io
import json

import numpy as np

from obsflow_tasks.base import Task, TaskFailure

COLUMNS = ("dataset_id", "version_key", "observe_frames", "start", "end", "median_r0_m", "good_seeing_fraction",
           "median_light_level", "warnings")


def dataset_row(dataset_id: str, version_key: str, metrics: dict, good_seeing_r0: float) -> dict:
    """One science dataset's line: frames, time span, seeing and light level, from its quality metrics."""
    frames = metrics["frames"]
    r0 = np.array([f["fried_parameter"] for f in frames if f["fried_parameter"] is not None], dtype=float)
    light = np.array([f["light_level"] for f in frames], dtype=float)
    dates = sorted(f["date_obs"] for f in frames)
    return {
        "dataset_id": dataset_id, "version_key": version_key, "observe_frames": len(frames),
        "start": dates[0] if dates else None, "end": dates[-1] if dates else None,
        "median_r0_m": round(float(np.median(r0)), 4) if r0.size else None,
        "good_seeing_fraction": round(float(np.mean(r0 >= good_seeing_r0)) if r0.size else 0.0, 3),
        "median_light_level": round(float(np.nanmedian(light)), 3) if light.size else None,
        "warnings": len(metrics["warnings"]),
    }


def night_totals(rows: list[dict]) -> dict:
    frames = sum(r["observe_frames"] for r in rows)
    good = sum(r["observe_frames"] * r["good_seeing_fraction"] for r in rows)
    return {"datasets": len(rows), "observe_frames": frames,
            "good_seeing_fraction": round(good / frames, 3) if frames else 0.0,
            "warnings": sum(r["warnings"] for r in rows)}


class NightSummary(Task):
    """Reads each upstream science dataset's quality metrics; writes night_summary.json and .csv."""

    def run(self) -> None:
        science = self.upstream_datasets("science")
        if not science:
            raise TaskFailure("no science datasets to summarise")
        threshold = self.parameters["good_seeing_r0"]
        rows = []
        for upstream in sorted(science, key=lambda u: u["dataset_id"]):
            [metrics_file] = [f for f in upstream["files"] if "quality" in f["tags"]] or [None]
            if metrics_file is None:
                raise TaskFailure(f"dataset {upstream['dataset_id']} has no quality metrics to summarise")
            metrics = json.loads(self.read_output(metrics_file))
            rows.append(dataset_row(upstream["dataset_id"], upstream["version_key"], metrics, threshold))
        dataset = self.context.input_dataset
        self.write_json("night_summary.json", {
            "reference": dataset.get("reference"), "night": dataset["observed_on"], "proposal_id": dataset["proposal_id"],
            "good_seeing_r0_m": threshold, "totals": night_totals(rows), "datasets": rows,
        }, tags=("product", "summary"))
        table = io.StringIO()
        writer = csv.DictWriter(table, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        self.write("night_summary.csv", table.getvalue().encode(), tags=("product", "summary"), content_type="text/csv")
