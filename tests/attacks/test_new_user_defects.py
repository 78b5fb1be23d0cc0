"""What a new user hit, third round: logs, contradictions, help and hints that say what the code does."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

from click.testing import CliRunner

from obsflow import cli, console


def test_a_log_line_goes_to_stderr_never_into_a_commands_answer():
    script = "from obsflow.observability import logger; logger.warning('dataset decision')"
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert completed.stdout == "" and "dataset decision" in completed.stderr


def test_a_small_plan_says_its_cpu_time_in_a_unit_that_shows_it():
    assert console.cpu_time(1.9) == "1.9 CPU-seconds"
    assert console.cpu_time(600) == "10.0 CPU-minutes"
    assert console.cpu_time(36_000) == "10.0 CPU-hours"


def test_a_retry_echoes_its_values_as_they_will_run_typed(monkeypatch):
    # Given a retry whose override was typed on the command line as text
    run = SimpleNamespace(run_id="run-2", status="READY", overrides={"saturation_level": "61000", "movie_fps": "4"},
                          configuration={"parameters": {"saturation_level": 61000}, "options": {"movie_fps": 4}})
    monkeypatch.setattr(cli.runs, "_runs", lambda ctx: SimpleNamespace(retry=lambda run_id, values: run))
    monkeypatch.setattr(cli.common, "_discover", lambda settings: settings)
    # Then it echoes the checked values, numbers as numbers
    result = CliRunner().invoke(cli.main, ["runs", "retry", "run-1", "--set", "saturation_level=61000",
                                           "--set", "movie_fps=4"])
    assert result.exit_code == 0, result.output
    assert '{"saturation_level": 61000, "movie_fps": 4}' in result.output


def test_candidates_show_shows_the_candidates_processing(monkeypatch):
    detail = {"candidate_id": "sim_0001", "status": "PLANNED", "processing": "SUCCEEDED", "run_ids": ["run-1"],
              "ops": [], "events": []}
    monkeypatch.setattr(cli.ingest, "_queries", lambda: SimpleNamespace(candidate_detail=lambda candidate_id: detail))
    monkeypatch.setattr(cli.ingest, "_catalogue", lambda: SimpleNamespace(processing_of=lambda candidate_id: [
        {"instance_id": "ri-1", "recipe": "vbi-l1@1.2.0", "state": "SUCCEEDED", "state_reason": None,
         "dataset_id": "ds-1"}]))
    monkeypatch.setattr(cli.common, "_discover", lambda settings: settings)
    result = CliRunner().invoke(cli.main, ["candidates", "show", "sim_0001"])
    assert result.exit_code == 0, result.output
    assert "SUCCEEDED" in result.output and "run-1" in result.output and "ri-1" in result.output
    assert "vbi-l1@1.2.0" in result.output and "ds-1" in result.output


def test_the_demos_help_describes_the_demo_that_runs():
    from obsflow.demo import NIGHT

    shown = CliRunner().invoke(cli.main, ["demo", "--help"]).output
    assert len(NIGHT) == 3 and "three VBI candidates" in shown
    for recipe in ("vbi-calibration", "vbi-l1", "vbi-night-summary"):
        assert recipe in shown
    assert "second" in shown and "stopped at the end" in shown
