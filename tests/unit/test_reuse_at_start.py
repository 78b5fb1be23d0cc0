"""Reuse decided at a run's start: a task an earlier run already made starts no job, and is recorded as reused."""

from __future__ import annotations

import datetime as dt

import obsflow
from obsflow.recipes.definitions import RECIPES
from obsflow.runs import layout
from obsflow.runs.digests import inputs_digest, recorded_under, task_digests
from obsflow.runs.reuse import AT_START, StartReuse

from tests.unit.fakes import FakeDocuments

VBI = next(r for r in RECIPES if r.key == "vbi-l1@3.1.0")
NOW = dt.datetime(2026, 12, 5, 12, tzinfo=dt.timezone.utc)
INPUTS = {"frames": [{"file_id": f"f{i}", "role": "observe", "bucket": "ingest", "key": f"raw/op/f{i}.fits",
                      "version_id": "v1", "etag": f"e{i}"} for i in range(64)], "upstream": []}
PLANNED = FakeDocuments().put_json("work", "inputs/ri-1.json", INPUTS)  # the SHA-256 recorded at planning
CONFIGURATION = {"parameters": {"light_level_tolerance": 0.2},
                 "options": {"chunk_frames": 32, "l1_quantize_level": 0, "movie_fps": 6, "movie_width": 512}}


def run_document(run_id: str, **changes) -> dict:
    return {"run_id": run_id, "configuration": CONFIGURATION, "manual": False, "task_image": None,
            "rerun_from_task": None, "chunks": {"frames": 2, "stamp": 2},
            "input_dataset": {"bucket": "obsflow-test-work", "key": "inputs/ri-1.json", "sha256": PLANNED}, **changes}


def made_by_earlier_run(documents: FakeDocuments, tasks: set[str]) -> None:
    """``tasks`` of run-1 computed and recorded under their digests (a chunked task: each chunk's), outputs with them."""
    digests = task_digests(VBI, CONFIGURATION, inputs_digest(INPUTS), obsflow.__version__, "run-1")
    for task, under in recorded_under(VBI, digests, {"frames": 2, "stamp": 2}).items():
        for index, digest in enumerate(under if task in tasks else []):
            output = {"name": f"{task}_{index}.out", "key": layout.task_output_prefix(digest) + f"{task}_{index}.out",
                      "tags": [task]}
            documents.put_bytes("work", output["key"], b"made", "application/octet-stream")
            documents.put_json("work", layout.task_output_record_key(digest), {
                "run_id": "run-1", "finished_at": "2026-12-04T20:00:00+00:00", "code_version": "0.1.0",
                "libraries": {}, "python": "3.11.7", "host": "job-1", "outputs": [output]})


def given_documents() -> FakeDocuments:
    documents = FakeDocuments()
    documents.put_json("work", "inputs/ri-1.json", INPUTS)
    made_by_earlier_run(documents, {"parse", "frames", "browse_movie"})
    return documents


def test_a_task_made_by_an_earlier_run_is_recorded_for_the_new_run_and_starts_no_job():
    # Given parse, frames (2 chunks) and browse_movie made by run-1 from the same inputs and options
    documents = given_documents()
    # When run-2 starts
    reused = StartReuse(documents, lambda: NOW).record(run_document("run-2"), VBI)
    # Then those three are passed by its state machine; the quality report, stamping and the rest run
    assert {task for task, passed in reused.items() if passed} == {"parse", "frames", "browse_movie"}
    assert set(reused) == {task.name for task in VBI.tasks}
    # And each has a task record for run-2 naming run-1, its outputs (both chunks', in order) and no time spent
    frames = documents.get_json("work", layout.task_record_key("run-2", "frames"))
    assert frames["reused_from"]["run_id"] == "run-1" and frames[AT_START] and frames["duration_s"] == 0.0
    assert [o["name"] for o in frames["outputs"]] == ["frames_0.out", "frames_1.out"] and frames["chunks"] == 2
    assert not documents.exists("work", layout.task_record_key("run-2", "quality_metrics"))


def test_an_expired_output_a_manual_run_or_an_injected_fault_leaves_the_task_to_its_job():
    # Given the same earlier run, but one output of frames' second chunk expired
    documents = given_documents()
    digests = task_digests(VBI, CONFIGURATION, inputs_digest(INPUTS), obsflow.__version__, "run-1")
    second_chunk = recorded_under(VBI, digests, {"frames": 2})["frames"][1]
    documents.delete_prefix("work", layout.task_output_prefix(second_chunk) + "frames_1")
    # And a fault injected into browse_movie of run-2
    documents.put_json("work", layout.fault_key("run-2", "browse_movie"), {"kind": "outage"})
    # When run-2 starts, Then only parse is passed
    reused = StartReuse(documents, lambda: NOW).record(run_document("run-2"), VBI)
    assert {task for task, passed in reused.items() if passed} == {"parse"}
    # And a manual run reuses nothing at its start: a person running it means its tasks to run
    manual = StartReuse(documents, lambda: NOW).record(run_document("run-3", manual=True), VBI)
    assert not any(manual.values())


def test_a_redelivered_start_changes_nothing_it_recorded():
    # Given run-2 started once, its reused records written
    documents = given_documents()
    first = StartReuse(documents, lambda: NOW).record(run_document("run-2"), VBI)
    before = documents.get_json("work", layout.task_record_key("run-2", "parse"))
    # When the start is delivered again, later
    again = StartReuse(documents, lambda: NOW + dt.timedelta(minutes=5)).record(run_document("run-2"), VBI)
    # Then it answers the same, and the records are those of the first start
    assert again == first and any(first.values())
    assert documents.get_json("work", layout.task_record_key("run-2", "parse")) == before
