"""Attacks, fourth round: recurring campaigns. A schedule that is meant, occurrences that select only what their
campaign selects, and one campaign's trouble that stops no other."""

from __future__ import annotations

import datetime as dt

import pytest

from obsflow.runs import layout
from obsflow.runs.campaigns import CampaignService
from obsflow.runs.domain import Dataset
from tests.unit.fakes import fake_provenance
from tests.unit.test_run_service import T0, add_candidate, make_service

DAY = dt.timedelta(days=1)


def recurring(*names: str, calibration: str | None = None):
    """Given frames of pid_1_23 (c1) and of pid_2_99 (c2), c1's OP tagged flat, and a campaign per name over what
    carries the tag, every day, started (its first occurrence ran): (service, campaigns)."""
    service = make_service(capacity=4)
    add_candidate(service, "c1", status="PLANNED", observe_frames=2)
    add_candidate(service, "c2", status="PLANNED", proposal="pid_2_99")
    service.store.add_tags("flat", ["c1_obs"], "dq", "flats", service.clock())
    if calibration:
        service.store.datasets[calibration] = Dataset(
            calibration, "run-cal", "pid_1_23", "cal", "vbi-calibration@1.0.0", "data", f"pid_1_23/{calibration}/",
            "product", "key", 0, [], {}, T0, kind="calibration", status="ACTIVE", release_date="2027-11-20",
            embargo="EMBARGOED")
    campaigns = CampaignService(service, fake_provenance(service))
    for name in names:
        campaigns.create(name, "calibration", "dq", "flats daily", recipe="frame-census",
                         selection={"include_tags": ["flat"]}, schedule="every 1d", calibration=calibration)
        campaigns.start(name, "dq")
    return service, campaigns


def tickets_of(service, name):
    return [t for t in service.store.tickets.values() if t.ticket_id.startswith(f"TKT-campaign-{name}-occurrence-")]


@pytest.mark.parametrize("cron, said", [
    ("0 0 30 2 *", "never fires"), ("0 0 31 4 *", "never fires"),
    ("* * * * *", "at most once an hour"), ("*/5 * * * *", "at most once an hour"), ("0-5 3 * * *", "at most once an hour"),
    ("0 0 29 2 *", "days between occurrences: at most 366"),
])
def test_a_cron_schedule_that_never_fires_or_fires_every_few_minutes_is_refused_at_create(cron, said):
    service = make_service()
    add_candidate(service, "c1", status="PLANNED")
    campaigns = CampaignService(service, fake_provenance(service))
    # When a campaign is created on it, Then it is refused with what is wrong, and nothing is recorded
    with pytest.raises(ValueError, match=said):
        campaigns.create("odd", "calibration", "dq", "why", recipe="frame-census",
                         selection={"ids": {"ids": ["c1_obs"]}}, schedule=f"cron {cron}")
    assert service.store.campaign("odd") is None


@pytest.mark.parametrize("schedule", ["cron 0 * * * *", "cron 0 3 * * 1", "cron 0 0 1 1 *", "cron 0 0 31 * *"])
def test_hourly_weekly_yearly_and_month_end_cron_schedules_are_taken(schedule):
    service = make_service()
    add_candidate(service, "c1", status="PLANNED")
    campaign = CampaignService(service, fake_provenance(service)).create("fine", "calibration", "dq", "why", recipe="frame-census",
                                               selection={"ids": {"ids": ["c1_obs"]}}, schedule=schedule)
    assert campaign.schedule == schedule


def test_a_planted_occurrence_document_naming_another_proposals_frame_is_refused_and_other_campaigns_still_occur():
    service, campaigns = recurring("aaa", "bbb")
    # Given a document planted for aaa's next occurrence, naming a frame of another proposal that aaa never selects
    planted = layout.occurrence_key("aaa", 2)
    service.documents.buckets["work"][planted] = {"number": 2, "at": "2026-11-21", "by": "schedule",
                                                  "frames": ["c2_obs-f0"], "datasets": []}
    # When both are due and the schedule fires (twice: the next pass too)
    occurred = campaigns.run_due_occurrences(T0 + 2 * DAY)
    campaigns.run_due_occurrences(T0 + 2 * DAY + dt.timedelta(minutes=5))
    # Then bbb occurred, and aaa did not: nothing of pid_2_99 was inserted, and it stays due
    assert [o["campaign"] for o in occurred] == ["bbb"]
    aaa = campaigns.require("aaa")
    assert len(aaa.occurrences) == 1 and all(service.store.instances[i].proposal_id == "pid_1_23" for i in aaa.instance_ids)
    assert not any(i.proposal_id == "pid_2_99" for i in service.store.instances.values())
    # And one ticket (not one per pass) names the document, what is wrong and what to do
    [ticket] = tickets_of(service, "aaa")
    assert f"{planted} names 1 id(s) campaign aaa does not select now" in ticket.summary and "c2_obs-f0" in ticket.summary
    assert "`obsflow campaigns occur aaa`" in ticket.suggested_action
    # When the operator deletes the planted document and runs the occurrence, Then it runs what aaa selects
    del service.documents.buckets["work"][planted]
    record = campaigns.occur_now("aaa", "ops")
    assert record["number"] == 2 and service.documents.buckets["work"][planted]["frames"] == []


