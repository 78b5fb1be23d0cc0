"""Reprocessing plans and campaigns on fakes: what a change selects, what re-runs, the blast radius."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from obsflow.errors import NotFound
from obsflow.recipes.model import DatedValue
from obsflow.runs import layout
from obsflow.runs.campaigns import CampaignService
from obsflow.runs.digests import inputs_digest, task_digests
from obsflow.runs.reprocessing import Change
from obsflow.runs.service import NotAllowed
from tests.unit.fakes import fake_provenance
from tests.unit.test_catalogue import complete
from tests.unit.test_run_service import T0, add_candidate, make_service


class ChangedValue:
    """The recipe book after `obsflow recipes set-value`: one parameter has a new value from a date on."""

    def __init__(self, inner, parameter: str, value, effective_from: dt.date):
        self.inner, self.parameter, self.value, self.effective_from = inner, parameter, value, effective_from

    def get(self, name, version=None):
        recipe = self.inner.get(name, version)
        parameters = tuple(
            p.model_copy(update={"values": (*p.values, DatedValue(effective_from=self.effective_from, value=self.value))})
            if p.name == self.parameter else p for p in recipe.parameters)
        return recipe.model_copy(update={"parameters": parameters})

    def __getattr__(self, name):
        return getattr(self.inner, name)


def processed(service, *candidates) -> dict[str, str]:
    """Each candidate processed once: candidate -> dataset id."""
    report = service.submit()
    return {service.store.runs[r].candidate_id: complete(service, r) for r in report.started}


@pytest.fixture
def night():
    """Given two frame-census datasets: c_nov observed 2026-11-20, c_may 2026-05-01 (another saturation level)."""
    service = make_service(capacity=4)
    add_candidate(service, "c_nov", observe_frames=3)
    add_candidate(service, "c_may", date_obs="2026-05-01T21:00:00")
    datasets = processed(service)
    assert set(datasets) == {"c_nov", "c_may"}
    return service, datasets


def test_a_plan_for_a_changed_parameter_lists_exactly_the_affected_datasets_and_runs_nothing(night):
    service, datasets = night
    runs_before = dict(service.store.runs)
    # Given saturation_level changed for observations from 2026-06-01 on, and inventory's outputs still recorded
    service.recipes = ChangedValue(service.recipes, "saturation_level", 63000, dt.date(2026, 6, 1))
    run = service.store.runs[service.store.datasets[datasets["c_nov"]].run_id]
    document = service.documents.buckets["work"][run.input_dataset_key]
    recipe = service.recipes.get("frame-census", "1.0.0")
    digests = task_digests(recipe, run.configuration, inputs_digest(document), "0.1.0", "any")
    service.documents.buckets["work"][layout.task_output_record_key(digests["inventory"])] = {"outputs": []}
    # When the plan is made
    plan = CampaignService(service, fake_provenance(service)).planner.plan(Change(parameter="saturation_level"), "dq")
    # Then it names only the November dataset, with the value's change, and what re-runs and is reused
    [item] = plan["items"]
    assert item["dataset_id"] == datasets["c_nov"]
    assert item["configuration_changes"] == {"saturation_level": [62000, 63000]}
    assert item["tasks_reused"] == ["inventory"] and "observe_stats" in item["tasks_rerun"]
    assert plan["totals"]["cpu_hours"] > 0 and plan["totals"]["usd"] > 0
    # And nothing ran, and the plan is saved under its id (the same plan asked again has the same id)
    assert service.store.runs == runs_before
    assert service.documents.buckets["work"][f"plans/{plan['plan_id']}.json"]["items"] == plan["items"]
    assert CampaignService(service, fake_provenance(service)).planner.plan(Change(parameter="saturation_level"), "dq")["plan_id"] == plan["plan_id"]


def test_starting_a_plan_makes_a_new_dataset_of_the_same_product_and_both_stay_active(night):
    service, datasets = night
    service.recipes = ChangedValue(service.recipes, "saturation_level", 63000, dt.date(2026, 6, 1))
    campaigns = CampaignService(service, fake_provenance(service))
    plan = campaigns.planner.plan(Change(parameter="saturation_level"), "dq")
    # When it is started as a campaign (twice: the second changes nothing) and its run completes
    for _ in range(2):
        campaign = campaigns.start_plan(plan["plan_id"], "sat-63000", "dq", "new saturation level")
    [copy_id] = campaign.instance_ids
    [run_id] = service.submit().started
    run = service.store.runs[run_id]
    assert run.campaign == "sat-63000" and run.configuration["parameters"]["saturation_level"] == 63000
    new = complete(service, run_id)
    # Then the new dataset has the old one's product, belongs to the campaign, and both are ACTIVE
    old_dataset, new_dataset = service.store.datasets[datasets["c_nov"]], service.store.datasets[new]
    assert new_dataset.product_id == old_dataset.product_id and new_dataset.campaign == "sat-63000"
    assert (old_dataset.status, new_dataset.status) == ("ACTIVE", "ACTIVE")
    assert f"TKT-{new}-decision" in service.store.tickets
    detail = campaigns.detail("sat-63000")
    assert detail["progress"] == {"SUCCEEDED": 1} and [o["dataset_id"] for o in detail["outputs"]] == [new]
    assert service.store.instances[copy_id].campaign == "sat-63000"


def test_a_plan_for_bad_frames_names_the_datasets_made_from_one_and_its_copies_leave_them_out(night):
    service, datasets = night
    campaigns = CampaignService(service, fake_provenance(service))
    # Given nothing marked bad, a plan for bad frames is empty
    assert campaigns.planner.plan(Change(bad_frames=True), "dq")["items"] == []
    # When one of the November observe frames is marked bad after it was processed, and the plan is made
    service.mark_bad_frames(["c_nov_obs-f1"], "dq", "satellite trail")
    plan = campaigns.planner.plan(Change(bad_frames=True), "dq")
    # Then it names the November dataset only, with the bad frame it used
    [item] = plan["items"]
    assert (item["dataset_id"], item["bad_frames"]) == (datasets["c_nov"], ["c_nov_obs-f1"])
    assert plan["change"] == {"bad_frames": True}
    # And started, the copy's input dataset leaves the frame out and says so
    campaign = campaigns.start_plan(plan["plan_id"], "bad-frames-1", "dq", "satellite trail")
    [run_id] = service.submit().started
    document = service.documents.buckets["work"][service.store.runs[run_id].input_dataset_key]
    assert sorted(f["file_id"] for f in document["frames"] if f["role"] == "observe") == ["c_nov_obs-f0", "c_nov_obs-f2"]
    assert document["bad_frames_left_out"] == ["c_nov_obs-f1"] and campaign.instance_ids
    # And another frame of the same dataset marked later makes another plan, not the one started
    service.mark_bad_frames(["c_nov_obs-f2"], "dq", "satellite trail")
    assert campaigns.planner.plan(Change(bad_frames=True), "dq")["plan_id"] != plan["plan_id"]


def test_a_campaign_runs_below_new_observations_at_most_n_at_once_and_pauses_itself_after_m_failures():
    # Given frames of three proposals, and a campaign over them: 1 run at once, paused after 2 failures
    service = make_service(capacity=4)
    for index in range(3):
        add_candidate(service, f"old{index}", status="PLANNED", proposal=f"pid_9_{index}")
    campaigns = CampaignService(service, fake_provenance(service))
    ids = {"ops": [f"old{index}_obs" for index in range(3)]}
    campaigns.create("census-all", "commissioning", "ops", "census of old frames", recipe="frame-census@1.0.0",
                     selection={"ids": ids}, max_concurrent=1, pause_after_failures=2)
    campaign = campaigns.start("census-all", "ops")
    assert len(campaign.instance_ids) == 3  # one per proposal: nothing crosses proposals
    # And a new observation arrives
    add_candidate(service, "fresh")
    # When the submitter runs
    report = service.submit()
    started = [service.store.runs[r] for r in report.started]
    # Then the new observation and one campaign run start; the other campaign runs wait, saying why
    assert sorted(r.candidate_id for r in started) == ["campaign:census-all", "fresh"]
    assert sum("of at most 1 runs going" in why for why in report.waiting.values()) == 2
    # When two campaign runs fail
    for _ in range(2):
        [run] = [r for r in started if r.campaign]
        service.fail_run(run.run_id, {"Error": "TaskFailed"})
        started = [service.store.runs[r] for r in service.submit().started]
    # Then it paused itself with a ticket, and its last run waits for a resume
    campaign = campaigns.require("census-all")
    assert campaign.status == "PAUSED" and "after 2 failed instance(s)" in campaign.status_reason
    assert any(t.kind == "review:campaign" for t in service.store.tickets.values())
    report = service.submit()
    assert not report.started and any("campaign census-all is PAUSED" in w for w in report.waiting.values())
    # And it can be edited while paused, then resumed
    campaigns.edit("census-all", "ops", pause_after_failures=5)
    campaigns.resume("census-all", "ops")
    assert len(service.submit().started) == 1


def test_an_id_set_with_a_tag_excluding_some_frames_selects_exactly_the_rest():
    # Given an observe OP of four frames, one tagged bad-seeing
    service = make_service()
    add_candidate(service, "c1", status="PLANNED", observe_frames=4)
    service.store.add_tags("bad-seeing", ["c1_obs-f2"], "dq", "r0 below 3 cm", service.clock())
    campaigns = CampaignService(service, fake_provenance(service))
    # When a campaign selects the OP and excludes the tag
    campaigns.create("good-seeing", "commissioning", "dq", "good frames only", recipe="frame-census",
                     selection={"ids": {"ids": ["c1_obs"]}, "exclude_tags": ["bad-seeing"]})
    [instance_id] = campaigns.start("good-seeing", "dq").instance_ids
    [run_id] = service.submit().started
    # Then the run's input dataset lists exactly the three other frames
    document = service.documents.buckets["work"][service.store.runs[run_id].input_dataset_key]
    assert sorted(f["file_id"] for f in document["frames"]) == ["c1_obs-f0", "c1_obs-f1", "c1_obs-f3"]
    assert campaigns.require("good-seeing").recipe == "frame-census@1.0.0"


def test_campaign_definitions_are_checked_and_a_running_campaign_is_edited_only_when_paused():
    service = make_service()
    add_candidate(service, "c1", status="PLANNED")
    campaigns = CampaignService(service, fake_provenance(service))
    with pytest.raises(ValueError, match="is not a campaign name"):
        campaigns.create("../x", "commissioning", "me", "why", recipe="frame-census", selection={"ids": ["c1"]})
    with pytest.raises(ValueError, match="needs a reason"):
        campaigns.create("x", "commissioning", "me", " ", recipe="frame-census", selection={"ids": ["c1"]})
    # A DRAFT that could not start is refused when it is created, with the reason, and not recorded
    with pytest.raises(Exception, match="no frame, OP, candidate or dataset: nope"):
        campaigns.create("x", "commissioning", "me", "why", recipe="frame-census", selection={"ids": {"ids": ["nope"]}})
    assert service.store.campaign("x") is None
    campaigns.create("y", "commissioning", "me", "why", recipe="frame-census", selection={"ids": {"ids": ["c1"]}})
    campaigns.start("y", "me")
    with pytest.raises(NotAllowed, match="pause it first"):
        campaigns.edit("y", "me", max_concurrent=3)
    campaigns.pause("y", "me", "night shift")
    with pytest.raises(NotAllowed, match="its priority, recipe went into its instances"):
        campaigns.edit("y", "me", recipe="frame-census@1.0.0", priority=5)
    assert campaigns.edit("y", "me", max_concurrent=3).max_concurrent == 3


def test_a_developer_rerun_is_isolated_quiet_kept_whole_and_swept_after_its_retention_unless_in_use(night):
    service, datasets = night
    campaigns = CampaignService(service, fake_provenance(service))
    # When a developer reruns the November dataset from observe_stats on, with another saturation level
    campaign = campaigns.rerun(datasets["c_nov"], "dev", from_task="observe_stats",
                               overrides={"saturation_level": "50000"}, retention_days=3)
    [run_id] = service.submit().started
    run = service.store.runs[run_id]
    document = service.documents.buckets["work"][layout.run_document_key(run_id)]
    assert document["rerun_from_task"] == "observe_stats" and document["campaign"] == campaign.name
    assert run.configuration["parameters"]["saturation_level"] == 50000
    service.start_run(run_id, "arn")
    service.documents.buckets["work"][layout.task_record_key(run_id, "inventory")] = {
        "task": "inventory", "code_version": "0.1.0", "libraries": {}, "manual": False, "finished_at": "t",
        "outputs": [{"name": "inventory.json", "key": "task-outputs/d1/inventory.json", "sha256": "i", "size": 9,
                     "tags": ["inventory"]}]}
    service.documents.buckets["work"][layout.task_record_key(run_id, "summary")] = {
        "task": "summary", "code_version": "0.1.0", "libraries": {}, "manual": False, "finished_at": "t",
        "outputs": [{"name": "census.json", "key": "task-outputs/d2/census.json", "sha256": "c", "size": 9,
                     "tags": ["product"]}]}
    result = service.catalog(run_id)
    service.finish_run(run_id)
    # Then its dataset lies under dev/<campaign>/, keeps the intermediate, is no product version and tells no PI
    dev = service.store.datasets[result["dataset_id"]]
    assert dev.prefix.startswith(f"dev/{campaign.name}/") and dev.status == "DEVELOPMENT" and not result["notify_pi"]
    assert sorted(f["key"][len(dev.prefix):] for f in dev.files) == ["census.json", "intermediates/inventory/inventory.json"]
    assert f"TKT-{dev.dataset_id}-decision" not in service.store.tickets
    assert service.store.datasets[datasets["c_nov"]].status == "ACTIVE"
    outputs = service.run_outputs(run_id)
    assert {(o["name"], o["kept"] is not None) for o in outputs} == {("inventory.json", True), ("census.json", True)}
    # When another developer campaign's instance takes it as an input, the sweep after its retention refuses
    user = service.store.instances[campaign.instance_ids[0]]
    service.store.add_inputs("ri-user", [type(user.inputs[0])("calibration", "dataset", dev.dataset_id)])
    service.store.instances["ri-user"] = type(user)("ri-user", "c", "pid_1_23", "frame-census", "1.0.0", "2026-11-20",
                                                    T0, campaign="other", state="RUNNING")
    later = dev.expires_at + dt.timedelta(seconds=1)
    assert campaigns.sweep(dev.expires_at - dt.timedelta(days=1))["deleted"] == []
    refused = campaigns.sweep(later)
    assert refused["deleted"] == [] and "ri-user (frame-census@1.0.0, campaign other, RUNNING)" in \
        refused["refused"][dev.dataset_id][0]
    # And once nothing uses it, the sweep deletes its objects and marks it EXPIRED
    service.store.instances["ri-user"].state = "ERROR"
    service.store.instances["ri-user"].dataset_id = None
    del service.store.edges["ri-user"]
    swept = campaigns.sweep(later)
    assert swept["deleted"] == [dev.dataset_id] and service.store.datasets[dev.dataset_id].status == "EXPIRED"
    assert not [k for k in service.documents.buckets["data"] if k.startswith(dev.prefix)]


def test_only_a_developer_campaign_takes_developer_options():
    service = make_service()
    add_candidate(service, "c1", status="PLANNED")
    with pytest.raises(ValueError, match="only a developer campaign"):
        CampaignService(service, fake_provenance(service)).create("x", "commissioning", "me", "why", recipe="frame-census",
                                        selection={"ids": ["c1"]}, task_image="path:/tmp")


def test_a_campaign_over_a_catalogue_query_reprocesses_the_datasets_it_answers(night):
    service, datasets = night
    campaigns = CampaignService(service, fake_provenance(service))
    # When a campaign selects the ACTIVE datasets of frame-census, less one tagged as bad
    service.store.add_tags("bad", [datasets["c_may"]], "dq", "striping", service.clock())
    campaigns.create("all-census", "reprocessing", "dq", "census again", recipe="frame-census@1.0.0",
                     selection={"query": {"recipe": "frame-census", "status": "ACTIVE"}, "exclude_tags": ["bad"]})
    started = campaigns.start("all-census", "dq")
    # Then it copies the instance of exactly the other dataset
    [copy_id] = started.instance_ids
    assert service.store.instances[copy_id].campaign == "all-census"
    original = service.store.datasets[datasets["c_nov"]].instance_id
    assert service.store.instances[copy_id].inputs == service.store.instances[original].inputs
    with pytest.raises(ValueError, match="unknown query filter"):
        campaigns.create("bad-query", "reprocessing", "dq", "x", recipe="frame-census",
                         selection={"query": {"colour": "red"}})
        campaigns.start("bad-query", "dq")


class FakeJobDefinitions:
    def __init__(self):
        self.registered = []

    def register_image(self, image, resource_classes):
        self.registered.append(image)
        return {rc: f"obsflow-unit-task-{rc}-dev:{len(self.registered)}" for rc in resource_classes}


def test_a_developer_task_image_runs_on_its_own_job_definition_revisions_and_production_on_the_stage_s(night):
    service, datasets = night
    definitions = FakeJobDefinitions()
    campaigns = CampaignService(service, fake_provenance(service), definitions)
    # When a developer campaign with another task image starts (twice: registered once)
    campaigns.create("new-image", "developer", "dev", "try the new image", recipe="frame-census",
                     selection={"ids": {"datasets": [datasets["c_nov"]]}}, task_image="registry/obsflow-tasks:dev")
    for _ in range(2):
        campaigns.start("new-image", "dev")
    [run_id] = service.submit().started
    started = service.start_run(run_id, "arn")
    # Then its run's tasks name the campaign's revisions, while a production run names the stage's definitions
    assert definitions.registered == ["registry/obsflow-tasks:dev"]
    assert started["job_definitions"] == {"default": "obsflow-unit-task-default-dev:1",
                                          "high_memory": "obsflow-unit-task-high-memory",
                                          "multi_core": "obsflow-unit-task-multi-core-dev:1"}
    add_candidate(service, "fresh")
    [production] = service.submit().started
    assert service.start_run(production, "arn-2")["job_definitions"]["default"] == "obsflow-unit-task-default"


def test_a_campaign_whose_instances_have_all_ended_is_completed_and_then_accepted_or_rejected_by_data_quality():
    # Given a campaign over two proposals' frames, both runs started
    service, campaigns = census_campaign("census-two", proposals=2)
    first, second = service.submit().started
    # When one succeeds, it is still RUNNING; when the other fails for good, it is COMPLETED, saying how each ended
    complete(service, first)
    assert service.store.campaign("census-two").status == "RUNNING"
    service.start_run(second, "arn")
    service.fail_run(second, {"Error": "States.TaskFailed"})
    campaign = service.store.campaign("census-two")
    assert campaign.status == "COMPLETED" and campaign.status_reason == "every instance ended: 1 ERROR, 1 SUCCEEDED"
    # And data quality accepts it, with a reason; a reason is required, and an accepted campaign is not rejected
    with pytest.raises(ValueError, match="say why"):
        campaigns.accept("census-two", "dq", " ")
    accepted = campaigns.accept("census-two", "dq", "census matches the logbook")
    assert accepted.status == "ACCEPTED" and accepted.history[-1]["why"] == "census matches the logbook"
    with pytest.raises(NotAllowed, match="only a COMPLETED campaign can be made REJECTED"):
        campaigns.reject("census-two", "dq", "changed my mind")


def test_a_draft_shows_what_it_would_run_and_estimates_it():
    # Given a DRAFT over two proposals' OPs
    service = make_service(capacity=4)
    for index in range(2):
        add_candidate(service, f"old{index}", status="PLANNED", proposal=f"pid_9_{index}", observe_frames=3)
    campaigns = CampaignService(service, fake_provenance(service))
    campaigns.create("preview-me", "commissioning", "ops", "census", recipe="frame-census@1.0.0",
                     selection={"ids": {"ops": ["old0_obs", "old1_obs"]}})
    # When it is shown
    detail = campaigns.detail("preview-me")
    # Then it previews one instance per proposal with its inputs and estimate, and nothing has been inserted
    preview = detail["preview"]
    assert [(i["proposal_id"], i["inputs"]) for i in preview["instances"]] == [("pid_9_0", 3), ("pid_9_1", 3)]
    assert preview["estimated_cpu_s"] == pytest.approx(sum(i["estimated_cpu_s"] for i in preview["instances"]))
    assert preview["estimated_cpu_s"] > 0 and detail["instances"] == []
    assert not any(i.campaign == "preview-me" for i in service.store.instances.values())
    # And once started, there is no preview
    campaigns.start("preview-me", "ops")
    assert "preview" not in campaigns.detail("preview-me")


def census_campaign(name: str, proposals: int, **limits):
    """A started frame-census campaign over one observe OP of each of ``proposals`` proposals: (service, campaigns)."""
    service = make_service(capacity=4)
    for index in range(proposals):
        add_candidate(service, f"old{index}", status="PLANNED", proposal=f"pid_9_{index}")
    campaigns = CampaignService(service, fake_provenance(service))
    campaigns.create(name, "commissioning", "ops", "census", recipe="frame-census@1.0.0",
                     selection={"ids": {"ops": [f"old{index}_obs" for index in range(proposals)]}}, **limits)
    campaigns.start(name, "ops")
    return service, campaigns


def test_a_recurring_campaign_runs_only_what_is_new_at_each_occurrence_and_records_what_it_selected():
    # Given a campaign over what carries the tag flat-season, recurring every 14 days, and one OP tagged
    service = make_service(capacity=4)
    add_candidate(service, "c1", status="PLANNED", observe_frames=2)
    service.store.add_tags("flat-season", ["c1_obs"], "dq", "flats of the season", service.clock())
    campaigns = CampaignService(service, fake_provenance(service))
    campaigns.create("flats", "calibration", "dq", "flats every two weeks", recipe="frame-census",
                     selection={"include_tags": ["flat-season"]}, schedule="every 14d")
    # When it starts: its first occurrence runs what the selection matches now
    started = campaigns.start("flats", "dq")
    [first] = started.instance_ids
    assert started.status == "RUNNING" and [o["frames"] for o in started.occurrences] == [2]
    [run_id] = service.submit().started
    complete(service, run_id)
    # Then it stays RUNNING when its instances have ended (it recurs), and nothing is due before its next occurrence
    assert campaigns.require("flats").status == "RUNNING"
    due = campaigns.require("flats").next_occurrence_at
    assert due == dt.datetime.fromisoformat(started.occurrences[0]["at"]) + dt.timedelta(days=14)
    assert campaigns.run_due_occurrences(due - dt.timedelta(minutes=1)) == []
    # When another OP is tagged, and the schedule fires when due (twice, as a redelivered event would)
    add_candidate(service, "c2", status="PLANNED", observe_frames=3)
    service.store.add_tags("flat-season", ["c2_obs"], "dq", "flats of the season", service.clock())
    [occurred] = campaigns.run_due_occurrences(due)
    assert campaigns.run_due_occurrences(due) == []
    # Then occurrence 2 selected only the new OP's three frames, into one new instance, recorded once
    campaign = campaigns.require("flats")
    assert (occurred["number"], occurred["frames"], occurred["instances"]) == (2, 3, 1)
    assert [o["number"] for o in campaign.occurrences] == [1, 2] and campaign.instance_ids[0] == first
    [second] = campaign.instance_ids[1:]
    document = service.documents.buckets["work"][layout.occurrence_key("flats", 2)]
    assert sorted(document["frames"]) == ["c2_obs-f0", "c2_obs-f1", "c2_obs-f2"]
    [run_id] = service.submit().started
    assert service.store.runs[run_id].instance_id == second
    frames = service.documents.buckets["work"][service.store.runs[run_id].input_dataset_key]["frames"]
    assert sorted(f["file_id"] for f in frames) == ["c2_obs-f0", "c2_obs-f1", "c2_obs-f2"]
    assert campaign.next_occurrence_at == due + dt.timedelta(days=14)


def test_a_recurring_campaign_is_defined_on_a_schedule_that_can_be_meant_and_an_operator_can_run_it_now():
    service = make_service()
    add_candidate(service, "c1", status="PLANNED")
    campaigns = CampaignService(service, fake_provenance(service))
    selection = {"ids": {"ids": ["c1_obs"]}}
    # Given schedules too frequent, malformed, or on a reprocessing plan: each is refused with what is meant
    for schedule in ("every 10m", "every 0d", "every 400d", "cron 0 3 * *", "cron * * * * * *", "cron rm -rf"):
        with pytest.raises(ValueError, match="--every|--cron"):
            campaigns.create("x", "calibration", "dq", "why", recipe="frame-census", selection=selection,
                             schedule=schedule)
    # And a campaign that does not recur cannot be made to occur
    campaigns.create("once", "calibration", "dq", "why", recipe="frame-census", selection=selection)
    campaigns.start("once", "dq")
    with pytest.raises(NotAllowed, match="does not recur"):
        campaigns.occur_now("once", "dq")
    # When a recurring one on Mondays at 03:00 UTC is started, and an operator runs its next occurrence now
    campaigns.create("weekly", "calibration", "dq", "why", recipe="frame-census", selection=selection,
                     schedule="cron 0 3 * * 1")
    started = campaigns.start("weekly", "dq")
    assert started.next_occurrence_at == dt.datetime(2026, 11, 23, 3, 0, tzinfo=dt.timezone.utc)  # T0: a Friday
    record = campaigns.occur_now("weekly", "ops")
    # Then it is recorded, selecting nothing new (its frames went into the first occurrence)
    assert (record["number"], record["frames"], record["instances"], record["by"]) == (2, 0, 0, "ops")

def test_a_document_is_kept_with_its_campaign_once_and_another_of_the_same_name_beside_it():
    # Given a started campaign
    service, campaigns = census_campaign("census-docs", 1)
    # When a test plan is attached (twice: the second changes nothing), then a revised plan of the same name
    first, new = campaigns.attach("census-docs", "test-plan.pdf", b"%PDF plan v1", "the plan we run", "ana")
    again, new_again = campaigns.attach("census-docs", "test-plan.pdf", b"%PDF plan v1", "once more", "bo")
    revised, revised_new = campaigns.attach("census-docs", "test-plan.pdf", b"%PDF plan v2", "exposure fixed", "bo")
    # Then the campaign records both versions, with who, when, why, size, digest and type, oldest first
    assert (new, new_again, revised_new) == (True, False, True) and again == first
    documents = campaigns.detail("census-docs")["documents"]
    assert [(d["name"], d["version"], d["by"], d["note"]) for d in documents] == [
        ("test-plan.pdf", 1, "ana", "the plan we run"), ("test-plan.pdf", 2, "bo", "exposure fixed")]
    assert documents[0]["size"] == len(b"%PDF plan v1") and documents[0]["content_type"] == "application/pdf"
    assert documents[0]["sha256"] == hashlib.sha256(b"%PDF plan v1").hexdigest() and documents[0]["at"]
    # And each is in the work bucket under the campaign, neither over the other, and read back by its place
    assert documents[0]["key"].startswith("campaigns/census-docs/documents/") and documents[0]["key"] != documents[1]["key"]
    assert campaigns.document("census-docs", 2) == (revised, b"%PDF plan v2")
    with pytest.raises(NotFound, match="has no document 3: it has 2"):
        campaigns.document("census-docs", 3)


def test_a_calibration_change_is_planned_down_the_catalogue_and_started_in_dependency_order():
    from tests.unit.test_catalogue import MASTERS, SHARED, instance_by_recipe

    # Given one candidate's whole graph succeeded: a master calibration, the science made on it, the night summary
    service = make_service(capacity=4)
    add_candidate(service, "c1", recipe=None, calibration=SHARED)
    calibration = complete(service, service.submit().started[0], MASTERS)
    science = complete(service, service.submit().started[0])
    summary = complete(service, service.submit().started[0])
    # When bad_pixel_high of the calibration recipe changes for the night and the change is planned
    service.recipes = ChangedValue(service.recipes, "bad_pixel_high", 1.9, dt.date(2026, 1, 1))
    campaigns = CampaignService(service, fake_provenance(service))
    plan = campaigns.planner.plan(Change(parameter="bad_pixel_high"), "dq")
    # Then it lists the calibration, then the science made from it, then the summary made from that, each copy
    # taking its producer's copy as input, and costs the whole closure
    items = plan["items"]
    assert [(i["dataset_id"], i["kind"], i.get("made_from")) for i in items] == [
        (calibration, "calibration", None), (science, "science", [calibration]), (summary, "summary", [science])]
    copies = {i["dataset_id"]: i["copy_instance_id"] for i in items}
    assert {"role": "calibration", "kind": "instance", "ref": copies[calibration]} in items[1]["inputs"]
    assert [i for i in items[2]["inputs"] if i["kind"] == "instance"] == [
        {"role": "science", "kind": "instance", "ref": copies[science]}]
    assert items[1]["tasks_reused"] == [] and plan["totals"]["downstream"] == 2
    assert plan["totals"]["cpu_seconds"] == round(sum(i["estimated_cpu_s"] for i in items), 1)
    # When it is started as one campaign
    campaigns.start_plan(plan["plan_id"], "bpx-19", "dq", "bad pixels above 1.9")
    # Then only the calibration copy runs first; the science copy waits for it, never for the old calibration
    [first] = service.submit().started
    assert service.store.runs[first].instance_id == copies[calibration]
    waiting = service.store.instance(copies[science])
    assert waiting.state == "WAITING" and copies[calibration] in waiting.state_reason
    new_calibration = complete(service, first, MASTERS)
    [second] = service.submit().started
    document = service.documents.buckets["work"][service.store.runs[second].input_dataset_key]
    assert [u["dataset_id"] for u in document["upstream"]] == [new_calibration]
    new_science = complete(service, second)
    [third] = service.submit().started
    document = service.documents.buckets["work"][service.store.runs[third].input_dataset_key]
    assert [u["dataset_id"] for u in document["upstream"]] == [new_science]
    complete(service, third)
    # And the campaign ends COMPLETED with three new datasets, the old ones untouched until data quality decides
    assert campaigns.require("bpx-19").status == "COMPLETED"
    assert len(instance_by_recipe(service, "vbi-night-summary")) == 2
    assert {service.store.datasets[d].status for d in (calibration, science, summary)} == {"ACTIVE"}
    # When data quality keeps the new calibration
    service.decide(new_calibration, "deprecate", "fewer false bad pixels", "dq", old_id=calibration)
    # Then the old science is marked as made from a superseded calibration, and its ticket says it was made again
    # already (the campaign did) instead of planning it a second time
    assert [s["replaced_by"] for s in service.store.datasets[science].superseded_inputs] == [new_calibration]
    [ticket] = [t for t in service.store.tickets.values() if t.kind == "review:superseded"]
    assert f"{science} -> {new_science}" in ticket.suggested_action and "reprocess start" not in ticket.suggested_action
    assert campaigns.planner.plan(Change(supersede=((calibration, new_calibration),)), "dq", save=False)["items"] == []
