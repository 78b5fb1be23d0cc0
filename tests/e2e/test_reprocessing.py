"""Reprocessing and campaigns end to end on the local stack, driven from the CLI as an operator would."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from obsflow import tables
from obsflow.cli import main as cli
from obsflow.local.stack import LocalStack
from obsflow.runs import documents, layout
from obsflow.simulate import simulate_candidate
from obsflow.tables import campaigns, datasets, frames, recipe_instances, runs
from tests.e2e.test_runs import client, upload, wait_for

pytestmark = pytest.mark.e2e
SHIPPED = Path(__file__).resolve().parents[2] / "shared" / "obsflow" / "recipes" / "shipped" / "recipes"
CENSUS = {"n_dark": 2, "n_gain": 1, "n_observe": 3, "shape": (16, 16), "recipe": "frame-census"}


@pytest.fixture(scope="module")
def stack():
    """Given three frame-census datasets: rp_nov (observed 2026-11-20), rp_may (2026-05-01) and rp_other of
    another proposal."""
    with LocalStack(port=0, stage="rp", log_level="ERROR", submit_interval_s=0.5,
                    capacity={"default": 2, "high-memory": 1, "multi-core": 2}) as local:
        tables.bind(local.settings)
        for name, seed, start, proposal in (("rp_nov", 1, dt.datetime(2026, 11, 20, 18), "pid_1_23"),
                                            ("rp_may", 2, dt.datetime(2026, 5, 1, 18), "pid_1_23"),
                                            ("rp_other", 3, dt.datetime(2026, 11, 20, 19), "pid_7_7")):
            upload(local, simulate_candidate(name, seed=seed, start=start, proposal_id=proposal, **CENSUS))
        for name in ("rp_nov", "rp_may", "rp_other"):
            wait_for(lambda: next((r for r in runs.all_runs() if r.candidate_id == name and r.status == "SUCCEEDED"),
                                  None), f"the dataset of {name}")
        yield local


def obsflow(stack, *args) -> str:
    result = CliRunner().invoke(cli, ["--endpoint-url", stack.endpoint_url, "--stage", stack.settings.stage, *args])
    assert result.exit_code == 0, result.output
    return result.output


def dataset_of(candidate_id: str):
    [run] = [r for r in runs.all_runs() if r.candidate_id == candidate_id and r.status == "SUCCEEDED" and not r.campaign]
    return datasets.get(run.dataset_id)


def campaign_done(name: str, state: str = "SUCCEEDED"):
    def settled():
        item = campaigns.get(name)
        states = [recipe_instances.get(i).state for i in item.instance_ids]
        return states if states and all(s == state for s in states) else None
    return wait_for(settled, f"campaign {name}'s instances {state}")


def task_records(stack, run_id: str) -> dict[str, dict]:
    s3, work = client(stack, "s3"), stack.settings.bucket_name("work")
    return {t: documents.get_json(s3, work, layout.task_record_key(run_id, t))
            for t in ("inventory", "dark_level", "observe_stats", "summary")}


def test_a_changed_parameter_is_planned_first_then_reprocessed_reusing_what_it_does_not_reach(stack, tmp_path):
    before = {r.run_id for r in runs.all_runs()}
    nov, may = dataset_of("rp_nov"), dataset_of("rp_may")
    # Given saturation_level changed for observations from 2026-06-01 on
    obsflow(stack, "recipes", "set-value", "frame-census", "saturation_level", "63000", "--effective-from",
            "2026-06-01", "--reason", "new camera firmware")
    # When the plan is made
    plan = json.loads(obsflow(stack, "reprocess", "plan", "--parameter", "saturation_level", "--json"))
    # Then it lists exactly the November datasets (May's value is unchanged), reusing inventory and dark_level
    assert sorted(i["dataset_id"] for i in plan["items"]) == sorted([nov.dataset_id, dataset_of("rp_other").dataset_id])
    item = next(i for i in plan["items"] if i["dataset_id"] == nov.dataset_id)
    assert item["configuration_changes"] == {"saturation_level": [62000, 63000]}
    assert item["tasks_reused"] == ["inventory", "dark_level"] and item["tasks_rerun"] == ["observe_stats", "summary"]
    assert may.dataset_id not in {i["dataset_id"] for i in plan["items"]} and plan["totals"]["usd"] > 0
    # And nothing ran
    assert {r.run_id for r in runs.all_runs()} == before
    # When it is started as a campaign
    printed = obsflow(stack, "reprocess", "start", plan["plan_id"], "--name", "sat-63000", "--reason", "firmware")
    assert "campaign sat-63000 is RUNNING: 2 instance(s)" in printed
    campaign_done("sat-63000")
    # Then each new dataset has its product's id, belongs to the campaign, and the old ones stay ACTIVE
    new = json.loads(obsflow(stack, "datasets", "list", "--campaign", "sat-63000", "--json"))
    assert len(new) == 2 and {d["product_id"] for d in new} == {nov.product_id, dataset_of("rp_other").product_id}
    assert datasets.get(nov.dataset_id).status == "ACTIVE"
    # And its run reused inventory and dark_level from the first run, and re-ran the tasks the change reaches
    [new_nov] = [d for d in new if d["product_id"] == nov.product_id]
    records = task_records(stack, new_nov["run_id"])
    assert {t for t, r in records.items() if "reused_from" in r} == {"inventory", "dark_level"}
    assert records["inventory"]["reused_from"]["run_id"] == nov.run_id
    assert runs.get(new_nov["run_id"]).configuration["parameters"]["saturation_level"] == 63000
    # And the campaign shows its progress, outputs, QC metrics and cost
    shown = json.loads(obsflow(stack, "campaigns", "show", "sat-63000", "--json"))
    assert shown["progress"] == {"SUCCEEDED": 2} and shown["cost"]["tasks_reused"] == 4 and shown["cost"]["usd"] > 0
    assert shown["metrics"]["observe_frames"] == {"datasets": 2, "min": 3.0, "median": 3.0, "max": 3.0}
    # When data quality decides
    obsflow(stack, "datasets", "decide", new_nov["dataset_id"], "--deprecate", nov.dataset_id, "--reason", "firmware")
    assert datasets.get(nov.dataset_id).status == "DEPRECATED"


def test_a_new_version_changing_only_the_last_task_re_runs_only_it(stack, tmp_path):
    may = dataset_of("rp_may")
    # Given frame-census 1.2.0, whose only change is in its last task, registered on the running stack
    definition = yaml.safe_load((SHIPPED / "frame-census-1.0.0.yaml").read_text())
    definition["version"] = "1.2.0"
    definition["tasks"][-1]["description"] = "one JSON product with the census, now with a better summary"
    path = tmp_path / "frame-census-1.2.0.yaml"
    path.write_text(yaml.safe_dump(definition))
    obsflow(stack, "recipes", "register", str(path))
    listed = tmp_path / "datasets.json"
    listed.write_text(json.dumps([may.dataset_id]))
    # When the May dataset is planned on it
    plan = json.loads(obsflow(stack, "reprocess", "plan", "--recipe", "frame-census@1.2.0", "--datasets", str(listed),
                              "--json"))
    # Then only summary re-runs
    [item] = plan["items"]
    assert (item["recipe_from"], item["recipe_to"]) == ("frame-census@1.0.0", "frame-census@1.2.0")
    assert item["tasks_rerun"] == ["summary"] and item["tasks_reused"] == ["inventory", "dark_level", "observe_stats"]
    # And when it runs, it reuses exactly those
    obsflow(stack, "reprocess", "start", plan["plan_id"], "--name", "census-1-2", "--reason", "better summary")
    campaign_done("census-1-2")
    [new] = json.loads(obsflow(stack, "datasets", "list", "--campaign", "census-1-2", "--json"))
    records = task_records(stack, new["run_id"])
    assert {t for t, r in records.items() if "reused_from" not in r} == {"summary"}
    shown = obsflow(stack, "runs", "show", new["run_id"])
    assert "3 task(s) reused" in shown and "Lambda invocations" in shown


def test_a_campaign_over_an_id_set_with_a_tag_excluding_some_frames_processes_exactly_the_rest(stack, tmp_path):
    # Given a frame tagged as bad, and an ID set naming the OPs of rp_nov
    observe = sorted(f.file_id for f in frames.frames_of_op("rp_nov_observe"))
    dark = sorted(f.file_id for f in frames.frames_of_op("rp_nov_dark"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([observe[1]]))
    assert "tagged 1 id(s)" in obsflow(stack, "tags", "add", "bad-seeing", "--ids", str(bad), "--reason", "r0 2 cm")
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps({"ops": ["rp_nov_observe", "rp_nov_dark"]}))
    # When a campaign runs frame-census on them without the tagged frame
    obsflow(stack, "campaigns", "create", "good-frames", "--recipe", "frame-census", "--ids", str(ids),
            "--exclude-tag", "bad-seeing", "--reason", "census of the good frames")
    obsflow(stack, "campaigns", "start", "good-frames")
    campaign_done("good-frames")
    # Then its one dataset was made from exactly the other frames
    [made] = json.loads(obsflow(stack, "datasets", "list", "--campaign", "good-frames", "--json"))
    used = json.loads(obsflow(stack, "frames", "list", "--used-by", made["dataset_id"], "--json"))
    assert sorted(f["file_id"] for f in used) == sorted([*dark, observe[0], observe[2]])
    assert "bad-seeing" in obsflow(stack, "tags", "list")


def test_a_campaign_pauses_itself_after_m_failures_and_its_other_runs_wait(stack, tmp_path):
    # Given a campaign over dark frames only (frame-census fails without observe frames), of two proposals
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps(["rp_nov_dark", "rp_other_dark"]))
    obsflow(stack, "campaigns", "create", "darks-only", "--recipe", "frame-census@1.0.0", "--ids", str(ids),
            "--max-concurrent", "1", "--pause-after", "1", "--reason", "what happens without observe frames")
    # When it starts
    obsflow(stack, "campaigns", "start", "darks-only")
    # Then one run fails, the campaign pauses itself with a ticket, and the other run waits saying why
    wait_for(lambda: campaigns.get("darks-only").status == "PAUSED", "the campaign to pause itself")
    item = campaigns.get("darks-only")
    assert "after 1 failed instance(s)" in item.status_reason
    tickets = json.loads(obsflow(stack, "tickets", "list", "--json"))
    assert any(t["kind"] == "review:campaign" and "darks-only" in t["summary"] for t in tickets)
    waiting = wait_for(lambda: next((r for r in runs.all_runs() if r.campaign == "darks-only" and r.status == "READY"
                                     and "campaign darks-only is PAUSED" in (r.waiting_reason or "")), None),
                       "the other run to wait, saying the campaign is paused")
    time.sleep(1.5)
    assert runs.get(waiting.run_id).status == "READY"
    shown = obsflow(stack, "campaigns", "show", "darks-only")
    assert "ERROR" in shown and "PAUSED" in shown


def test_a_developer_rerun_keeps_every_intermediate_under_its_prefix_tells_no_pi_and_is_swept(stack):
    nov = dataset_of("rp_may")
    status = nov.status
    data = stack.settings.bucket_name("data")
    s3 = client(stack, "s3")
    before = {o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=data)
              for o in page.get("Contents", [])}
    # When a developer reruns a dataset from observe_stats on, with another saturation level
    printed = obsflow(stack, "runs", "rerun", nov.dataset_id, "--keep-intermediates", "--from-task", "observe_stats",
                      "--set", "saturation_level=50000", "--retention-days", "2")
    name = printed.split("developer campaign ")[1].split()[0]
    campaign_done(name)
    [made] = json.loads(obsflow(stack, "datasets", "list", "--campaign", name, "--json"))
    # Then the dataset is a DEVELOPMENT one under dev/<campaign>/, and nothing else in the data bucket changed
    assert made["status"] == "DEVELOPMENT" and made["prefix"].startswith(f"dev/{name}/pid_1_23/")
    after = {o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=data)
             for o in page.get("Contents", [])}
    assert after - before and all(key.startswith(made["prefix"]) for key in after - before)
    assert datasets.get(nov.dataset_id).status == status
    # And its run reused what is above observe_stats, ran the rest, and lists every output with where it is kept
    outputs = json.loads(obsflow(stack, "runs", "outputs", made["run_id"], "--json"))
    assert {o["task"]: bool(o["reused_from"]) for o in outputs} == {
        "inventory": True, "dark_level": True, "observe_stats": False, "summary": False}
    assert all(o["kept"] and o["kept"].startswith(f"s3://{data}/{made['prefix']}") for o in outputs)
    assert {o["name"] for o in outputs} == {"inventory.json", "dark_level.json", "observe_stats.json", "census.json"}
    # And no PI was told: the execution never entered NotifyPI
    sfn = client(stack, "stepfunctions")
    events = sfn.get_execution_history(executionArn=runs.get(made["run_id"]).execution_arn, maxResults=1000)["events"]
    entered = {e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")}
    assert "ForThePI" in entered and "NotifyPI" not in entered
    # When the sweep runs after its retention, its objects are gone and it is EXPIRED
    swept = obsflow(stack, "campaigns", "sweep", "--now", (dt.datetime.now(dt.timezone.utc)
                                                          + dt.timedelta(days=3)).isoformat())
    assert made["dataset_id"] in swept
    assert datasets.get(made["dataset_id"]).status == "EXPIRED"
    assert not s3.list_objects_v2(Bucket=data, Prefix=made["prefix"]).get("Contents")


def test_a_developer_task_image_runs_its_jobs_on_a_revision_of_its_own(stack, tmp_path):
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps(["rp_other_observe", "rp_other_dark"]))
    # When a developer campaign with another task image runs
    obsflow(stack, "campaigns", "create", "image-dev", "--type", "developer", "--recipe", "frame-census", "--ids",
            str(ids), "--task-image", "registry.example/obsflow-tasks:dev-42", "--reason", "the new image")
    obsflow(stack, "campaigns", "start", "image-dev")
    campaign_done("image-dev")
    # Then Batch ran its jobs on <stage job definition>-dev revisions with that image, not on the stage's
    batch = client(stack, "batch")
    [run] = [r for r in runs.all_runs() if r.campaign == "image-dev"]
    jobs = [j for rc in ("default", "multi-core") for status in ("SUCCEEDED",)
            for j in batch.list_jobs(jobQueue=stack.settings.job_queue_name(rc), jobStatus=status)["jobSummaryList"]
            if j["jobName"].startswith(run.run_id)]
    described = batch.describe_jobs(jobs=[j["jobId"] for j in jobs])["jobs"]
    assert len(described) == 4 and all("-dev:" in job["jobDefinition"] for job in described)
    definitions = {d["jobDefinitionName"]: d for d in batch.describe_job_definitions(status="ACTIVE")["jobDefinitions"]}
    assert definitions[stack.settings.job_definition_name("default") + "-dev"]["containerProperties"]["image"] == \
        "registry.example/obsflow-tasks:dev-42"
    assert definitions[stack.settings.job_definition_name("default")]["containerProperties"]["image"] != \
        "registry.example/obsflow-tasks:dev-42"
