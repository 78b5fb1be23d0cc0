"""Attacks, third round: a campaign's inputs stay where they belong."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest

from obsflow.errors import NotFound
from obsflow.runs.campaigns import MAX_DOCUMENT_BYTES, MAX_ID_SET, CampaignService, read_id_set
from obsflow.runs.domain import Dataset
from obsflow.runs.service import NotAllowed
from tests.unit.fakes import fake_provenance
from tests.unit.test_run_service import add_candidate, make_service

T0 = dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc)


def calibration(service, dataset_id: str, proposal_id: str, status: str = "ACTIVE", embargo: str | None = "EMBARGOED"):
    service.store.datasets[dataset_id] = Dataset(
        dataset_id, "run-cal", proposal_id, "cal", "vbi-calibration@1.0.0", "data", f"{proposal_id}/{dataset_id}/",
        "product", "key", 0, [], {}, T0, kind="calibration", status=status, release_date="2027-11-20", embargo=embargo)
    return dataset_id


@pytest.fixture
def world():
    """Given frames of proposal pid_1_23, and the campaign service."""
    service = make_service()
    add_candidate(service, "c1", status="PLANNED", proposal="pid_1_23")
    return service, CampaignService(service, fake_provenance(service))


def create(campaigns, name: str, campaign_type: str, calibration_id: str):
    return campaigns.create(name, campaign_type, "ops", "why", recipe="frame-census",
                            selection={"ids": {"ids": ["c1"]}}, calibration=calibration_id)


def test_a_production_campaign_uses_active_production_calibrations_only(world):
    service, campaigns = world
    # Given a developer's calibration (DEVELOPMENT), a rejected one and an active one, all of pid_1_23
    developed = calibration(service, "ds-dev", "pid_1_23", status="DEVELOPMENT")
    rejected = calibration(service, "ds-rej", "pid_1_23", status="REJECTED")
    active = calibration(service, "ds-act", "pid_1_23")
    # Then a commissioning campaign refuses the first two, naming why, and takes the active one
    for refused in (developed, rejected):
        with pytest.raises(ValueError, match="campaign uses ACTIVE calibrations only"):
            create(campaigns, f"comm-{refused[3:]}", "commissioning", refused)
    assert create(campaigns, "comm", "commissioning", active).calibration == active
    # And a developer campaign (whose datasets never become products) may use the developer's calibration
    assert create(campaigns, "dev", "developer", developed).calibration == developed


def test_another_proposals_calibration_serves_only_once_released_or_from_a_calibration_program(world):
    service, campaigns = world
    # Given calibrations of another proposal: under embargo, released, and one of an observatory calibration program
    foreign = calibration(service, "ds-foreign", "pid_9_99")
    released = calibration(service, "ds-public", "pid_9_99", embargo=None)
    program = calibration(service, "ds-program", "pid_cal")
    # Then the embargoed one is refused for pid_1_23's data, saying why and what instead
    with pytest.raises(NotAllowed, match="belongs to proposal pid_9_99 and is under embargo until 2027-11-20"):
        create(campaigns, "cross", "commissioning", foreign)
    assert service.store.campaign("cross") is None
    # And the released one is taken, and so is the calibration program's, once the stage names it
    assert create(campaigns, "public", "commissioning", released)
    with pytest.raises(NotAllowed):
        create(campaigns, "program", "commissioning", program)
    service.settings = service.settings.model_copy(update={"calibration_programs": ("pid_cal",)})
    assert create(campaigns, "program", "commissioning", program)


@pytest.mark.parametrize("entries, said", [
    (["../etc/passwd"], "no id"), (["a/b"], "no id"), ([7], "no id"), ([""], "no id"),
    ({"frames": ["ok", "x" * 200]}, "no id"),
    (["f"] * (MAX_ID_SET + 1), f"at most {MAX_ID_SET:,}"),
])
def test_an_id_set_holds_ids_only_and_is_bounded(entries, said):
    with pytest.raises(ValueError, match=said):
        read_id_set(entries)


def test_a_draft_that_selects_nothing_is_refused_at_create(world):
    service, campaigns = world
    service.store.add_tags("empty", [], "ops", "nothing", service.clock())
    with pytest.raises(ValueError, match="selects nothing to process"):
        campaigns.create("nothing", "commissioning", "ops", "why", recipe="frame-census",
                         selection={"include_tags": ["empty"]})


def test_a_plan_started_twice_makes_one_campaign_and_a_second_name_is_refused(night):
    from obsflow.runs.reprocessing import Change
    from tests.unit.test_campaigns import ChangedValue

    # Given a plan over a catalogued dataset
    service, _ = night
    service.recipes = ChangedValue(service.recipes, "saturation_level", 63000, dt.date(2026, 6, 1))
    campaigns = CampaignService(service, fake_provenance(service))
    plan = campaigns.planner.plan(Change(parameter="saturation_level"), "dq")
    # When it is started twice under one name (as two operators at once would), then under another name
    first = campaigns.start_plan(plan["plan_id"], "again", "dq", "why")
    second = campaigns.start_plan(plan["plan_id"], "again", "ana", "why")
    # Then there is one campaign, started once, and the other name is refused, naming it
    assert dataclasses.astuple(first) == dataclasses.astuple(second)
    assert [e["status"] for e in second.history].count("RUNNING") == 1
    with pytest.raises(NotAllowed, match=f"plan {plan['plan_id']} is already run by campaign again"):
        campaigns.start_plan(plan["plan_id"], "other-name", "dq", "why")


def test_cancelling_a_campaign_cancels_its_unstarted_runs_and_lets_the_started_one_finish():
    # Given a campaign over three proposals' frames, one run at a time, the first started
    from tests.unit.test_campaigns import census_campaign

    service, campaigns = census_campaign("census-all", proposals=3, max_concurrent=1)
    [started] = service.submit().started
    # When it is cancelled
    campaigns.cancel("census-all", "ana", "wrong selection")
    # Then the started run goes on, and the two that never started are CANCELLED with who and why
    runs = [r for r in service.store.runs.values() if r.campaign == "census-all"]
    assert {r.run_id: r.status for r in runs if r.run_id == started} == {started: "SUBMITTED"}
    cancelled = [r for r in runs if r.status == "CANCELLED"]
    assert len(cancelled) == 2 and all("cancelled by ana: wrong selection" in r.waiting_reason for r in cancelled)
    # And their instances say so, and are not shown as failed; the submitter starts nothing more
    for run in cancelled:
        instance = service.store.instances[run.instance_id]
        assert instance.state == "NEVER_EXECUTED" and "cancelled by ana" in instance.state_reason
    assert service.submit().started == []
    assert len(campaigns.require("census-all").instance_ids) == 3


def test_tagging_and_marking_bad_take_ids_only(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from obsflow.cli import common, main

    monkeypatch.setattr(common, "_discover", lambda settings: settings)  # no stage is asked anything

    # Given ID lists with an entry that is no id (a path, an empty string)
    for listed in (["c1_obs-f1", "../../etc/passwd"], [""]):
        ids = tmp_path / "ids.json"
        ids.write_text(__import__("json").dumps(listed))
        # Then tagging and marking frames bad refuse them, naming the rule
        for command in (["tags", "add", "bad-seeing", "--ids", str(ids), "--reason", "r"],
                        ["frames", "mark-bad", "--ids", str(ids), "--reason", "r"]):
            result = CliRunner().invoke(main, command)
            assert result.exit_code == 2 and "no id" in result.output, (command, result.output)


@pytest.mark.parametrize("name, reason", [
    ("../../plans/plan-x.json", "is a path, not a file name"), ("a\\b.pdf", "is a path, not a file name"),
    ("notes..pdf", "holds '..'"), ("..", "holds '..'"), ("plan\n.pdf", "control character (U+000A)"),
    ("plan\u202egdp.exe", "control character (U+202E)"), (".hidden", "not a document name"),
    ("x" * 129, "not a document name"), ("plan.pdf ", "not a document name"), ('say"hi".pdf', "not a document name"),
    ("", "no file name")])
def test_a_campaign_document_with_a_planted_name_is_refused_with_the_reason(world, name, reason):
    service, campaigns = world
    create(campaigns, "docs", "commissioning", None)
    with pytest.raises(ValueError, match=re.escape(reason)):
        campaigns.attach("docs", name, b"text", "a note", "mallory")
    assert campaigns.require("docs").documents == []
    assert not [key for key in service.documents.buckets["work"] if key.startswith("campaigns/")]


def test_a_campaign_document_too_large_empty_without_a_note_or_for_no_campaign_is_refused_saying_what_to_do(world):
    service, campaigns = world
    create(campaigns, "docs", "commissioning", None)
    refusals = [(("docs", "big.fits", b"\0" * (MAX_DOCUMENT_BYTES + 1), "a note"), ValueError, "larger than 50 MiB"),
                (("docs", "empty.txt", b"", "a note"), ValueError, "empty"),
                (("docs", "plan.pdf", b"x", "  "), ValueError, r"say what the document is \(--note TEXT\)"),
                (("docs", "plan.pdf", b"x", "n" * 2001), ValueError, "at most 2000"),
                (("nosuch", "plan.pdf", b"x", "a note"), NotFound, "`obsflow campaigns create` makes one")]
    for arguments, error, reason in refusals:
        with pytest.raises(error, match=reason):
            campaigns.attach(*arguments, "mallory")
    assert campaigns.require("docs").documents == []


def test_the_attach_command_refuses_a_file_larger_than_the_limit_before_anything_is_written(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from obsflow.cli import common, main

    monkeypatch.setattr(common, "_discover", lambda settings: settings)  # no stage is asked anything
    # Given a file far over the limit (sparse: nothing is written to disk); it is read only to one byte past the limit
    huge = tmp_path / "huge.fits"
    with open(huge, "wb") as handle:
        handle.truncate(4 * MAX_DOCUMENT_BYTES)
    # When it is attached, Then it is refused with what to do instead
    result = CliRunner().invoke(main, ["campaigns", "attach", "docs", str(huge), "--note", "n"])
    assert result.exit_code == 1 and "huge.fits is larger than 50 MiB: keep it elsewhere" in result.output
