"""Reuse decided at a run's start, attacked: what StartRun records as made already must be what the task's own
job would reuse, no more.

Found from outside: StartRun computed the digests from the input dataset as it found it, without the SHA-256
checked at planning (a job refuses a changed one), so a run whose input dataset was swapped after planning
reused another input's outputs and, every task of vbi-calibration being reusable, started no job that could
refuse it; and a task-outputs record missing a field (forged, or written by hand) failed StartRun with a
KeyError instead of leaving the task to its job.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import obsflow
import pytest
from obsflow.runs import layout
from obsflow.runs.digests import inputs_digest, recorded_under, task_digests
from obsflow.runs.reuse import StartReuse

from tests.unit.fakes import FakeDocuments
from tests.unit.test_reuse_at_start import CONFIGURATION, INPUTS, NOW, VBI, made_by_earlier_run, run_document

OTHER_INPUTS = {**INPUTS, "frames": [{**frame, "version_id": "v2"} for frame in INPUTS["frames"]]}


def sha256_of(documents: FakeDocuments, key: str) -> str:
    return hashlib.sha256(documents.get_bytes("work", key)).hexdigest()


def reused_tasks(documents: FakeDocuments, document: dict) -> set[str]:
    return {task for task, passed in StartReuse(documents, lambda: NOW).record(document, VBI).items() if passed}


def test_an_input_dataset_changed_after_planning_reuses_nothing_at_the_start():
    # Given run-2 planned on INPUTS (its SHA-256 recorded), and parse made by run-1 from OTHER_INPUTS
    documents = FakeDocuments()
    documents.put_json("work", "inputs/ri-1.json", INPUTS)
    planned = run_document("run-2", input_dataset={"bucket": "obsflow-test-work", "key": "inputs/ri-1.json",
                                                   "sha256": sha256_of(documents, "inputs/ri-1.json")})
    digests = task_digests(VBI, CONFIGURATION, inputs_digest(OTHER_INPUTS), obsflow.__version__, "run-1")
    output = {"name": "parse.out", "key": layout.task_output_prefix(digests["parse"]) + "parse.out", "tags": []}
    documents.put_bytes("work", output["key"], b"made", "application/octet-stream")
    documents.put_json("work", layout.task_output_record_key(digests["parse"]), {
        "run_id": "run-1", "finished_at": "2026-12-04T20:00:00+00:00", "code_version": "0.1.0", "libraries": {},
        "python": "3.11.7", "host": "job-1", "outputs": [output]})
    # And the input dataset then replaced by OTHER_INPUTS (a job of run-2 would refuse it: its SHA-256 changed)
    documents.put_json("work", "inputs/ri-1.json", OTHER_INPUTS)
    # When run-2 starts, Then nothing is reused: its first job refuses the changed dataset, with its ticket
    assert reused_tasks(documents, planned) == set()
    assert not documents.exists("work", layout.task_record_key("run-2", "parse"))


def test_an_unchanged_input_dataset_with_its_planned_sha256_is_reused_from():
    # Given parse made by run-1 from the same inputs, and run-2's dataset as planned
    documents = FakeDocuments()
    documents.put_json("work", "inputs/ri-1.json", INPUTS)
    made_by_earlier_run(documents, {"parse"})
    planned = run_document("run-2", input_dataset={"bucket": "obsflow-test-work", "key": "inputs/ri-1.json",
                                                   "sha256": sha256_of(documents, "inputs/ri-1.json")})
    # When it starts, Then parse is passed
    assert reused_tasks(documents, planned) == {"parse"}


def parse_record_of_run_1(documents: FakeDocuments) -> tuple[str, dict]:
    digest = task_digests(VBI, CONFIGURATION, inputs_digest(INPUTS), obsflow.__version__, "run-1")["parse"]
    return digest, documents.get_json("work", layout.task_output_record_key(digest))


@pytest.mark.parametrize("missing", ["finished_at", "run_id", "code_version", "outputs"])
def test_a_task_outputs_record_missing_a_field_leaves_the_task_to_its_job(missing):
    # Given parse made by run-1, its record then missing a field (forged, or edited by hand)
    documents = FakeDocuments()
    documents.put_json("work", "inputs/ri-1.json", INPUTS)
    made_by_earlier_run(documents, {"parse"})
    digest, record = parse_record_of_run_1(documents)
    del record[missing]
    documents.put_json("work", layout.task_output_record_key(digest), record)
    # When run-2 starts, Then it starts (no KeyError) and parse is left to its job
    assert "parse" not in reused_tasks(documents, run_document("run-2"))


def test_a_forged_record_naming_outputs_outside_its_digest_is_not_reused():
    # Given parse's record under its digest rewritten to name another proposal's product, which exists
    documents = FakeDocuments()
    documents.put_json("work", "inputs/ri-1.json", INPUTS)
    made_by_earlier_run(documents, {"parse"})
    digest, record = parse_record_of_run_1(documents)
    documents.put_bytes("work", "runs/run-other/outputs/secret.fits", b"theirs", "application/octet-stream")
    record["outputs"] = [{**record["outputs"][0], "key": "runs/run-other/outputs/secret.fits"}]
    documents.put_json("work", layout.task_output_record_key(digest), record)
    # When run-2 starts, Then parse is not reused: only keys under the digest's own prefix count
    assert "parse" not in reused_tasks(documents, run_document("run-2"))


@pytest.mark.parametrize("changes", [{"rerun_from_task": "parse"}, {"task_image": "path:/home/dev/tasks"},
                                     {"task_image": "registry.example/vbi:dev"}, {"manual": True}])
def test_a_developer_rerun_image_or_manual_run_reuses_nothing_made_with_the_stage_s_code(changes):
    # Given everything reusable made by run-1 with the stage's code
    documents = FakeDocuments()
    documents.put_json("work", "inputs/ri-1.json", INPUTS)
    made_by_earlier_run(documents, {"parse", "frames", "browse_movie", "quality_metrics"})
    # When a run re-running from parse, with a developer image, or by hand starts, Then nothing is passed
    assert reused_tasks(documents, run_document("run-2", **changes)) == set()


def test_a_rerun_from_a_middle_task_reuses_only_the_tasks_above_it():
    documents = FakeDocuments()
    documents.put_json("work", "inputs/ri-1.json", INPUTS)
    made_by_earlier_run(documents, {"parse", "frames", "browse_movie", "quality_metrics"})
    assert reused_tasks(documents, run_document("run-2", rerun_from_task="frames")) == {"parse"}


def test_chunk_counts_that_differ_from_the_earlier_run_s_reuse_nothing_chunked():
    # Given frames made by run-1 in 2 chunks
    documents = FakeDocuments()
    documents.put_json("work", "inputs/ri-1.json", INPUTS)
    made_by_earlier_run(documents, {"parse", "frames"})
    # When run-2 runs frames in 1 chunk (another chunk size), Then only parse is passed
    assert reused_tasks(documents, run_document("run-2", chunks={"frames": 1, "stamp": 1})) == {"parse"}
    assert json.loads(json.dumps(documents.get_json("work", layout.task_record_key("run-2", "parse"))))["reused_at_start"]


def test_every_chunk_digest_differs_so_one_chunk_never_stands_for_another():
    digests = task_digests(VBI, CONFIGURATION, inputs_digest(INPUTS), obsflow.__version__, "run-1")
    under = recorded_under(VBI, digests, {"frames": 3})["frames"]
    assert len(set(under)) == 3 and digests["frames"] not in under
