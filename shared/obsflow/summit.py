"""What the summit's transfer system does: send an observation on disk to the ingest bucket.

A directory laid out as the bucket's keys (DESIGN.md section 4: raw/<op_id>/<name>.fits,
manifests/<id>.json, candidates/<id>.json, proposals/<id>.json) is uploaded in the summit's
order: the proposal and the candidate, the frames as they were taken, then the transfer
manifests that close each OP.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

UPLOAD_THREADS = 8
DOCUMENTS = ("manifests", "candidates", "proposals")


@dataclass
class UploadPlan:
    keys: list[tuple[str, Path]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # not an ingest key


def is_ingest_key(key: str) -> bool:
    parts = key.split("/")
    if parts[0] == "raw":
        return len(parts) == 3 and all(parts) and key.endswith(".fits")
    return parts[0] in DOCUMENTS and len(parts) == 2 and parts[1].endswith(".json")


def plan_upload(root: Path) -> UploadPlan:
    """Every file under ``root``, by its key: what is sent, or not an ingest key."""
    plan = UploadPlan()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        key = path.relative_to(root).as_posix()
        if is_ingest_key(key):
            plan.keys.append((key, path))
        else:
            plan.skipped.append(key)
    return plan


def upload(s3, bucket: str, plan: UploadPlan, progress: Callable[[int, int], None]) -> int:
    """Send the plan's objects (frames side by side); ``progress(done, total)`` after each. Returns bytes sent."""
    total, done, sent = len(plan.keys), 0, 0

    def put(item: tuple[str, Path]) -> int:
        key, path = item
        body = path.read_bytes()
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        return len(body)

    frames = [item for item in plan.keys if item[0].startswith("raw/")]
    before = [item for item in plan.keys if item[0].startswith(("proposals/", "candidates/"))]
    after = [item for item in plan.keys if item[0].startswith("manifests/")]
    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        for group in (before, frames, after):  # manifests last: an OP closes after its frames are sent
            for size in pool.map(put, group):
                done, sent = done + 1, sent + size
                progress(done, total)
    return sent
