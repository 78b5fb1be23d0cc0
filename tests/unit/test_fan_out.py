"""Data-parallel tasks: how frames are cut into chunks, and what the state machine does for 1 or 100,000 frames."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from obsflow.recipes import asl
from obsflow.recipes.definitions import RECIPES
from obsflow.recipes.model import MAX_CHUNKS, Recipe, chunk_bounds, chunk_count
from obsflow.runs import records
from obsflow.runs.failures import describe_failure, with_failed_chunk
from obsflow_tasks.base import Task, TaskContext

VBI = next(r for r in RECIPES if r.name == "vbi-l1")
HISTORY_EVENTS_LIMIT = 25_000  # Step Functions, per standard execution
PAYLOAD_LIMIT = 256 * 1024  # bytes, any state's input or output


@pytest.mark.parametrize("frames, size", [(1, 32), (7, 3), (100, 7), (100_000, 32), (100_000, 1), (33, 32)])
def test_chunks_cover_every_frame_once_in_order_with_sizes_that_differ_by_one_at_most(frames, size):
    count = chunk_count(frames, size)
    bounds = [chunk_bounds(frames, i, count) for i in range(count)]
    assert bounds[0][0] == 0 and bounds[-1][1] == frames
    assert all(stop == next_start for (_, stop), (next_start, _) in zip(bounds, bounds[1:]))
    sizes = {stop - start for start, stop in bounds}
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    # At most MAX_CHUNKS (an array job's largest size): then chunks hold more than chunk_frames
    assert count == min(MAX_CHUNKS, -(-frames // size)) and (count < MAX_CHUNKS or max(sizes) > size)


def history_events_upper_bound(definition: dict, chunked: bool) -> int:
    """Events of a successful execution if every Task state used all its retries: a state entered and exited
    (2) and, per Task attempt, scheduled, started, submitted and succeeded or failed (4)."""
    events = 0
    name = definition["StartAt"]
    while name is not None:
        state = definition["States"][name]
        events += 2
        if state["Type"] == "Task":
            attempts = 1 + sum(r["MaxAttempts"] for r in state.get("Retry", []))
            events += 4 * attempts
        for branch in state.get("Branches", []):
            events += history_events_upper_bound(branch, chunked)
        if state["Type"] == "Choice":
            name = state["Choices"][0]["Next"] if (name == "ForThePI" or chunked) else state["Default"]
        else:
            name = state.get("Next")
    return events + 2  # ExecutionStarted, ExecutionSucceeded


def start_result(chunks: dict) -> dict:
    return {"run_id": "run-0123456789ab", "recipe": "vbi-l1", "version": VBI.version, "proposal_id": "pid_1_23",
            "chunks": chunks, "reused": {task.name: False for task in VBI.tasks}, "share_identifier": "p0123456789", "scheduling_priority": 50,
            "job_definitions": {"default": "obsflow-prod-task-default", "high_memory": "obsflow-prod-task-high-memory",
                                "multi_core": "obsflow-prod-task-multi-core"}}


@pytest.mark.parametrize("frames", [1, 100_000])
def test_a_run_of_1_or_100000_frames_stays_inside_step_functions_limits(frames):
    # Given vbi-l1's state machine, and a run of that many observe frames in the default chunk size
    definition = asl.build_definition(VBI)
    configuration = VBI.as_run_configuration(dt.date(2026, 11, 20))
    chunks = VBI.chunks(configuration, frames)
    # Then the frames task runs in ceil(frames / 32) chunks, one array job: never more children than Batch allows
    assert chunks == {"frames": max(1, -(-frames // 32))} and chunks["frames"] <= MAX_CHUNKS
    # And a run takes 17 transitions in one chunk or in any number (one array job, whose last chunk records the
    # task), and its history stays far inside the limit, whatever the frames
    transitions, _ = asl.success_path(definition, chunked=chunks["frames"] > 1)
    assert transitions == 17
    assert history_events_upper_bound(definition, chunked=chunks["frames"] > 1) < HISTORY_EVENTS_LIMIT
    # And the largest state input (after Catalog, before NotifyPI) carries counts, never frame or file lists
    files = [{"name": f"VBI_ds-1_{i:04d}_L1.fits", "tags": ["product", "l1"]} for i in range(frames)] + [
        {"name": name, "tags": ["product"]} for name in ("quality_metrics.json", "browse.mp4", "quality_report.pdf",
                                                          "VBI_ds-1_metadata.asdf", "inventory.json")]
    run = SimpleNamespace(proposal_id="pid_1_23", candidate_id="cand", recipe_key=VBI.key)
    subject, message = records.availability_message("ds-0123456789ab", "prod-0123456789ab", "0" * 16, run,
                                                    "s3://bucket/pid_1_23/ds-0123456789ab/", files,
                                                    dt.date(2027, 11, 20), True, None)
    state_input = {"run_id": "run-0123456789ab", "recipe": "vbi-l1", "version": VBI.version, "proposal_id": "pid_1_23",
                   "start": {"result": start_result(chunks)},
                   "catalog": {"result": {"dataset_id": "ds-0123456789ab", "proposal_id": "pid_1_23", "subject": subject,
                                          "message": json.dumps(message, indent=2), "kind": "science", "notify_pi": True}}}
    assert len(json.dumps(state_input)) < 4 * 1024 < PAYLOAD_LIMIT


def test_the_data_parallel_task_is_an_array_job_or_one_job_for_one_chunk():
    definition = asl.build_definition(VBI)
    [branch] = definition["States"]["frames"]["Branches"]
    states = branch["States"]
    assert states["frames in chunks?"]["Choices"][0] == {"Variable": "$.start.result.chunks.frames",
                                                         "NumericGreaterThan": 1, "Next": "frames chunks"}
    assert states["frames chunks"]["Parameters"]["ArrayProperties"] == {"Size.$": "$.start.result.chunks.frames"}
    # the array job ends the task: its last chunk records it, no gather job follows
    assert states["frames chunks"]["End"] and "frames gather" not in states
    assert "ArrayProperties" not in states["frames whole"]["Parameters"]
    assert definition["States"]["frames"]["Catch"][0]["Next"] == "OpenTicket"


def test_a_data_parallel_task_needs_the_chunk_size_option():
    definition = json.loads(VBI.model_dump_json())
    definition["run_configuration"] = [o for o in definition["run_configuration"] if o["name"] != "chunk_frames"]
    definition["tasks"][1]["uses"] = [u for u in definition["tasks"][1]["uses"] if u != "chunk_frames"]
    with pytest.raises(ValidationError, match="task frames is data-parallel: the run configuration needs an int option "
                                          "chunk_frames"):
        Recipe.model_validate(definition)


def test_a_chunk_s_task_sees_its_own_observe_frames_in_time_order_and_every_calibration_frame():
    # Given 7 observe frames listed out of time order, 2 calibration frames, and chunk 2 of 3
    observe = [{"file_id": f"o{i}", "role": "observe", "task_type": "OBSERVE", "date_obs": f"2026-11-20T18:00:0{i}"}
               for i in (3, 0, 6, 1, 5, 2, 4)]
    calibration = [{"file_id": f"c{i}", "role": "calibration", "task_type": "DARK", "date_obs": "2026-11-20T17:00:00"}
                   for i in range(2)]
    context = TaskContext(s3=None, work_bucket="work", run={"run_id": "run-1", "configuration": {}}, recipe=VBI,
                          task=VBI.task("frames"), input_dataset={"frames": observe + calibration}, chunk=(1, 3))
    task = Task(context)
    # Then it works on frames 3 and 4 (of 0-6, in time order) and sees both calibration frames
    assert task.chunk_bounds == (3, 5)
    assert [f["file_id"] for f in task.chunk_frames()] == ["o3", "o4"]
    assert sorted(f["file_id"] for f in task.frames()) == ["c0", "c1", "o3", "o4"]
    assert [f["file_id"] for f in task.frames(role="observe")] == ["o3", "o4"]


def test_a_failed_array_job_is_told_as_its_failed_chunk():
    # Given Step Functions' error for an array job of 16 children, one of which failed
    cause = {"JobName": "run-1-frames", "JobId": "abc", "StatusReason": "1 of 16 child job(s) failed: index [5]",
             "Container": {"LogStreamName": "parent/stream"}, "ArrayProperties": {"Size": 16, "StatusSummary": {}}}
    facts = describe_failure({"Error": "States.TaskFailed", "Cause": json.dumps(cause)})
    # When the failed child is looked up
    told = with_failed_chunk(facts, {"index": 5, "exit_code": 1, "log_stream": "child/5", "reason": "exited"})
    # Then the ticket's facts name the task, the chunk and the child's exit code, kind and log
    assert (facts["failed_task"], facts["array_job_id"], facts["chunks"]) == ("frames", "abc", 16)
    assert (told["exit_code"], told["kind"], told["log_stream"]) == (1, "science", "child/5")
    assert told["error_message"].startswith("chunk 6 of 16 (array index 5) failed")
