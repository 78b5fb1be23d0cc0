"""A dataset of 20,000 frames catalogues: no DynamoDB item grows with the number of frames."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from obsflow.runs.domain import Dataset
from obsflow.runs.store import DynamoRunStore
from obsflow.tables.datasets import SPILL_BYTES, DatasetItem

FRAMES = 20_000
ITEM_LIMIT = 400 * 1024  # DynamoDB's, which moto enforces too


@pytest.fixture
def store(catalog):
    return DynamoRunStore(catalog[0])


def item_bytes(item: DatasetItem) -> int:
    return len(json.dumps(item.to_dynamodb_dict()))


def dataset(dataset_id: str, frames: int) -> Dataset:
    files = [{"name": f"VBI_{dataset_id}_{i:05d}_L1.fits", "key": f"pid_1_23/{dataset_id}/VBI_{dataset_id}_{i:05d}_L1.fits",
              "sha256": f"{i:064x}", "size": 4_194_880, "task": "frames", "tags": ["product", "l1"],
              "content_type": "application/fits"} for i in range(frames)]
    provenance = {"runs": [{"run_id": "run-1"}], "configuration": {"parameters": {"light_level_tolerance": 0.2}},
                  "input_frames": [{"file_id": f"file-{i:05d}", "op_id": "op_observe", "role": "observe",
                                    "task_type": "OBSERVE", "key": f"raw/op_observe/{i:05d}.fits",
                                    "version_id": "v" * 32, "etag": "e" * 32} for i in range(frames)],
                  "upstream_datasets": [], "tasks": []}
    return Dataset(dataset_id, run_id="run-1", proposal_id="pid_1_23", candidate_id="c1", recipe="vbi-l1@3.0.0",
                   bucket="data", prefix=f"pid_1_23/{dataset_id}/", product_id="prod-1", version_key="v1",
                   frame_count=frames, files=files, provenance=provenance,
                   created_at=dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc))


def test_a_20000_frame_dataset_is_catalogued_and_read_back_whole(store, capsys):
    # Given a dataset of 20,000 L1 frames whose provenance lists 20,000 input frames (~10 MB of JSON)
    big = dataset("ds-big", FRAMES)
    # When it is recorded, and read back
    started = time.perf_counter()
    assert store.create_dataset(big)
    written = time.perf_counter() - started
    started = time.perf_counter()
    read = store.dataset("ds-big")
    read_s = time.perf_counter() - started
    # Then its item stays small (files and provenance in S3), and it reads back whole
    item = DatasetItem.get("ds-big")
    assert item.spilled and item.files_inline is None and item_bytes(item) < 4 * 1024
    assert read.files == big.files and read.provenance == big.provenance and read.frame_count == FRAMES
    with capsys.disabled():
        print(f"\n20,000-frame dataset: recorded in {written:.2f} s, read back in {read_s:.2f} s; "
              f"item {item_bytes(item)} bytes")
    # And a small dataset keeps its files and provenance in its item (no S3 read to list it)
    small = dataset("ds-small", 4)
    store.create_dataset(small)
    assert DatasetItem.get("ds-small").spilled is None and store.dataset("ds-small").files == small.files


def test_inline_the_same_record_would_exceed_dynamodb_s_item_limit(store):
    # The limit is real here: the record of 20,000 frames is far beyond an item, and moto refuses it as AWS would
    from pynamodb.exceptions import PutError

    big = dataset("ds-inline", FRAMES)
    assert item_bytes(DatasetItem("x", files_inline=big.files, provenance_inline=big.provenance)) > ITEM_LIMIT > SPILL_BYTES
    with pytest.raises(PutError):
        DatasetItem("ds-inline", run_id="r", proposal_id="p", candidate_id="c", recipe="r", bucket="b", prefix="p/",
                    product_id="p", version_key="v", created_at=big.created_at, files_inline=big.files,
                    provenance_inline=big.provenance).save()
