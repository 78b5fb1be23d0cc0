"""The monitor's guards that need no server: which Host headers it answers, what counts as loopback, the JSON
of its API, and what its --help promises."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner

from obsflow.cli import main
from obsflow.monitor import views
from obsflow.monitor.server import answered_hosts, is_loopback
from obsflow.tables.runs import HistoryEntry

AT = dt.datetime(2026, 11, 21, 21, 4, 5, tzinfo=dt.timezone.utc)


def test_a_monitor_on_loopback_answers_its_two_loopback_names_with_its_port_only():
    # Given a monitor bound to 127.0.0.1:8080, and one bound to a name behind a proxy
    # When the Host headers each answers are asked for
    # Then each is its bound name with its port (plus localhost on loopback), nothing else
    assert answered_hosts("127.0.0.1", 8080) == {"127.0.0.1:8080", "localhost:8080"}
    assert answered_hosts("Monitor.Example.org", 9000) == {"monitor.example.org:9000"}


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("localhost", True), ("::1", True), ("127.0.0.2", True),
    ("0.0.0.0", False), ("10.0.0.5", False), ("monitor.example.org", False),
])
def test_only_addresses_this_machine_alone_reaches_count_as_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_the_api_gives_sets_as_lists_and_times_as_iso_8601_never_python_reprs():
    # Given overview rows holding what the tables give back: a string set, times, a run's history as dicts
    rows = {"ops": [{"op_id": "op_1", "candidate_ids": {"cand_b", "cand_a"}, "first_frame_at": AT}],
            "runs": [{"history": [HistoryEntry(status="FAILED", at=AT, detail="dark_level failed").as_dict(),
                                  HistoryEntry(status="READY", at=AT).as_dict()]}]}
    # When they are written as the API's JSON
    answer = json.loads(views.api_json(rows))
    # Then lists are lists and times are ISO 8601 strings
    assert answer["ops"][0] == {"op_id": "op_1", "candidate_ids": ["cand_a", "cand_b"],
                                "first_frame_at": "2026-11-21T21:04:05+00:00"}
    assert answer["runs"][0]["history"] == [
        {"status": "FAILED", "at": "2026-11-21T21:04:05+00:00", "detail": "dark_level failed"},
        {"status": "READY", "at": "2026-11-21T21:04:05+00:00"}]


def test_a_value_without_a_json_form_is_refused_rather_than_written_as_its_repr():
    with pytest.raises(TypeError, match="no JSON form for a value of type object"):
        views.api_json({"odd": object()})


def test_the_monitor_s_help_says_it_has_no_authentication_and_needs_a_proxy_off_loopback():
    # When the operator asks the monitor command for its help
    result = CliRunner().invoke(main, ["monitor", "--help"])
    # Then it says there is no authentication and that another --host needs a proxy with authentication
    help_text = " ".join(result.output.split())
    assert result.exit_code == 0
    assert "no authentication" in help_text and "proxy with authentication" in help_text
    assert "421" in help_text
