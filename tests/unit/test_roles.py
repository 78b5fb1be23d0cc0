"""Who may do what: the role table, the refusals the CLI gives, and a large campaign's approval, on fakes."""

from __future__ import annotations

import datetime as dt

import click
import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from obsflow import roles
from obsflow.cli import main as cli
from obsflow.roles import Actor, Refused
from obsflow.runs.campaigns import CampaignService, approval_note
from obsflow.runs.reprocessing import Change
from obsflow.runs.service import NotAllowed
from obsflow.settings import Settings
from tests.unit.fakes import fake_provenance
from tests.unit.test_campaigns import ChangedValue, night  # noqa: F401 (night: a fixture)
from tests.unit.test_catalogue import complete
from tests.unit.test_run_service import add_candidate, make_service

NOWHERE = "http://127.0.0.1:9"  # nothing answers: a refusal must come before the stage is touched


def commands(group: click.Group, path=()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield " ".join((*path, name)), command


def test_every_command_that_touches_a_stage_is_in_the_role_table():
    # Given every command of the CLI that acts on a stage (operator_command checks the role)
    checked = {action for action, command in commands(cli) if getattr(command.callback, "checks_role", False)}
    assert {"datasets decide", "campaigns approve", "runs cancel", "recipes register", "info"} <= checked
    # Then each is in the table, with roles that exist
    assert sorted(checked - set(roles.PERMISSIONS)) == []
    assert all(set(allowed) <= set(roles.ROLES) and allowed for allowed in roles.PERMISSIONS.values())
    # And every narrowed action is one the role may take at all
    assert all(role in roles.PERMISSIONS[action] for role, actions in roles.LIMITS.items() for action in actions)


@pytest.mark.parametrize("role, action, may", [
    ("developer", "datasets decide", False), ("data-quality", "datasets decide", True),
    ("operator", "datasets decide", False), ("pipeline-manager", "recipes register", True),
    ("operator", "recipes register", False), ("operator", "runs cancel", True), ("data-quality", "runs cancel", False),
    ("data-quality", "frames mark-bad", True), ("developer", "frames mark-bad", False),
    ("operator", "campaigns approve", True), ("data-quality", "campaigns approve", True),
    ("developer", "campaigns approve", False), ("pipeline-manager", "campaigns approve", False),
    ("pi-read", "campaigns approve", False), ("pi-read", "datasets list", True), ("pi-read", "runs list", False),
    ("pi-read", "monitor", False), ("developer", "reprocess start", False), ("developer", "runs rerun", True),
    ("operator", "pause", True), ("developer", "pause", False), ("operator", "no such command", False),
])
def test_the_table_says_who_may_take_each_action(role, action, may):
    assert Actor(role).may(action) is may


def test_without_a_role_the_local_single_operator_may_do_everything():
    # Given no OBSFLOW_ROLE, Then every action is allowed, including one in no role's permissions
    actor = Actor(Settings(stage="unit").role)
    assert actor.role is None and all(actor.may(action) for action in [*roles.PERMISSIONS, "no such command"])


def test_a_refusal_names_the_role_who_may_and_what_to_do():
    with pytest.raises(Refused) as refused:
        Actor("developer").check("datasets decide")
    message = str(refused.value)
    assert "role developer may not `obsflow datasets decide`" in message and "only data-quality may" in message
    assert "OBSFLOW_ROLE=data-quality" in message


@pytest.mark.parametrize("value", ["admin", "Operator", "operator ", "operator;rm -rf /", "dev\x1b[31m", "x" * 500,
                                   "operator,data-quality"])
def test_an_unknown_role_is_refused_with_the_list_of_roles(value):
    # When a role name that is none of the roles is given (odd characters, another case, a list, very long)
    with pytest.raises(ValidationError) as refused:
        Settings(stage="unit", role=value)
    # Then it is refused, listing the roles, and repeated back escaped and short
    message = str(refused.value)
    assert "is not a role; roles: operator, data-quality, developer, pipeline-manager, pi-read" in message
    assert "\x1b" not in message and "x" * 41 not in message


def test_an_empty_role_is_the_local_single_operator_and_a_proposal_must_be_an_id():
    assert Settings(stage="unit", role="").role is None
    with pytest.raises(ValidationError, match="is not a proposal id"):
        Settings(stage="unit", role="pi-read", proposal="../pid_2")


def test_a_developer_may_only_take_developer_campaigns():
    developer = Actor("developer")
    developer.check_campaign("campaigns create", "developer")
    # When a developer names a production campaign type, Then it is refused, naming who may
    for campaign_type in ("reprocessing", "commissioning", "calibration", "test", "Developer", "developer "):
        with pytest.raises(Refused, match="developer campaigns only .*only operator may"):
            developer.check_campaign("campaigns create", campaign_type)
    with pytest.raises(Refused, match="campaign sat-63000 is a reprocessing campaign"):
        developer.check_campaign("campaigns cancel", "reprocessing", "sat-63000")
    # And an operator takes any type
    Actor("operator").check_campaign("campaigns create", "reprocessing")


def test_a_pi_reads_its_own_proposal_and_released_data_only():
    pi = Actor("pi-read", "pid_1_23")
    assert pi.may_read("pid_1_23", released=False) and pi.may_read("pid_7_7", released=True)
    assert not pi.may_read("pid_7_7", released=False) and not pi.may_read(None, released=False)
    # A PI without a proposal reads released data only
    assert not Actor("pi-read").may_read("pid_1_23", released=False)
    with pytest.raises(Refused, match="reads proposal pid_1_23's datasets and released ones; ds-1 is proposal "
                                      "pid_7_7's, under embargo until 2027-11-20"):
        pi.check_read("ds-1", "pid_7_7", released=False, release_date="2027-11-20")
    # And every other role reads all
    assert Actor("developer").may_read("pid_7_7", released=False)


@pytest.mark.parametrize("role, args, said", [
    ("developer", ["datasets", "decide", "ds-1", "--keep-both", "--reason", "x"], "only data-quality may"),
    ("developer", ["campaigns", "create", "big", "--reason", "x", "--recipe", "frame-census", "--type",
                   "reprocessing"], "developer campaigns only"),
    ("pi-read", ["campaigns", "approve", "big", "--reason", "x"], "only data-quality or operator may"),
    ("pipeline-manager", ["campaigns", "approve", "big", "--reason", "x"], "only data-quality or operator may"),
])
def test_the_cli_refuses_before_it_touches_the_stage(role, args, said):
    # Given a role, and no stage at the endpoint
    result = CliRunner().invoke(cli, ["--endpoint-url", NOWHERE, *args], env={"OBSFLOW_ROLE": role})
    # Then the command is refused with the role named, not with an unreachable stage
    assert result.exit_code == 1 and f"role {role} may not" in result.output and said in result.output
    assert "nothing answers" not in result.output


def test_the_cli_refuses_an_unknown_role_before_any_command():
    result = CliRunner().invoke(cli, ["--endpoint-url", NOWHERE, "runs", "list"], env={"OBSFLOW_ROLE": "root"})
    assert result.exit_code == 2 and "OBSFLOW_ROLE: 'root' is not a role; roles: operator" in result.output


# -- a large campaign's approval ------------------------------------------------------------------------------


def census(name: str, cpu_hours: float, proposals: int = 2):
    """A DRAFT frame-census campaign over one observe OP of each proposal, on a stage whose approval size is
    ``cpu_hours``: (service, campaigns)."""
    service = make_service(capacity=4)
    service.settings = service.settings.model_copy(update={"campaign_approval_cpu_hours": cpu_hours})
    for index in range(proposals):
        add_candidate(service, f"old{index}", status="PLANNED", proposal=f"pid_9_{index}")
    campaigns = CampaignService(service, fake_provenance(service))
    campaigns.create(name, "commissioning", "ops", "census", recipe="frame-census@1.0.0",
                     selection={"ids": {"ops": [f"old{index}_obs" for index in range(proposals)]}})
    return service, campaigns


def test_a_campaign_above_the_approval_size_waits_for_approval_then_runs():
    # Given a campaign whose estimate is above the stage's approval size
    service, campaigns = census("big", cpu_hours=0)
    # When it is started
    campaign = campaigns.start("big", "ops")
    # Then it waits for approval, saying its estimate and how to approve it; its instances exist
    assert campaign.status == "AWAITING_APPROVAL" and len(campaign.instance_ids) == 2
    assert "CPU-hours, above the 0 set (campaign_approval_cpu_hours)" in campaign.status_reason
    assert "`obsflow campaigns approve big --reason TEXT` (data-quality or operator role)" in campaign.status_reason
    assert campaign.history[-1]["status"] == "AWAITING_APPROVAL" and approval_note(campaign) == campaign.status_reason
    # And the submitter starts none of its runs, each waiting with the reason
    report = service.submit()
    assert report.started == [] and len(report.waiting) == 2
    assert all(why.startswith("campaign big is AWAITING_APPROVAL: estimated") for why in report.waiting.values())
    assert all(r.waiting_reason == report.waiting[r.run_id] for r in service.store.runs.values())
    # When data quality approves it
    approved = campaigns.approve("big", "dana", "census of the old frames is worth it", "data-quality")
    # Then it runs, and who approved it, when, as which role and why are kept
    assert approved.status == "RUNNING"
    assert {k: approved.approval[k] for k in ("approved_by", "approved_as", "reason")} == {
        "approved_by": "dana", "approved_as": "data-quality", "reason": "census of the old frames is worth it"}
    assert approved.approval["approved_at"] == approved.history[-1]["at"]
    assert approved.history[-1] == {**approved.history[-1], "status": "RUNNING", "by": "dana"}
    assert approval_note(approved).startswith("approved by dana (data-quality) at ")
    started = service.submit().started
    assert len(started) == 2
    # And it completes as any campaign does
    for run_id in started:
        complete(service, run_id)
    assert campaigns.require("big").status == "COMPLETED"


def test_approving_twice_changes_nothing_and_the_first_approval_stands():
    service, campaigns = census("big", cpu_hours=0)
    campaigns.start("big", "ops")
    first = campaigns.approve("big", "dana", "worth it", "data-quality")
    # When it is approved again, by someone else
    again = campaigns.approve("big", "olaf", "me too", "operator")
    # Then nothing changed
    assert again.approval == first.approval and again.history == first.history and again.status == "RUNNING"


def test_a_campaign_within_the_approval_size_runs_at_once_and_cannot_be_approved():
    # Given a campaign well within the approval size
    service, campaigns = census("small", cpu_hours=100)
    # When it is started, Then it runs at once, needing no approval
    campaign = campaigns.start("small", "ops")
    assert campaign.status == "RUNNING" and campaign.approval is None and approval_note(campaign) == ""
    assert len(service.submit().started) == 2
    # And approving it is refused, saying it needs none
    with pytest.raises(NotAllowed, match="campaign small needs no approval: it is RUNNING"):
        campaigns.approve("small", "dana", "just in case", "data-quality")


def test_a_draft_is_not_approved_and_an_approval_needs_a_reason():
    service, campaigns = census("big", cpu_hours=0)
    with pytest.raises(NotAllowed, match="is a DRAFT: start it first"):
        campaigns.approve("big", "dana", "ahead of time", "data-quality")
    campaigns.start("big", "ops")
    with pytest.raises(ValueError, match="say why the campaign is approved"):
        campaigns.approve("big", "dana", "  ", "data-quality")
    assert campaigns.require("big").status == "AWAITING_APPROVAL"


def test_a_campaign_above_the_output_size_waits_too_and_one_waiting_can_be_cancelled():
    # Given earlier runs of the recipe measured at 2 MB of output per frame, and a campaign of two frames: within
    # the CPU size but above an output size of 3 MB
    service, campaigns = census("wide", cpu_hours=100)
    service.store.record_measurement("frame-census@1.0.0", 1, 1.0, 2_000_000)
    service.settings = service.settings.model_copy(update={"campaign_approval_output_bytes": 3_000_000})
    campaign = campaigns.start("wide", "ops")
    assert campaign.status == "AWAITING_APPROVAL" and campaign.approval["estimated_bytes"] == 4_000_000
    assert "0.004 GB of output, above the 0.003 GB set (campaign_approval_output_bytes)" in campaign.status_reason
    service.submit()
    # When it is cancelled while waiting, Then its runs end CANCELLED, never started
    cancelled = campaigns.cancel("wide", "ops", "too big after all")
    assert cancelled.status == "CANCELLED"
    assert {r.status for r in service.store.runs.values()} == {"CANCELLED"}
    assert approval_note(cancelled) == "cancelled while waiting for approval"


def test_the_monitor_shows_campaigns_awaiting_approval_and_who_approved():
    # Given one campaign waiting for approval and one approved
    from obsflow.monitor import views

    service, campaigns = census("waiting", cpu_hours=0)
    campaigns.start("waiting", "ops")
    campaigns.create("approved", "commissioning", "ops", "census", recipe="frame-census@1.0.0",
                     selection={"ids": {"ops": ["old0_obs"]}})
    campaigns.start("approved", "ops")
    campaigns.approve("approved", "dana", "worth it", "data-quality")
    rows = [{**c.__dict__, "instances": len(c.instance_ids), "approval_note": approval_note(c)}
            for c in campaigns.store.all_campaigns()]
    empty = {"run_counts": {}, "ops": [], "candidates": [], "runs": [], "tickets": [], "datasets": [], "instances": []}
    # When the overview is drawn
    html = views.overview({**empty, "campaigns": rows})
    # Then it shows the waiting one with its reason and how to approve it, and who approved the other
    assert "AWAITING_APPROVAL</span>" in html and "campaigns approve waiting --reason TEXT" in html
    assert "approved by dana (data-quality) at 2026-" in html


def test_a_reprocessing_plan_estimated_above_the_approval_size_waits_by_its_plans_totals(night):
    # Given a plan for a changed parameter, on a stage whose approval size is below the plan's CPU time
    service, datasets = night
    service.recipes = ChangedValue(service.recipes, "saturation_level", 63000, dt.date(2026, 6, 1))
    campaigns = CampaignService(service, fake_provenance(service))
    plan = campaigns.planner.plan(Change(parameter="saturation_level"), "dq")
    hours = plan["totals"]["cpu_seconds"] / 3600
    service.settings = service.settings.model_copy(update={"campaign_approval_cpu_hours": hours * 0.99})
    # When it is started as a campaign
    campaign = campaigns.start_plan(plan["plan_id"], "sat-63000", "ops", "firmware")
    # Then it waits for approval, with the plan's own totals as its estimate, and none of its runs starts
    assert campaign.status == "AWAITING_APPROVAL"
    assert campaign.approval["estimated_cpu_s"] == plan["totals"]["cpu_seconds"]
    assert service.submit().started == []
    # And the same start again changes nothing
    assert campaigns.start_plan(plan["plan_id"], "sat-63000", "ops", "firmware").status == "AWAITING_APPROVAL"
