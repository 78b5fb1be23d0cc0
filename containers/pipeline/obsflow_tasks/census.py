"""frame-census: a small real recipe (inventory -> dark level + observe statistics -> summary).

It exercises everything a recipe does (ranged header reads, whole-frame reads,
parallel tasks, tagged scratch, a catalogued product) at a tiny cost, so tests and
benchmarks measure the orchestration rather than the science.
"""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
from astropy.io import fits

from obsflow.ingest.fits_header import read_primary_header
from obsflow.ingest.objects import S3ObjectReader

from obsflow_tasks.base import Task, TaskFailure


def frame_pixels(data: bytes) -> np.ndarray:
    with fits.open(io.BytesIO(data)) as hdus:
        for hdu in hdus:
            if hdu.data is not None:
                return np.asarray(hdu.data, dtype=np.float64).squeeze()
    raise TaskFailure("the frame has no image data")


class Inventory(Task):
    """Every input frame's header, read with a ranged GET, checked against the input dataset."""

    def run(self) -> None:
        reader = S3ObjectReader(self.context.s3)
        rows = []
        for frame in self.frames():
            header, size, _, _ = read_primary_header(
                reader, frame["bucket"], frame["key"], frame.get("version_id"), first_read=11 * 2880, max_header=100 * 2880
            )
            if header.get("ID___008") != frame["op_id"]:
                raise TaskFailure(f"{frame['key']}: header OP {header.get('ID___008')} is not {frame['op_id']}")
            rows.append({"file_id": frame["file_id"], "task_type": str(header["DKIST004"]).lower(),
                         "exposure_ms": header.get("CAM__004"), "date_obs": header["DATE-OBS"], "size": size})
        counts = Counter(row["task_type"] for row in rows)
        if not counts.get("observe"):
            raise TaskFailure("the input dataset has no observe frames")
        self.write_json("inventory.json", {"frames": rows, "counts": dict(counts)}, tags=("inventory",))


class DarkLevel(Task):
    def run(self) -> None:
        darks = [frame_pixels(self.read_frame(f)) for f in self.frames(task_type="dark")]
        if not darks:
            raise TaskFailure("no dark frames to measure")
        level = float(np.median(np.stack(darks)))
        self.write_json("dark_level.json", {"dark_level": level, "frames": len(darks)}, tags=("dark",))


class ObserveStats(Task):
    def run(self) -> None:
        saturation = self.parameters["saturation_level"]
        rows = []
        for frame in self.frames(task_type="observe"):
            pixels = frame_pixels(self.read_frame(frame))
            rows.append({"file_id": frame["file_id"], "mean": float(pixels.mean()), "rms": float(pixels.std()),
                         "saturated_fraction": float((pixels >= saturation).mean())})
        self.write_json("observe_stats.json", {"frames": rows, "saturation_level": saturation}, tags=("observe-stats",))


class Summary(Task):
    def run(self) -> None:
        inventory = self.read_json("inventory")
        dark = self.read_json("dark")
        stats = self.read_json("observe-stats")
        means = [row["mean"] for row in stats["frames"]]
        self.write_json("census.json", {
            "run_id": self.run_id,
            "frame_counts": inventory["counts"],
            "dark_level": dark["dark_level"],
            "observe_mean_above_dark": float(np.mean(means) - dark["dark_level"]),
            "observe_frames": len(means),
            "saturated_fraction_max": max(row["saturated_fraction"] for row in stats["frames"]),
        }, tags=("product", "quality"))
