"""Reprocessing and campaigns end to end on the local stack, driven from the CLI as an operator would."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from obsflow import discovery, tables
from obsflow.cli import main as cli
from obsflow.local.stack import LocalStack
from obsflow.runs import documents, layout
from obsflow.simulate import simulate_candidate
from obsflow.tables import campaigns, datasets, frames, recipe_instances, runs, tickets
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


def test_a_qc_filtered_selection_lists_plans_and_runs_only_the_datasets_whose_qc_values_pass(stack, tmp_path):
    # (first: the campaign it runs copies the May dataset only, which the later tests' plans leave out)
    originals = {name: dataset_of(name) for name in ("rp_nov", "rp_may", "rp_other")}
    # Given the QC values each dataset recorded when catalogued (from its census.json)
    level = {d.dataset_id: d.qc["observe_mean_above_dark"] for d in originals.values()}
    assert all(d.qc["observe_frames"] == 3.0 for d in originals.values()) and len(set(level.values())) == 3
    lowest, middle, _ = sorted(level.values())
    # When the datasets are listed with a QC filter
    listed = obsflow(stack, "datasets", "list", "--where", f"qc.observe_mean_above_dark<{middle!r}",
                     "--where", "qc.observe_frames=3")
    rows = json.loads(obsflow(stack, "datasets", "list", "--where", f"qc.observe_mean_above_dark<{middle!r}",
                              "--where", "qc.observe_frames=3", "--json"))
    # Then exactly the one below the threshold is listed, with the filtered value shown
    [low] = [i for i, v in level.items() if v == lowest]
    assert {r["dataset_id"] for r in rows} & set(level) == {low} and "QC.OBSERVE_MEAN_ABOVE_DARK" in listed
    # And an unknown metric is refused naming those recorded, and a filter that is none, saying the syntax
    unknown = CliRunner().invoke(cli, ["--endpoint-url", stack.endpoint_url, "--stage", stack.settings.stage,
                                       "datasets", "list", "--where", "qc.seeing<1"])
    assert unknown.exit_code == 1 and "no dataset has QC value seeing" in unknown.output
    assert "observe_mean_above_dark" in unknown.output
    malformed = CliRunner().invoke(cli, ["--endpoint-url", stack.endpoint_url, "--stage", stack.settings.stage,
                                         "datasets", "list", "--where", "qc.seeing<nan"])
    assert malformed.exit_code == 2 and "qc.METRIC<VALUE" in malformed.output
    # When a plan over all three is narrowed to those at or above the threshold
    listed_file = tmp_path / "all.json"
    listed_file.write_text(json.dumps(sorted(level)))
    plan = json.loads(obsflow(stack, "reprocess", "plan", "--datasets", str(listed_file), "--where",
                              f"qc.observe_mean_above_dark>={middle!r}", "--json"))
    # Then it lists the other two only
    assert sorted(i["dataset_id"] for i in plan["items"]) == sorted(set(level) - {low})
    # When a campaign selects the ACTIVE datasets whose value is the May dataset's (two range filters ANDed)
    may = originals["rp_may"]
    value = level[may.dataset_id]
    obsflow(stack, "campaigns", "create", "qc-may", "--recipe", "frame-census@1.0.0", "--where", "status=ACTIVE",
            "--where", f"qc.observe_mean_above_dark>={value!r}", "--where", f"qc.observe_mean_above_dark<={value!r}",
            "--reason", "the census again where the light level is the May one's")
    # Then its DRAFT previews one instance, and once run it made one new version of the May product only
    assert len(json.loads(obsflow(stack, "campaigns", "show", "qc-may", "--json"))["preview"]["instances"]) == 1
    obsflow(stack, "campaigns", "start", "qc-may")
    campaign_done("qc-may")
    [made] = json.loads(obsflow(stack, "datasets", "list", "--campaign", "qc-may", "--json"))
    assert made["product_id"] == may.product_id
    assert datasets.get(made["dataset_id"]).qc["observe_mean_above_dark"] == value


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
    assert "3 task(s) reused" in shown and "1 Fargate job(s)" in shown  # summary's: the others started none


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


def as_role(stack, role: str, *args, proposal: str | None = None):
    """The CLI as the person holding ``role`` (OBSFLOW_ROLE) would run it."""
    environment = {"OBSFLOW_ROLE": role, "OBSFLOW_PROPOSAL": proposal}
    return CliRunner().invoke(cli, ["--endpoint-url", stack.endpoint_url, "--stage", stack.settings.stage, *args],
                              env=environment)


def test_a_developer_is_refused_a_production_decision_and_production_campaigns(stack, tmp_path):
    # Given two versions' worth of ACTIVE datasets, and a commissioning campaign an operator defined
    nov, may = dataset_of("rp_nov"), dataset_of("rp_may")
    before = {d: (datasets.get(d).status, datasets.get(d).decisions) for d in (nov.dataset_id, may.dataset_id)}
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps(["rp_other_observe", "rp_other_dark"]))
    obsflow(stack, "campaigns", "create", "ops-census", "--recipe", "frame-census", "--ids", str(ids), "--reason", "x")
    # When a developer decides a production dataset
    refused = as_role(stack, "developer", "datasets", "decide", nov.dataset_id, "--deprecate", may.dataset_id,
                      "--reason", "mine is better")
    # Then it is refused, naming the role and who may, and nothing changed
    assert refused.exit_code == 1, refused.output
    assert "role developer may not `obsflow datasets decide`: only data-quality may" in refused.output
    assert {d: (datasets.get(d).status, datasets.get(d).decisions) for d in before} == before
    # And a developer may neither create nor start a production campaign, but may create a developer one
    refused = as_role(stack, "developer", "campaigns", "create", "not-mine", "--type", "reprocessing", "--recipe",
                      "frame-census", "--ids", str(ids), "--reason", "x")
    assert refused.exit_code == 1 and "developer campaigns only (--type developer)" in refused.output
    assert campaigns.get("not-mine") is None
    refused = as_role(stack, "developer", "campaigns", "start", "ops-census")
    assert refused.exit_code == 1 and "campaign ops-census is a commissioning campaign" in refused.output
    assert campaigns.get("ops-census").status == "DRAFT"
    made = as_role(stack, "developer", "campaigns", "create", "my-census", "--type", "developer", "--recipe",
                   "frame-census", "--ids", str(ids), "--reason", "trying the census")
    assert made.exit_code == 0 and campaigns.get("my-census").campaign_type == "developer"
    obsflow(stack, "campaigns", "cancel", "ops-census", "--reason", "only for this test")
    obsflow(stack, "campaigns", "cancel", "my-census", "--reason", "only for this test")


def test_a_pi_lists_and_shows_its_own_proposals_and_released_datasets_only(stack):
    # Given datasets of pid_1_23 (rp_nov, rp_may) and of pid_7_7 (rp_other)
    nov, other = dataset_of("rp_nov"), dataset_of("rp_other")
    # When pid_7_7's PI lists the datasets
    listed = as_role(stack, "pi-read", "datasets", "list", "--json", proposal="pid_7_7")
    # Then each is its proposal's or released, and rp_other's is there
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert other.dataset_id in {r["dataset_id"] for r in rows}
    assert all(r["proposal_id"] == "pid_7_7" or not r.get("embargo") for r in rows)
    # And another proposal's dataset under embargo is neither listed nor shown
    shown = as_role(stack, "pi-read", "datasets", "show", nov.dataset_id, proposal="pid_7_7")
    if datasets.get(nov.dataset_id).embargo:
        assert nov.dataset_id not in {r["dataset_id"] for r in rows}
        assert shown.exit_code == 1 and f"{nov.dataset_id} is proposal pid_1_23's, under embargo" in shown.output
    else:
        assert shown.exit_code == 0
    # And a PI may not look at runs at all
    refused = as_role(stack, "pi-read", "runs", "list", proposal="pid_7_7")
    assert refused.exit_code == 1 and "role pi-read may not `obsflow runs list`" in refused.output


def test_a_large_campaign_waits_for_approval_then_runs(stack, tmp_path):
    ssm = client(stack, "ssm")
    # Given the stage sets its approval size at 0 CPU-hours (as a deployment would, in its settings)
    discovery.publish(stack.settings.model_copy(update={"campaign_approval_cpu_hours": 0.0}), ssm)
    try:
        ids = tmp_path / "ids.json"
        ids.write_text(json.dumps(["rp_may_observe", "rp_may_dark"]))
        obsflow(stack, "campaigns", "create", "big-census", "--recipe", "frame-census@1.0.0", "--ids", str(ids),
                "--reason", "a census over the May frames")
        # When it is started
        printed = obsflow(stack, "campaigns", "start", "big-census")
        # Then it waits for approval, saying why and how, and its runs are held with the reason
        assert "campaign big-census is AWAITING_APPROVAL" in printed and "no run of it starts until" in printed
        held = wait_for(lambda: next((r for r in runs.all_runs() if r.campaign == "big-census" and
                                      "is AWAITING_APPROVAL" in (r.waiting_reason or "")), None),
                        "its run held for approval")
        assert held.status == "READY" and "CPU-hours, above the 0 set" in held.waiting_reason
        assert "`obsflow campaigns approve big-census --reason TEXT`" in held.waiting_reason
        [row] = [c for c in json.loads(obsflow(stack, "campaigns", "list", "--json")) if c["name"] == "big-census"]
        assert row["status"] == "AWAITING_APPROVAL" and "data-quality or operator role" in row["approval_note"]
        time.sleep(1.5)  # a few submitter passes
        assert runs.get(held.run_id).status == "READY"
        # When a developer tries to approve it, Then it is refused
        refused = as_role(stack, "developer", "campaigns", "approve", "big-census", "--reason", "go")
        assert refused.exit_code == 1 and "only data-quality or operator may" in refused.output
        # When data quality approves it
        approved = as_role(stack, "data-quality", "campaigns", "approve", "big-census", "--reason", "worth the hours")
        assert approved.exit_code == 0, approved.output
        assert "campaign big-census is RUNNING" in approved.output and "(data-quality) at " in approved.output
        # Then it runs to the end, and who approved it, when and why are kept and shown
        campaign_done("big-census")
        shown = json.loads(obsflow(stack, "campaigns", "show", "big-census", "--json"))
        assert shown["approval"]["approved_as"] == "data-quality" and shown["approval"]["reason"] == "worth the hours"
        assert shown["approval_note"].startswith(f"approved by {shown['approval']['approved_by']} (data-quality)")
        assert [e["status"] for e in shown["history"]][:3] == ["DRAFT", "AWAITING_APPROVAL", "RUNNING"]
        # And approving it again changes nothing
        again = as_role(stack, "operator", "campaigns", "approve", "big-census", "--reason", "me too")
        assert again.exit_code == 0 and campaigns.get("big-census").approval == shown["approval"]
    finally:
        discovery.publish(stack.settings, ssm)


def test_two_versions_of_a_level_1_product_compared_after_a_reprocessing_with_lossy_compression(stack, tmp_path):
    import http.client

    from obsflow.monitor.reads import StageReads
    from obsflow.monitor.server import Monitor

    # Given a VBI observation of pid_1_23 processed to Level 1 (lossless), on its master calibrations
    upload(stack, simulate_candidate("rp_vbi", seed=5, start=dt.datetime(2026, 11, 21, 18), proposal_id="pid_1_23",
                                     n_dark=2, n_gain=2, n_observe=3, shape=(64, 64)))
    old = wait_for(lambda: next((datasets.get(r.dataset_id) for r in runs.all_runs() if r.candidate_id == "rp_vbi"
                                 and r.recipe == "vbi-l1" and r.status == "SUCCEEDED" and r.dataset_id), None),
                   "the Level 1 dataset of rp_vbi", timeout_s=300)
    # And its reprocessing with lossy L1 compression (l1_quantize_level 4), a new version of the product
    listed = tmp_path / "l1.json"
    listed.write_text(json.dumps([old.dataset_id]))
    plan = json.loads(obsflow(stack, "reprocess", "plan", "--datasets", str(listed), "--set", "l1_quantize_level=4",
                              "--json"))
    obsflow(stack, "reprocess", "start", plan["plan_id"], "--name", "lossy-l1", "--reason", "smaller L1 files")
    campaign_done("lossy-l1")
    [new] = json.loads(obsflow(stack, "datasets", "list", "--campaign", "lossy-l1", "--json"))
    # When data quality compares the two versions
    result = json.loads(obsflow(stack, "datasets", "compare", old.dataset_id, new["dataset_id"], "--json"))
    # Then they are of one product, and the option that changed is the one difference of configuration
    assert result["same_product"] and new["product_id"] == old.product_id
    assert result["configuration"] == [{"name": "options.l1_quantize_level", "a": 0, "b": 4}]
    # And it was made from the same observe frames and the same master calibrations
    assert result["inputs"]["added"] == result["inputs"]["removed"] == [] and result["inputs"]["unchanged"] == 3
    assert [u["used_by"] for u in result["upstream"]] == ["both"]
    # And each QC value of the quality metrics is there for both, with B - A
    qc = {row["name"]: row for row in result["qc"]}
    assert {"light level, median", "bad pixels", "median_light_level"} <= qc.keys()
    assert all(row["a"] is not None and row["b"] is not None for row in qc.values())
    assert qc["median_light_level"]["difference"] == pytest.approx(0, abs=1e-6)  # measured before compression
    # And every L1 frame is matched by its observe frame, its pixels changed by the quantization: a little
    observe = sorted(f.file_id for f in frames.frames_of_op("rp_vbi_observe"))
    assert sorted(r["frame"] for r in result["frames"]) == observe and result["frames_only_in_a"] == []
    assert all(r["max_abs"] > 0 and r["rms"] > 0 and 0 < r["relative"] < 0.05 for r in result["frames"]), result
    assert result["frames_summary"]["differing"] == 3
    # And the command says it for people, with the decision still to take
    printed = obsflow(stack, "datasets", "compare", old.dataset_id, new["dataset_id"])
    assert "options.l1_quantize_level  0  4" in printed and "frames: 3 compared, 0 identical, 3 differing" in printed
    assert f"obsflow datasets decide {new['dataset_id']} --deprecate {old.dataset_id}" in printed
    # And the decision ticket links the comparison, which the monitor's page shows
    ticket = tickets.get(f"TKT-{new['dataset_id']}-decision")
    path = f"/compare/{old.dataset_id}/{new['dataset_id']}"
    assert ticket.links == {f"compare with {old.dataset_id}": path} and "`obsflow datasets compare" in \
        ticket.suggested_action
    served = Monitor(StageReads(stack.settings), stack.settings.stage, port=0).start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=60)
        connection.request("GET", path, headers={"Host": f"127.0.0.1:{served.port}"})
        response = connection.getresponse()
        page = response.read().decode()
    finally:
        served.stop()
    assert response.status == 200 and "options.l1_quantize_level" in page and observe[0] in page
    assert "3 compared, 0 identical, 3 differing" in page
