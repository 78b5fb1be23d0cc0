"""Operators' records on DynamoDB and S3 (moto): frames marked bad and unmarked, documents kept with a campaign."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner

from obsflow.cli import common, main
from obsflow.runs.domain import BAD_FRAME
from obsflow.runs.store import DynamoRunStore

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
