"""The task runtime against S3 on moto: outputs and provenance, reuse on a second call, clear failures."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from obsflow.runs import documents, layout
from obsflow.settings import Settings, get_settings
from obsflow_tasks.runtime import main


@pytest.fixture
def run(monkeypatch, small_candidate):
    """Given a run of frame-census with its run document, input dataset and frames in S3."""
    monkeypatch.setenv("OBSFLOW_STAGE", "rt")
    get_settings.cache_clear()
    with mock_aws():
        settings = Settings(stage="rt")
        s3 = boto3.client("s3", region_name=settings.region)
        for bucket in ("ingest", "work"):
            s3.create_bucket(Bucket=settings.bucket_name(bucket))
        frames = []
        for op in small_candidate.ops:
            for name, body in op.frames:
                key = f"raw/{op.op_id}/{name}"
                etag = s3.put_object(Bucket=settings.ingest_bucket_name, Key=key, Body=body)["ETag"].strip('"')
                frames.append({"file_id": name, "op_id": op.op_id, "task_type": op.task_type.upper(),
                               "role": "observe" if op.task_type == "observe" else "calibration",
                               "bucket": settings.ingest_bucket_name, "key": key, "version_id": None, "etag": etag})
        work = settings.bucket_name("work")
        sha256 = documents.put_json(s3, work, "input-datasets/ri-1.json", {"frames": frames})
        documents.put_json(s3, work, layout.run_document_key("run-1"), {
            "run_id": "run-1", "recipe": "frame-census", "recipe_version": "1.0.0",
            "configuration": {"parameters": {"saturation_level": 60000}, "options": {}},
            "input_dataset": {"bucket": work, "key": "input-datasets/ri-1.json", "sha256": sha256},
        })
        yield s3, work
    get_settings.cache_clear()


def test_a_task_records_its_outputs_and_provenance_and_is_not_run_twice(run, capsys):
    s3, work = run
    # When the inventory task runs, then runs again for the same run
    assert main(["frame-census", "inventory", "--run-id", "run-1"]) == 0
    first = documents.get_json(s3, work, layout.task_record_key("run-1", "inventory"))
    assert main(["frame-census", "inventory", "--run-id", "run-1"]) == 0
    # Then its output is recorded with a checksum, its provenance says what ran, and the second call reused it
    assert [o["name"] for o in first["outputs"]] == ["inventory.json"] and len(first["outputs"][0]["sha256"]) == 64
    assert first["status"] == "succeeded" and first["manual"] is False and first["libraries"]["numpy"]
    inventory = json.loads(s3.get_object(Bucket=work, Key=first["outputs"][0]["key"])["Body"].read())
    assert inventory["counts"] == {"dark": 2, "gain": 2, "observe": 4}
    assert documents.get_json(s3, work, layout.task_record_key("run-1", "inventory")) == first
    assert "reusing its recorded outputs" in capsys.readouterr().out


def test_a_task_without_its_upstream_outputs_fails_with_a_clear_message(run, capsys):
    # When summary runs before the tasks it depends on
    code = main(["frame-census", "summary", "--run-id", "run-1"])
    # Then it exits non-zero and says what is missing
    err = capsys.readouterr().err
    assert code == 3
    assert "infrastructure: upstream task" in err and "has no outputs for run run-1" in err


def test_an_unknown_run_or_task_exits_2_and_says_so(run, capsys):
    assert main(["frame-census", "inventory", "--run-id", "run-404"]) == 2
    assert "runs/run-404/run.json does not exist" in capsys.readouterr().err
    assert main(["frame-census", "nope", "--run-id", "run-1"]) == 2
    assert "has no task 'nope'" in capsys.readouterr().err


def test_an_input_dataset_changed_after_planning_is_not_processed(run, capsys):
    s3, work = run
    # Given the run's input dataset edited after planning: its observe frames cut from 4 to 1
    planned = documents.get_json(s3, work, "input-datasets/ri-1.json")
    observe = [f for f in planned["frames"] if f["role"] == "observe"]
    edited = [f for f in planned["frames"] if f["role"] != "observe"] + observe[:1]
    documents.put_json(s3, work, "input-datasets/ri-1.json", {"frames": edited})
    # When a task of the run starts
    code = main(["frame-census", "inventory", "--run-id", "run-1"])
    # Then it processes nothing, fails as a configuration error and says what to do
    assert code == 2
    err = capsys.readouterr().err
    assert "changed after planning" in err and "plan the instance again" in err
    assert not documents.exists(s3, work, layout.task_record_key("run-1", "inventory"))


def test_a_frame_overwritten_after_planning_is_not_processed(run, capsys):
    s3, work = run
    # Given a dark frame of the run overwritten after planning (same key, other pixels)
    assert main(["frame-census", "inventory", "--run-id", "run-1"]) == 0
    dark = next(f for f in documents.get_json(s3, work, "input-datasets/ri-1.json")["frames"] if f["task_type"] == "DARK")
    s3.put_object(Bucket=dark["bucket"], Key=dark["key"], Body=s3.get_object(Bucket=dark["bucket"], Key=dark["key"])
                  ["Body"].read()[:-2880] + b"\0" * 2880)
    # When a task that reads the frames' pixels runs
    code = main(["frame-census", "dark_level", "--run-id", "run-1"])
    # Then it processes nothing, fails as a configuration error naming the frame, and says what to do
    assert code == 2
    err = capsys.readouterr().err
    assert f"frame {dark['file_id']} is not what was planned" in err and "ETag is no longer" in err
    assert "plan the instance again" in err


def test_an_injected_fault_fails_the_task_as_told(run, capsys):
    s3, work = run
    # Given a configuration fault injected into inventory and an outage into dark_level of run-1
    documents.put_json(s3, work, layout.fault_key("run-1", "inventory"), {"kind": "configuration"})
    # Then inventory fails as a configuration error, every time
    assert main(["frame-census", "inventory", "--run-id", "run-1"]) == 2
    assert main(["frame-census", "inventory", "--run-id", "run-1"]) == 2
    assert "a configuration fault is injected into inventory" in capsys.readouterr().err
    # And an outage fails once as infrastructure, then the task runs
    documents.delete_prefix(s3, work, layout.fault_key("run-1", "inventory"))
    documents.put_json(s3, work, layout.fault_key("run-1", "dark_level"), {"kind": "outage"})
    assert main(["frame-census", "inventory", "--run-id", "run-1"]) == 0
    assert main(["frame-census", "dark_level", "--run-id", "run-1"]) == 3
    assert main(["frame-census", "dark_level", "--run-id", "run-1"]) == 0


def _second_run(s3, work, run_id: str, saturation: int) -> None:
    first = documents.get_json(s3, work, layout.run_document_key("run-1"))
    configuration = {"parameters": {"saturation_level": saturation}, "options": {}}
    documents.put_json(s3, work, layout.run_document_key(run_id), {**first, "run_id": run_id,
                                                                   "configuration": configuration})


def test_another_run_reuses_unchanged_tasks_and_re_runs_those_a_changed_parameter_reaches(run, capsys):
    s3, work = run
    # Given run-1 ran every task of frame-census
    tasks = ["inventory", "dark_level", "observe_stats", "summary"]
    for task in tasks:
        assert main(["frame-census", task, "--run-id", "run-1"]) == 0
    # When run-2 has the same inputs and configuration, and run-3 another saturation level
    _second_run(s3, work, "run-2", 60000)
    _second_run(s3, work, "run-3", 61000)
    capsys.readouterr()
    for run_id in ("run-2", "run-3"):
        for task in tasks:
            assert main(["frame-census", task, "--run-id", run_id]) == 0
    records = {(r, t): documents.get_json(s3, work, layout.task_record_key(r, t))
               for r in ("run-1", "run-2", "run-3") for t in tasks}
    reused = {(r, t) for (r, t), record in records.items() if "reused_from" in record}
    # Then run-2 reuses every reusable task, and run-3 all but observe_stats (it uses the changed level)
    assert reused == {("run-2", "inventory"), ("run-2", "dark_level"), ("run-2", "observe_stats"),
                      ("run-3", "inventory"), ("run-3", "dark_level")}
    assert records["run-2", "inventory"]["outputs"] == records["run-1", "inventory"]["outputs"]
    assert records["run-2", "inventory"]["reused_from"]["run_id"] == "run-1"
    # And summary, which names its run, ran in each run and read the right observe statistics
    census = {r: json.loads(s3.get_object(Bucket=work, Key=records[r, "summary"]["outputs"][0]["key"])["Body"].read())
              for r in ("run-2", "run-3")}
    assert (census["run-2"]["run_id"], census["run-3"]["run_id"]) == ("run-2", "run-3")
    stats = json.loads(s3.get_object(Bucket=work, Key=records["run-3", "observe_stats"]["outputs"][0]["key"])["Body"].read())
    assert stats["saturation_level"] == 61000
    assert "reusing the outputs of run run-1" in capsys.readouterr().out


def test_reuse_needs_every_output_still_there_and_force_re_runs(run):
    s3, work = run
    assert main(["frame-census", "inventory", "--run-id", "run-1"]) == 0
    output = documents.get_json(s3, work, layout.task_record_key("run-1", "inventory"))["outputs"][0]
    _second_run(s3, work, "run-2", 60000)
    _second_run(s3, work, "run-3", 60000)
    # When an output has expired, the next run runs the task again; --force runs it even when it could reuse
    s3.delete_object(Bucket=work, Key=output["key"])
    assert main(["frame-census", "inventory", "--run-id", "run-2"]) == 0
    assert main(["frame-census", "inventory", "--run-id", "run-3", "--force"]) == 0
    for run_id in ("run-2", "run-3"):
        assert "reused_from" not in documents.get_json(s3, work, layout.task_record_key(run_id, "inventory"))
    assert s3.get_object(Bucket=work, Key=output["key"])["Body"].read()


def test_a_task_reading_a_value_it_does_not_declare_fails_as_configuration(run, capsys):
    s3, work = run
    # Given a run whose recipe definition says observe_stats uses nothing
    from obsflow.recipes import registry

    recipe = registry.get("frame-census", "1.0.0").model_dump(mode="json")
    for task in recipe["tasks"]:
        if task["name"] == "observe_stats":
            task["uses"] = []
    document = documents.get_json(s3, work, layout.run_document_key("run-1"))
    documents.put_json(s3, work, layout.run_document_key("run-1"), {**document, "recipe_definition": recipe})
    # Then it fails as a configuration error that names the value
    assert main(["frame-census", "observe_stats", "--run-id", "run-1"]) == 2
    assert "reads 'saturation_level' but its recipe does not list it" in capsys.readouterr().err


def test_a_developer_task_image_path_runs_its_own_task_code_and_is_part_of_the_digest(run, tmp_path, monkeypatch):
    import sys

    import obsflow_tasks

    s3, work = run
    # (each task is a fresh process in the system; here the test process imports the modules again)
    monkeypatch.setattr(obsflow_tasks, "__path__", list(obsflow_tasks.__path__))
    monkeypatch.delitem(sys.modules, "obsflow_tasks.census", raising=False)
    # Given a developer's copy of the task package whose ObserveStats also writes its origin
    package = tmp_path / "obsflow_tasks"
    package.mkdir()
    (package / "census.py").write_text(
        "from obsflow_tasks.base import Task\n\n"
        "class ObserveStats(Task):\n"
        "    def run(self):\n"
        "        self.write_json('observe_stats.json', {'frames': [], 'origin': 'developer copy'}, tags=('observe-stats',))\n")
    for task in ("inventory", "observe_stats"):
        assert main(["frame-census", task, "--run-id", "run-1"]) == 0
    monkeypatch.delitem(sys.modules, "obsflow_tasks.census")
    _second_run(s3, work, "run-2", 60000)
    document = documents.get_json(s3, work, layout.run_document_key("run-2"))
    documents.put_json(s3, work, layout.run_document_key("run-2"), {**document, "task_image": f"path:{tmp_path}"})
    # When run-2 runs observe_stats with that task image
    assert main(["frame-census", "observe_stats", "--run-id", "run-2"]) == 0
    record = documents.get_json(s3, work, layout.task_record_key("run-2", "observe_stats"))
    # Then the developer's code ran (not reused from run-1: the image is part of the digest)
    assert "reused_from" not in record
    written = json.loads(s3.get_object(Bucket=work, Key=record["outputs"][0]["key"])["Body"].read())
    assert written["origin"] == "developer copy"
    # And a path without the package fails as a configuration error
    documents.put_json(s3, work, layout.run_document_key("run-2"), {**document, "task_image": "path:/nonexistent"})
    assert main(["frame-census", "observe_stats", "--run-id", "run-2", "--force"]) == 2


def test_every_job_records_what_it_used_beside_the_runs_task_records(run):
    s3, work = run
    # When the inventory task runs, then runs again (it finds itself done: a job that still ran, and was billed)
    assert main(["frame-census", "inventory", "--run-id", "run-1"]) == 0
    assert main(["frame-census", "inventory", "--run-id", "run-1"]) == 0
    # Then each job recorded its usage: its task, resource class, seconds and the AWS requests it made
    keys = sorted(documents.keys(s3, work, layout.usage_prefix("run-1")))
    entries = [documents.get_json(s3, work, key) for key in keys]
    assert len(entries) == 2 and all(k.startswith("runs/run-1/usage/job-inventory-") for k in keys)
    for entry in entries:
        assert (entry["kind"], entry["task"], entry["resource_class"], entry["chunk"], entry["manual"]) == \
            ("job", "inventory", "default", None, False)
        assert entry["seconds"] > 0 and entry["exit_code"] == 0 and entry["pull_s"] is None  # no Fargate here
        assert entry["s3_get_requests"] > 0 and entry["s3_put_requests"] > 0 and entry["dynamodb_requests"] == 0
    # And the job that ran the task wrote its outputs and records (and counted this record's own write)
    ran = max(entries, key=lambda e: e["s3_bytes_written"])
    assert ran["s3_put_requests"] >= 3 and ran["s3_bytes_written"] > 1000


def test_documents_read_side_by_side_come_in_order_and_count_for_the_reader(run):
    # Given 25 small documents (a run's usage records), and a reader with its meter
    from obsflow import aws, metering

    _, work = run
    s3 = aws.client(Settings(stage="rt"), "s3")
    keys = [f"runs/run-1/usage/job-{i:03d}.json" for i in range(25)]
    for i, key in enumerate(keys):
        documents.put_json(s3, work, key, {"n": i})
    # When they are read side by side
    with metering.metering() as meter:
        found = documents.get_json_many(s3, work, keys)
    # Then they come in order, and every read counts for the reader, whatever thread made it
    assert [d["n"] for d in found] == list(range(25)) and meter.entry()["s3_get_requests"] == 25
