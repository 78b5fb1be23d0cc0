"""Operators' records on DynamoDB and S3 (moto): frames marked bad and unmarked, documents kept with a campaign."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from click.testing import CliRunner

from obsflow.cli import common, main
from obsflow.runs.domain import BAD_FRAME, Campaign
from obsflow.runs.store import DynamoRunStore
from obsflow.services import campaign_service

T0 = dt.datetime(2026, 11, 21, 21, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def cli(catalog, monkeypatch):
    """The CLI on the catalog stage of moto (its resources named by convention, not discovered)."""
    settings, _ = catalog
    monkeypatch.setattr(common, "_discover", lambda asked: settings)
    return lambda *args: CliRunner().invoke(main, ["--stage", settings.stage, *args])


def test_a_mark_taken_back_selects_nothing_but_stays_on_record_and_a_new_mark_keeps_it(catalog, cli):
    settings, _ = catalog
    store = DynamoRunStore(settings)
    # Given two frames marked bad, one of them unmarked, then marked again; the other unmarked
    assert store.add_tags(BAD_FRAME, ["f1", "f2"], "dq", "satellite trail", T0) == 2
    assert store.withdraw_tags(BAD_FRAME, ["f1", "f2", "f9"], "ana", "a log fault", T0 + dt.timedelta(hours=1)) == 2
    assert store.withdraw_tags(BAD_FRAME, ["f1"], "ana", "again", T0 + dt.timedelta(hours=2)) == 0
    assert store.add_tags(BAD_FRAME, ["f1"], "bo", "bad after all", T0 + dt.timedelta(hours=3)) == 1
    # Then only the mark in force selects
    assert store.tagged(BAD_FRAME) == ["f1"]
    listed = json.loads(cli("frames", "list", "--bad", "--json").output)
    assert [(r["target_id"], r["tagged_by"], r["reason"]) for r in listed] == [("f1", "bo", "bad after all")]
    # And the history keeps every mark, with who took it back, when and why
    history = json.loads(cli("frames", "list", "--bad", "--history", "--json").output)
    assert [(r["target_id"], r["tagged_by"], r["withdrawn_by"], r["withdrawn_reason"]) for r in history] == [
        ("f1", "dq", "ana", "a log fault"), ("f1", "bo", None, None), ("f2", "dq", "ana", "a log fault")]
    assert history[0]["withdrawn_at"].startswith("2026-11-21T22:00")
    # And --history alone is a usage error that says what it goes with
    alone = cli("frames", "list", "--history")
    assert alone.exit_code == 2 and "--history goes with --bad" in alone.output


def test_documents_attached_to_a_campaign_at_the_same_time_are_all_recorded_and_kept_in_s3(catalog):
    settings, s3 = catalog
    store = DynamoRunStore(settings)
    store.create_campaign(Campaign("docs", "commissioning", "ops", "why", T0, recipe="frame-census@1.0.0"))
    campaigns = campaign_service(settings)
    # Given two operators attaching files of the same name at the same time, and one of them again
    bodies = [b"minutes of the first meeting", b"minutes, corrected"]
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda body: campaigns.attach("docs", "minutes.txt", body, "kickoff", "ana"), bodies))
    again = campaigns.attach("docs", "minutes.txt", bodies[0], "kickoff", "ana")
    # Then both are recorded, as versions 1 and 2, the repeat changes nothing, and S3 holds each under the campaign
    documents = store.campaign("docs").documents
    assert sorted(d["version"] for d in documents) == [1, 2] and [new for _, new in done] == [True, True]
    assert again[1] is False and len(store.campaign("docs").documents) == 2
    for document in documents:
        body = s3.get_object(Bucket=settings.bucket_name("work"), Key=document["key"])["Body"].read()
        assert hashlib.sha256(body).hexdigest() == document["sha256"] and document["key"].startswith(
            "campaigns/docs/documents/")
    # And there is no record for a campaign that does not exist
    assert store.add_campaign_document("nosuch", documents[0], []) is False and store.campaign("nosuch") is None
