"""The last chunk to finish records a data-parallel task, attacked.

Found from outside: a chunk counted every object under ``runs/<run>/tasks/<task>/`` as a chunk record, so one
more file there (planted, or a note left by hand) made a chunk that finished before its siblings think it was
the last: it tried to merge, found a sibling's record missing and exited as an infrastructure failure, failing
the array job and the run.
"""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from obsflow.runs import documents, layout
from obsflow_tasks.runtime import gather_if_last

WORK = "obsflow-test-work"
RUN = {"run_id": "run-1", "recipe": "vbi-l1", "chunks": {"frames": 2}}


def chunk_record(index: int, status: str = "succeeded") -> dict:
    return {"task": "frames", "entrypoint": "obsflow_tasks.vbi.tasks:Frames", "recipe": "vbi-l1",
            "recipe_version": "3.1.0", "run_id": "run-1", "resource_class": "multi-core", "code_version": "0.1.0",
            "libraries": {}, "python": "3.11.7", "manual": False, "operator": None, "note": None, "host": f"job-{index}",
            "status": status, "digest": f"d{index}", "started_at": f"2026-12-05T03:0{index}:00+00:00",
            "finished_at": f"2026-12-05T03:1{index}:00+00:00", "duration_s": 10.0, "chunk": [index, 2],
            "outputs": [{"name": f"f{index}.fits", "key": f"task-outputs/d{index}/f{index}.fits"}]}


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=WORK)
        yield client


@pytest.mark.parametrize("planted", ["notes.txt", "chunk-00007.json", "chunk-00001.json.bak"])
def test_a_planted_file_beside_the_chunk_records_does_not_make_a_chunk_think_it_is_the_last(s3, planted):
    # Given chunk 0 of 2 finished and recorded, chunk 1 still running, and one more file among the chunk records
    documents.put_json(s3, WORK, layout.chunk_record_key("run-1", "frames", 0), chunk_record(0))
    documents.put_json(s3, WORK, f"runs/run-1/tasks/frames/{planted}", {"status": "succeeded"})
    # When chunk 0 looks whether it is the last
    exit_code = gather_if_last(s3, WORK, RUN, "frames", log=lambda _: None)
    # Then it ends well and leaves the recording to chunk 1
    assert exit_code == 0
    assert not documents.exists(s3, WORK, layout.task_record_key("run-1", "frames"))
    # And once chunk 1 finishes, it records the task from the two chunks only
    documents.put_json(s3, WORK, layout.chunk_record_key("run-1", "frames", 1), chunk_record(1))
    assert gather_if_last(s3, WORK, RUN, "frames", log=lambda _: None) == 0
    record = documents.get_json(s3, WORK, layout.task_record_key("run-1", "frames"))
    assert [o["name"] for o in record["outputs"]] == ["f0.fits", "f1.fits"] and record["chunks"] == 2


def test_a_chunk_that_failed_leaves_the_task_unrecorded_whichever_finishes_last(s3):
    # Given chunk 1 failed, then chunk 0 succeeded last
    documents.put_json(s3, WORK, layout.chunk_record_key("run-1", "frames", 1), chunk_record(1, "failed"))
    documents.put_json(s3, WORK, layout.chunk_record_key("run-1", "frames", 0), chunk_record(0))
    # Then chunk 0 ends well (the failed chunk fails the array job) and the task has no record
    assert gather_if_last(s3, WORK, RUN, "frames", log=lambda _: None) == 0
    assert not documents.exists(s3, WORK, layout.task_record_key("run-1", "frames"))


def test_two_chunks_finishing_together_both_record_the_same_task(s3):
    # Given both chunks recorded before either looked
    for index in (0, 1):
        documents.put_json(s3, WORK, layout.chunk_record_key("run-1", "frames", index), chunk_record(index))
    # When both look, Then both record, the same record
    assert gather_if_last(s3, WORK, RUN, "frames", log=lambda _: None) == 0
    first = documents.get_json(s3, WORK, layout.task_record_key("run-1", "frames"))
    assert gather_if_last(s3, WORK, RUN, "frames", log=lambda _: None) == 0
    assert documents.get_json(s3, WORK, layout.task_record_key("run-1", "frames")) == first
    assert first["duration_s"] == 20.0 and first["host"] == ["job-0", "job-1"]
