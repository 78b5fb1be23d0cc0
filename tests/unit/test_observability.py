"""Metrics as the local stack emits them: to a file, from concurrent invocations, never failing a handler."""

from __future__ import annotations

import json
import threading

from obsflow.observability import metrics


def test_concurrent_invocations_write_every_metric_to_the_file_and_never_fail(tmp_path, monkeypatch):
    # Given the local stack's settings: metrics enabled, to a file
    sink = tmp_path / "metrics.jsonl"
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    monkeypatch.setenv("OBSFLOW_METRICS_FILE", str(sink))
    metrics.clear_metrics()  # the process's metric set is shared: drop what an earlier test's handlers left
    errors = []

    def invocation(count: int) -> None:
        try:
            for _ in range(count):
                metrics.add_metric(name="FramesCounted", unit="Count", value=1)
                metrics.flush_metrics()  # what @metrics.log_metrics does at the end of each invocation
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    # When 8 threads add and flush metrics at once (an empty flush among them)
    threads = [threading.Thread(target=invocation, args=(200,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    metrics.flush_metrics()
    # Then no flush failed, and every value is in the file as EMF, none on the terminal
    assert errors == []
    lines = [json.loads(line) for line in sink.read_text().splitlines()]
    assert all(line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "obsflow" for line in lines)
    # (a handler of a local stack that another test of this process left running may flush its own metrics too)
    assert sum(len(v) if isinstance(v := line["FramesCounted"], list) else 1
               for line in lines if "FramesCounted" in line) == 1600


def test_disabled_metrics_are_dropped_at_each_flush_and_never_printed(monkeypatch, capsys):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    monkeypatch.delenv("OBSFLOW_METRICS_FILE", raising=False)
    for _ in range(250):  # powertools alone prints a metric once it holds 100 values, disabled or not
        metrics.add_metric(name="FramesCounted", unit="Count", value=0)
        metrics.flush_metrics()
    assert capsys.readouterr().out == ""