@pytest.mark.parametrize("damage", ["garbage", "gone", "enlarged"])
def test_an_earlier_occurrence_document_damaged_stops_that_campaign_only_with_a_ticket(damage):
    service, campaigns = recurring("aaa", "bbb")
    # Given aaa's first occurrence document not JSON-shaped, deleted, or rewritten to claim more than was recorded
    first = layout.occurrence_key("aaa", 1)
    if damage == "garbage":
        service.documents.buckets["work"][first] = "not a document"
    elif damage == "gone":
        del service.documents.buckets["work"][first]
    else:
        service.documents.buckets["work"][first]["frames"].append("c2_obs-f0")
    # And a frame newly tagged
    add_candidate(service, "c3", status="PLANNED")
    service.store.add_tags("flat", ["c3_obs"], "dq", "flats", service.clock())
    # When both are due, Then bbb takes the new frame and aaa does not occur, with a ticket saying why
    occurred = campaigns.run_due_occurrences(T0 + 2 * DAY)
    assert [(o["campaign"], o["frames"]) for o in occurred] == [("bbb", 1)]
    assert len(campaigns.require("aaa").occurrences) == 1
    [ticket] = tickets_of(service, "aaa")
    assert f"occurrence 1's document {first}" in ticket.summary


def test_two_schedulers_reading_the_campaign_at_once_record_one_occurrence_and_no_count_drifts():
    service, campaigns = recurring("aaa")
    add_candidate(service, "c3", status="PLANNED")
    service.store.add_tags("flat", ["c3_obs"], "dq", "flats", service.clock())
    # Given two schedulers that read the campaign before either occurred
    seen_by_one, seen_by_two = campaigns.require("aaa"), campaigns.require("aaa")
    # When both run its occurrence
    first = campaigns._occur(seen_by_one, T0 + 2 * DAY, "schedule")
    second = campaigns._occur(seen_by_two, T0 + 2 * DAY + dt.timedelta(seconds=1), "schedule")
    # Then one is recorded, with one instance, and the campaign's counts are those of one occurrence
    assert first is not None and second is None
    campaign = campaigns.require("aaa")
    assert [o["number"] for o in campaign.occurrences] == [1, 2]
    assert len(campaign.instance_ids) == len(set(campaign.instance_ids)) == 2
    assert sum(o["frames"] for o in campaign.occurrences) == 3


def test_a_recurring_campaign_leaves_out_frames_its_calibration_may_not_serve_and_runs_the_rest():
    # Given a recurring campaign on pid_1_23's embargoed calibration
    service, campaigns = recurring("aaa", calibration="ds-cal-1")
    # When its selection later names frames of pid_2_99 as well as new frames of pid_1_23
    add_candidate(service, "c3", status="PLANNED")
    service.store.add_tags("flat", ["c2_obs", "c3_obs"], "dq", "flats", service.clock())
    [occurred] = campaigns.run_due_occurrences(T0 + 2 * DAY)
    # Then pid_1_23's new frame is run, and pid_2_99's is left out, recorded with why
    assert (occurred["frames"], occurred["instances"], occurred["left_out"]) == (1, 1, 1)
    [new] = campaigns.require("aaa").instance_ids[1:]
    assert service.store.instances[new].proposal_id == "pid_1_23"
    document = service.documents.buckets["work"][layout.occurrence_key("aaa", 2)]
    assert "cannot serve proposal pid_2_99's data" in document["left_out"]["c2_obs-f0"]
    assert "1 left out: calibration ds-cal-1 belongs to proposal pid_1_23" in campaigns.require("aaa").history[-1]["why"]
