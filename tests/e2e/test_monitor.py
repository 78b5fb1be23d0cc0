"""obsflow monitor in a real headless browser (Debian's chromium, driven by Playwright), against the local
stack: the overview, a run's DAG with task states, a dataset's quality plots, and a page that follows
changes by itself."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from obsflow import tables
from obsflow.local.stack import LocalStack
from obsflow.monitor.reads import StageReads
from obsflow.monitor.server import Monitor
from obsflow.services import run_service
from obsflow.simulate import simulate_candidate
from obsflow.tables import runs, tickets

from tests.e2e.test_runs import census, finished_run, upload, wait_for

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = os.environ.get("OBSFLOW_MONITOR_SCREENSHOTS")  # a folder: keep the screenshots (the README's)

if CHROMIUM is None:
    if os.environ.get("OBSFLOW_REQUIRE_BROWSER"):  # CI installs it: a missing browser must fail there, not skip
        raise RuntimeError("OBSFLOW_REQUIRE_BROWSER is set but no chromium is installed: apt-get install chromium")
    pytest.skip("no chromium to drive (`apt-get install chromium`; `make test` installs it where it can)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def stack():
    with LocalStack(port=0, stage="monitor", log_level="ERROR", submit_interval_s=0.5) as local:
        tables.bind(local.settings)
        yield local


@pytest.fixture(scope="module")
def monitor(stack):
    served = Monitor(StageReads(stack.settings), stack.settings.stage, port=0).start()
    yield served
    served.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )
        yield launched
        launched.close()


def screenshot(page, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / name), full_page=True)


def test_the_overview_follows_the_night_and_shows_a_failed_run_with_its_ticket(stack, monitor, browser):
    # Given an operator has the monitor open on a stage where nothing has arrived yet
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(monitor.url)
    assert "no OPs yet" in page.inner_text("#ops")
    # When a candidate's frames arrive and its run fails on a configuration fault
    service = run_service(stack.settings)
    service.pause()
    upload(stack, census("cand_monitor_fail", seed=23))
    run = wait_for(lambda: [r for r in runs.all_runs() if r.candidate_id == "cand_monitor_fail"], "the run")[0]
    service.inject_fault(run.run_id, "dark_level", "configuration")
    service.resume()
    assert finished_run("cand_monitor_fail").status == "FAILED"
    # Then, without reloading, the page shows the OPs filled, the failed run and its ticket with what to do
    page.wait_for_function("document.querySelector('#run-counts').textContent.includes('FAILED') && "
                           "document.querySelector('#tickets').tagName == 'TABLE'", timeout=20_000)
    assert "3 of 3" in page.inner_text("#ops")
    [ticket] = [t for t in tickets.all_tickets() if t.run_id == run.run_id]
    ticket_row = page.inner_text("#tickets")
    assert ticket.ticket_id in ticket_row and f"obsflow runs retry {run.run_id}" in ticket_row
    screenshot(page, "monitor-overview.png")
    # And the run's page draws the recipe's DAG with the failed task red and the task's own message
    page.click(f"#runs a[href='/runs/{run.run_id}']")
    page.wait_for_selector("#dag")
    states = {g.get_attribute("data-task"): g.get_attribute("data-status") for g in page.query_selector_all("#dag g.task")}
    assert states == {"inventory": "succeeded", "dark_level": "failed", "observe_stats": "succeeded",
                      "summary": "not run"}
    assert page.eval_on_selector("#dag g[data-task=dark_level] rect", "r => getComputedStyle(r).fill") == "rgb(214, 69, 65)"
    assert "configuration fault is injected" in page.inner_text("#failure")


def test_a_dataset_page_shows_its_quality_plots_with_labelled_axes_and_qc_values(stack, monitor, browser):
    # Given a VBI candidate processed to a Level 1 dataset
    candidate = simulate_candidate("cand_monitor_vbi", n_dark=2, n_gain=2, n_observe=4, shape=(32, 32), seed=29)
    upload(stack, candidate)
    science = wait_for(lambda: next((r for r in runs.all_runs() if r.candidate_id == "cand_monitor_vbi"
                                     and r.recipe == "vbi-l1" and r.status in ("SUCCEEDED", "FAILED")), None),
                       "the vbi-l1 run")
    assert science.status == "SUCCEEDED", science.error
    # When the operator opens it from the overview
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(monitor.url)
    page.click(f"#datasets a[href='/datasets/{science.dataset_id}']")
    # Then the quality plots render with their axes labelled with units, beside the QC values and warnings
    page.wait_for_selector(".chart svg")
    labels = [e.text_content() for e in page.query_selector_all(".chart .y-label")]
    assert labels == ["calibrated signal [ct]", "granulation RMS contrast [%]", "r0 [cm]"]
    box = page.query_selector(".chart svg polyline").bounding_box()
    assert box["width"] > 100  # a line across the frames, not an empty plot
    qc = page.inner_text("#qc")
    assert "granulation RMS contrast, median" in qc and "bad pixels" in qc
    assert page.query_selector("#warnings li") is not None
    screenshot(page, "monitor-dataset.png")
    # And its run's page shows every task of vbi-l1 succeeded, with durations
    page.click(f"a[href='/runs/{science.run_id}']")
    page.wait_for_selector("#dag")
    statuses = {g.get_attribute("data-status") for g in page.query_selector_all("#dag g.task")}
    assert statuses == {"succeeded"}
    assert " s" in page.text_content("#dag g[data-task=frames]")
    screenshot(page, "monitor-run.png")


def test_unknown_pages_and_ids_say_where_to_go(monitor, browser):
    page = browser.new_page()
    response = page.goto(monitor.url + "runs/run-nonexistent")
    assert response.status == 404 and "obsflow runs list" in page.inner_text("#not-found")
    response = page.goto(monitor.url + "datasets/..%2F..%2Fetc")
    assert response.status == 404 and "start from the overview" in page.inner_text("#not-found")


def test_the_monitor_serves_the_overview_as_json_for_scripts(monitor):
    import json
    import urllib.request

    started = time.perf_counter()
    with urllib.request.urlopen(monitor.url + "api/overview.json", timeout=10) as response:
        overview = json.loads(response.read())
    assert set(overview) >= {"ops", "candidates", "runs", "tickets", "datasets", "instances", "campaigns"}
    assert time.perf_counter() - started < 10
