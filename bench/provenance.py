"""Provenance queries on catalogues of 1,000 and 10,000 datasets: each answer's time, against a Scan of
the datasets table; an index query's time follows the rows it returns, not the catalogue's size.

The catalogue: calibration sets, each used by 8 science instances, and one night summary per
calibration set (1,000 sets: 10,000 instances, 10,000 datasets, ~27,000 input edges) across 20
recipe versions and 10 code versions. moto's server on loopback in this process, patched as
`obsflow local serve` runs it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import statistics
import sys
import time

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from moto.server import ThreadedMotoServer  # noqa: E402

from obsflow import tables  # noqa: E402
from obsflow.local import moto_patches  # noqa: E402
from obsflow.reads.provenance import Provenance  # noqa: E402
from obsflow.reads.store import DynamoReads  # noqa: E402
from obsflow.settings import Settings  # noqa: E402
from obsflow.tables.catalogue_edges import InputEdgeItem  # noqa: E402
from obsflow.tables.datasets import DatasetItem, new_item  # noqa: E402
from obsflow.tables.frames import FrameItem  # noqa: E402
from obsflow.tables.recipe_instances import RecipeInstanceItem  # noqa: E402

SIZES, SCIENCE_PER_SET = (100, 1000), 8  # calibration sets: 1,000 then 10,000 datasets
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def edge(instance_id: str, role: str, kind: str, ref: str) -> InputEdgeItem:
    return InputEdgeItem(instance_id, f"{role}#{kind}:{ref}", role=role, kind=kind, ref=ref, input_key=f"{kind}:{ref}")


def dataset(number: int, instance_id: str, recipe: str, kind: str, upstream: list[str] = ()) -> DatasetItem:
    name, _, version = recipe.partition("@")
    return new_item(
        f"ds-{number:06d}", run_id=f"run-{number:06d}", proposal_id=f"pid_{number % 50}", candidate_id=f"c{number}",
        recipe=recipe, recipe_name=name, status="DEPRECATED" if number % 10 == 0 else "ACTIVE", bucket="data",
        prefix=f"p/ds-{number:06d}/", product_id=f"prod-{number}", version_key=f"v{number}", frame_count=8, files=[],
        provenance={"upstream_datasets": [{"dataset_id": u} for u in upstream],
                    "input_frames": [{"file_id": f"f-{number}-{i}", "role": "observe"} for i in range(3)]},
        created_at=T0 + dt.timedelta(minutes=number), kind=kind, instance_id=instance_id,
        code_version=f"0.{number % 10}.0",
    )


def instance(instance_id: str, recipe: str) -> RecipeInstanceItem:
    name, _, version = recipe.partition("@")
    return RecipeInstanceItem(instance_id, candidate_id="c", proposal_id="p", recipe=name, version=version,
                              observed_on="2026-01-01", created_at=T0, reference="2026-01-01/p", state="SUCCEEDED")


def populate(first_set: int, end_set: int) -> None:
    """Calibration sets first_set..end_set-1 and their science and summaries, written with batch writes."""
    number = first_set * (SCIENCE_PER_SET + 2)
    with DatasetItem.batch_write() as datasets, InputEdgeItem.batch_write() as edges, \
            RecipeInstanceItem.batch_write() as instances, FrameItem.batch_write() as frames:
        for cal in range(first_set, end_set):
            cal_id, cal_ds = f"ri-cal-{cal}", f"ds-{number:06d}"
            cal_recipe = f"vbi-calibration@1.{cal % 4}.0"
            instances.save(instance(cal_id, cal_recipe))
            datasets.save(dataset(number, cal_id, cal_recipe, "calibration"))
            number += 1
            for role in ("dark", "gain"):
                edges.save(edge(cal_id, role, "op", f"OP-{cal}-{role}"))
            frames.save(FrameItem(f"frame-{cal}-dark-0", op_id=f"OP-{cal}-dark", experiment_id="e", proposal_id="p",
                                  instrument="VBI", task_type="dark", date_obs="2026-01-01T00:00:00", bucket="i",
                                  key=f"raw/OP-{cal}-dark/0.fits", size=1, header_bytes=1, received_at=T0))
            summary_id = f"ri-sum-{cal}"
            for sci in range(SCIENCE_PER_SET):
                sci_id, recipe = f"ri-sci-{cal}-{sci}", f"vbi-l1@2.{(cal + sci) % 15}.0"
                instances.save(instance(sci_id, recipe))
                datasets.save(dataset(number, sci_id, recipe, "science", [cal_ds]))
                number += 1
                edges.save(edge(sci_id, "observe", "op", f"OP-{cal}-{sci}-observe"))
                edges.save(edge(sci_id, "calibration", "instance", cal_id))
                edges.save(edge(summary_id, "science", "instance", sci_id))
            instances.save(instance(summary_id, "vbi-night-summary@1.0.0"))
            datasets.save(dataset(number, summary_id, "vbi-night-summary@1.0.0", "summary"))
            number += 1


# What the queries ask about: calibration set 50 (in both catalogues), a recipe and a code version.
FRAME, CALIBRATION, SCIENCE, RECIPE = "frame-50-dark-0", "ds-000500", "ds-000501", "vbi-l1@2.7.0"


def queries(provenance: Provenance) -> dict:
    return {
        f"datasets list --uses-frame {FRAME}": lambda: provenance.dataset_rows(uses_frame=FRAME),
        f"datasets list --calibration {CALIBRATION}": lambda: provenance.dataset_rows(calibration=CALIBRATION),
        f"datasets list --recipe {RECIPE}": lambda: provenance.dataset_rows(recipe=RECIPE),
        f"datasets list --recipe {RECIPE} --code-version 0.3.0":
            lambda: provenance.dataset_rows(recipe=RECIPE, code_version="0.3.0"),
        "datasets list --code-version 0.0.0 --status DEPRECATED":
            lambda: provenance.dataset_rows(code_version="0.0.0", status="DEPRECATED"),
        f"frames list --used-by {SCIENCE}": lambda: provenance.frames_used_by(SCIENCE),
    }


def timed(function, repeat: int = 5) -> tuple[float, int]:
    durations, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        durations.append(time.perf_counter() - started)
    return statistics.median(durations), len(result)


def main() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto_patches.apply()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        settings = Settings(stage="bench", AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}")
        tables.bind(settings)
        tables.create_tables()
        written = 0
        for sets in SIZES:
            started = time.perf_counter()
            populate(written, sets)
            written, size = sets, sets * (SCIENCE_PER_SET + 2)
            print(f"\ncatalogue: {size:,} datasets, {size:,} instances (written in {time.perf_counter() - started:.1f} s); "
                  f"moto server on loopback; median of 5")
            scan_s, scanned = timed(lambda: [d for d in DatasetItem.scan() if d.recipe == RECIPE], repeat=3)
            print(f"{'baseline: Scan of the datasets table, filtered':<58} {scan_s * 1000:8.1f} ms  ({scanned} of {size:,})")
            for label, query in queries(Provenance(DynamoReads(settings))).items():
                seconds, rows = timed(query)
                print(f"{label:<58} {seconds * 1000:8.1f} ms  ({rows} rows; {scan_s / seconds:6.1f}x faster than the Scan)")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
