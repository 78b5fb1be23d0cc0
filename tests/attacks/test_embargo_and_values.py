"""Attacks, third round: an embargo that must fail closed on junk dates, and values that must be numbers.

Each case here was found from outside (the hardening issue); the next round adds to this folder.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from obsflow.embargo import Proposal
from obsflow.recipes.model import DatedValue, Option, Parameter, RecipeError
from obsflow.runs.releases import EarlyRelease, ReleaseService
from tests.unit.test_embargo import proposal_document
from tests.unit.test_ingest_service import deliver
from tests.unit.test_recipes import CHAIN, recipe
from tests.unit.test_run_service import add_candidate, make_service

REAL_NOW = dt.datetime(2026, 12, 5, 9, tzinfo=dt.timezone.utc)


# -- 1. the embargo fails closed ------------------------------------------------------------------------------
@pytest.mark.parametrize("release_date, reason", [
    (0, "not an ISO calendar date"),  # read as the Unix epoch: public for good
    ("0", "not an ISO calendar date"),
    ("20271120", "not an ISO calendar date"),
    ("2027-11-20T00:00:00", "not an ISO calendar date"),
    ("2207-11-20", "more than 3660 days from today"),  # past the bound embargo_days has
    ("1970-01-01", "more than 3660 days from today"),
])
def test_a_proposal_document_with_a_junk_release_date_is_quarantined_with_its_reason(world, release_date, reason):
    _, bucket, store, service = world
    # Given a proposal document whose release date is not a calendar date within the embargo's bound
    bucket.objects["proposals/pid_1_23.json"] = proposal_document(release_date=release_date)
    # When it arrives
    deliver(service, ["proposals/pid_1_23.json"])
    # Then nothing of it is in force, and it is kept in quarantine saying why
    assert "pid_1_23" not in store.proposals
    [quarantined] = store.quarantined
    assert quarantined["key"] == "proposals/pid_1_23.json" and reason in quarantined["reason"]


def _catalogued_under_embargo(service) -> str:
    """A dataset of pid_1_23, observed 2026-11-20, under a 365-day embargo: due on 2027-11-20."""
    from tests.unit.test_embargo import catalogued

    service.store.known_proposals["pid_1_23"] = Proposal("pid_1_23", embargo_days=365)
    return catalogued(service)["dataset_id"]


def test_a_release_job_as_of_a_day_still_to_come_is_a_dry_run():
    # Given a dataset due on 2027-11-20, and the real date 2026-12-05
    service = make_service()
    dataset_id = _catalogued_under_embargo(service)
    job = ReleaseService(service.store, service.documents, service.settings, clock=lambda: REAL_NOW)
    tags_before = dict(service.documents.tags)
    # When the job runs as of 2028-01-01
    report = job.release(dt.datetime(2028, 1, 1, tzinfo=dt.timezone.utc))
    # Then it says what it would release, and changes nothing: the dataset and every object stay under embargo
    assert report.dry_run and report.released == [dataset_id]
    dataset = service.store.datasets[dataset_id]
    assert (dataset.embargo, dataset.released_at, dataset.release_date) == ("EMBARGOED", None, "2027-11-20")
    assert service.documents.tags == tags_before


def test_an_early_release_is_recorded_with_who_and_why_and_shown_as_it_happened():
    # Given the same dataset, and an operator who releases it early with the PI's agreement
    service = make_service()
    dataset_id = _catalogued_under_embargo(service)
    job = ReleaseService(service.store, service.documents, service.settings, clock=lambda: REAL_NOW)
    # When the job runs as of 2028-01-01 with the override
    report = job.release(dt.datetime(2028, 1, 1, tzinfo=dt.timezone.utc), EarlyRelease("ana", "PI asked, ticket 42"))
    # Then it is released at the real time, and the release says who, why, as of when, and the date it had
    assert not report.dry_run and report.released == [dataset_id]
    dataset = service.store.datasets[dataset_id]
    assert (dataset.embargo, dataset.released_at) == (None, REAL_NOW)
    [early] = [d for d in dataset.decisions if d["decision"] == "release-early"]
    assert (early["by"], early["reason"], early["release_date"], early["at"]) == (
        "ana", "PI asked, ticket 42", "2027-11-20", REAL_NOW.isoformat())
    # And an override without a reason is no override
    with pytest.raises(ValueError, match="who releases and why"):
        EarlyRelease("ana", " ")


def test_datasets_show_derives_access_from_when_it_was_released(monkeypatch):
    from obsflow.reads import queries

    # Given released datasets as the table holds them: on time, early with its record, early with none
    def item(released_at, decisions=()):
        return {"embargo": None, "release_date": "2027-11-20", "proposal_id": "pid_1_23", "released_at": released_at,
                "decisions": list(decisions)}

    early = {"decision": "release-early", "by": "ana", "at": REAL_NOW.isoformat(), "reason": "PI asked",
             "release_date": "2027-11-20"}
    on_time = dt.datetime(2027, 11, 20, 6, tzinfo=dt.timezone.utc)
    # Then none says "public since" a date still to come
    assert queries._access(item(on_time)) == "public since 2027-11-20"
    assert queries._access(item(REAL_NOW, [early])) == \
        "public since 2026-12-05, released before its release date 2027-11-20 by ana: PI asked"
    assert "although its release date is 2027-11-20: check it" in queries._access(item(REAL_NOW))


def test_the_release_command_dry_runs_a_future_day_and_asks_for_a_reason_to_release_early(monkeypatch):
    from click.testing import CliRunner

    from obsflow import cli, services
    from obsflow.runs.releases import ReleaseReport

    # Given a release job that records how it was called
    calls = []

    class Job:
        def release(self, now, early=None):
            calls.append(early)
            return ReleaseReport(released=["ds-1"], dry_run=early is None)

    monkeypatch.setattr(services, "release_service", lambda settings=None: Job())
    monkeypatch.setattr(cli.common, "_discover", lambda settings: settings)
    runner = CliRunner()
    # When run as of a day still to come, it says it would release and changed nothing
    dry = runner.invoke(cli.main, ["release", "--now", "2099-01-01"])
    assert dry.exit_code == 0 and "would release 1 dataset(s): ds-1" in dry.output and "nothing was changed" in dry.output
    # And an early release needs a reason, then passes who and why
    assert runner.invoke(cli.main, ["release", "--now", "2099-01-01", "--release-early", " "]).exit_code != 0
    done = runner.invoke(cli.main, ["release", "--now", "2099-01-01", "--release-early", "PI asked"])
    assert done.exit_code == 0 and "released 1 dataset(s)" in done.output
    assert calls[-1].reason == "PI asked" and calls[-1].by


# -- 2. values are numbers ------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-Infinity", float("nan"), float("inf"), "1e400"])
def test_nan_and_infinities_are_refused_where_a_value_is_checked(value):
    option = Option(name="bad_pixel_high", type="float", minimum=0.0, maximum=10.0)
    with pytest.raises(RecipeError, match="is not finite: NaN and infinities are refused"):
        option.check(value)


def test_a_json_value_holding_nan_is_refused():
    with pytest.raises(RecipeError, match="not finite"):
        Option(name="wavelengths", type="json").check('{"a": [1.0, NaN]}')


def test_a_recipe_whose_default_or_bound_is_nan_is_refused():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="not finite"):
        recipe(CHAIN, parameters=(Parameter(name="level", type="float",
                                            values=(DatedValue(effective_from="2020-01-01", value=float("nan")),)),))
    with pytest.raises(ValidationError, match="a bound is a finite number"):
        Option(name="level", type="float", maximum=float("nan"))


def test_a_retry_with_nan_is_refused_before_a_run_is_made():
    # Given a failed run
    service = make_service()
    add_candidate(service, "c1", recipe="vbi-calibration")
    run_id = service.submit().started[0]
    service.start_run(run_id, "arn")
    service.fail_run(run_id, {"Error": "States.TaskFailed"})
    runs_before = set(service.store.runs)
    # When the operator retries it with NaN, then it is refused, and no run is made
    with pytest.raises(RecipeError, match="bad_pixel_high: nan is not finite"):
        service.retry(run_id, {"bad_pixel_high": "nan"})
    assert set(service.store.runs) == runs_before


def test_recipes_set_value_refuses_nan_and_records_nothing():
    import boto3  # noqa: F401 (moto patches boto3's clients)
    from moto import mock_aws

    from obsflow import tables
    from obsflow.recipes import registry
    from obsflow.settings import Settings
    from obsflow.tables.parameter_values import ParameterValueItem

    with mock_aws():
        settings = Settings(stage="attack")
        tables.bind(settings)
        tables.create_tables()
        registry.register(settings)
        # When an operator sets NaN as a dated value
        with pytest.raises(RecipeError, match="not finite"):
            registry.set_value("vbi-calibration", "bad_pixel_high", "nan", dt.date(2026, 1, 1), "ana", "test")
        # Then nothing is recorded
        assert list(ParameterValueItem.scan()) == []
    assert json.dumps(float("nan")) == "NaN"  # what would have been stored, and read back as NaN
