"""The monitor over a stage on moto: it answers its own host name only, its API is plain JSON, and a stage
that does not answer is said so, on the page, in the API and on a page left open."""

from __future__ import annotations

import ast
import datetime as dt
import http.client
import json
import os
import re
import shutil
import socket
import threading
from html import escape

import pytest
from click.testing import CliRunner

from obsflow import tables
from obsflow.cli import main
from obsflow.monitor.reads import StageReads
from obsflow.monitor.server import Monitor
from obsflow.runs.domain import Campaign, Dataset, HistoryEntry, Instance, Run, Ticket
from obsflow.runs.store import DynamoRunStore
from obsflow.services import campaign_service
from obsflow.settings import Settings
from obsflow.tables import candidates

NIGHT = dt.datetime(2026, 11, 21, 21, 4, 5, tzinfo=dt.timezone.utc)
SECTIONS = ("ops", "candidates", "runs", "tickets", "datasets", "instances", "campaigns")
ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)?$")
STR_OF_A_DATETIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")  # what str(datetime) gives: not ISO 8601


def seed_a_night(stack, candidate) -> None:
    """A candidate's frames ingested, then a failed run of it with its ticket, instance, dataset and campaign."""
    for key, body in candidate.frame_objects():
        stack.put(key, body)
    stack.put(*candidate.candidate_object())
    stack.put(*candidate.manifest_object())
    stack.drain()
    proposal = candidates.get(candidate.candidate_id).proposal_id
    store, later = DynamoRunStore(stack.settings), NIGHT + dt.timedelta(minutes=3)
    store.create_instance(Instance("ri-mon", candidate.candidate_id, proposal, "frame-census", "1", "2026-11-21", NIGHT,
                                   reference=f"2026-11-21/{proposal}", candidate_ids={candidate.candidate_id},
                                   state="ERROR", state_reason="its run failed", date_processed=later,
                                   run_ids={"run-mon-1"}))
    store.create_run(Run("run-mon-1", "ri-mon", candidate.candidate_id, proposal, "frame-census", "1", 10, ["small"],
                         {"parameters": {"dark_level": {"tolerance": 0.2}}}, NIGHT, status="FAILED",
                         history=[HistoryEntry("READY", NIGHT), HistoryEntry("FAILED", later, "dark_level failed")],
                         started_at=NIGHT, finished_at=later, error={"task": "dark_level", "kind": "configuration"}))
    store.create_ticket(Ticket("TKT-run-mon-1-1", "failure:configuration", "run run-mon-1 failed in task dark_level",
                               later, run_id="run-mon-1", links={"run": "/runs/run-mon-1"}, attempts=[1],
                               suggested_action="obsflow runs retry run-mon-1"))
    store.create_dataset(Dataset("ds-mon", "run-mon-1", proposal, candidate.candidate_id, "frame-census@1", "data",
                                 f"{proposal}/ds-mon/", "prod-mon", "v1", 4, [], {"tasks": []}, later,
                                 release_date="2027-11-21"))
    store.create_campaign(Campaign("reprocess-mon", "reprocessing", "ops", "new darks", later,
                                   selection={"recipe": "frame-census"}, instance_ids=["ri-mon"],
                                   history=[{"status": "DRAFT", "at": later.isoformat()}]))


@pytest.fixture
def monitor(stack, small_candidate):
    """Given a night on the stage and the monitor over it, bound to 127.0.0.1 on a free port."""
    seed_a_night(stack, small_candidate)
    served = Monitor(StageReads(stack.settings), stack.settings.stage, port=0).start()
    yield served
    served.stop()


def ask(monitor: Monitor, path: str, host: str | None = "") -> tuple[int, str, str]:
    """GET ``path`` naming ``host`` in the Host header ("" names the monitor itself, None leaves Host out)."""
    port = monitor.server.server_port
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    connection.putrequest("GET", path, skip_host=True)
    if host is not None:
        connection.putheader("Host", host or f"127.0.0.1:{port}")
    connection.endheaders()
    response = connection.getresponse()
    answer = (response.status, response.getheader("Content-Type"), response.read().decode())
    connection.close()
    return answer


def a_closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_only_the_names_the_monitor_is_bound_to_are_answered_and_any_other_host_gets_421(monitor):
    # Given a monitor bound to 127.0.0.1 on PORT, over a night on the stage
    port = monitor.server.server_port
    # When the operator's browser asks by either loopback name, with the monitor's port
    for name in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}"):
        status, _, body = ask(monitor, "/api/overview.json", name)
        # Then the overview is answered
        assert status == 200 and json.loads(body)["runs"][0]["run_id"] == "run-mon-1", name
    # When a page whose DNS name was rebound to 127.0.0.1 has the browser ask under its own name, or a request
    # names the wrong port or no host at all
    for host in ("attacker.example.com", f"attacker.example.com:{port}", "127.0.0.1:1", f"127.0.0.1:{port}.evil", None):
        for path in ("/api/overview.json", "/", "/runs/run-mon-1", "/datasets/ds-mon"):
            status, content_type, body = ask(monitor, path, host)
            # Then it is refused with 421 and a one-line reason, and nothing of the stage is in the answer
            assert status == 421, (host, path)
            assert body.strip().count("\n") == 0 and f"127.0.0.1:{port} or localhost:{port}" in body
            if path.startswith("/api/"):
                assert content_type == "application/json" and "error" in json.loads(body)
            assert "run-mon-1" not in body and "cand_small" not in body and "pid_" not in body


def strings(value, path: str = ""):
    """Every string in a JSON document, with where it is."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings(item, f"{path}[{index}]")
    elif isinstance(value, str):
        yield path, value


def is_a_python_repr(text: str) -> bool:
    if " object at 0x" in text:
        return True
    if not text.startswith(("[", "{", "(")):
        return False
    try:
        return isinstance(ast.literal_eval(text), (list, dict, set, tuple))
    except (ValueError, SyntaxError):
        return False


def download(monitor: Monitor, path: str, host: str | None = "") -> tuple[int, dict[str, str], bytes]:
    """GET ``path`` as ``ask`` does: the status, the headers and the bytes."""
    port = monitor.server.server_port
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    connection.request("GET", path, headers={"Host": host or f"127.0.0.1:{port}"})
    response = connection.getresponse()
    answer = (response.status, dict(response.getheaders()), response.read())
    connection.close()
    return answer


def test_a_campaign_page_lists_its_documents_and_serves_only_those_as_downloads(monitor, stack):
    # Given a campaign with a report attached, one that holds a script
    planted = b"<script>fetch('/api/overview.json').then(r => r.text()).then(leak)</script>"
    stack.s3.create_bucket(Bucket=stack.settings.bucket_name("work"))  # this stack ingests only: no work bucket yet
    campaign_service(stack.settings).attach("reprocess-mon", "report.html", planted, "the night's report", "ana")
    # When its page is asked for
    status, _, page = ask(monitor, "/campaigns/reprocess-mon")
    # Then it lists the document with who and why, linked to the monitor's download of it; the overview links the page
    assert status == 200 and "report.html" in page and "the night&#x27;s report" in page
    assert 'href="/campaigns/reprocess-mon/documents/1"' in page
    assert 'href="/campaigns/reprocess-mon"' in ask(monitor, "/")[2]
    # When it is downloaded, Then it comes as an attachment that never runs as a page of the monitor
    status, headers, body = download(monitor, "/campaigns/reprocess-mon/documents/1")
    assert status == 200 and body == planted and headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Disposition"] == 'attachment; filename="report.html"'
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Content-Security-Policy"] == "sandbox"
    # And nothing but a recorded document is served: another number, a key, another campaign, another host
    for path in ("/campaigns/reprocess-mon/documents/2", "/campaigns/reprocess-mon/documents/0",
                 "/campaigns/reprocess-mon/documents/..%2F..%2Fplans", "/campaigns/nosuch/documents/1",
                 "/campaigns/reprocess-mon/documents/%2E%2E/1"):
        status, _, body = download(monitor, path)
        assert status == 404 and planted not in body, path
    assert download(monitor, "/campaigns/reprocess-mon/documents/1", "attacker.example.com")[0] == 421


def test_runs_datasets_and_the_catalogue_have_pages_and_a_wrong_token_is_a_404_saying_what_to_do(monitor):
    # When the runs' listing page is asked, and one with a made-up token
    status, _, body = ask(monitor, "/runs/")
    wrong_status, _, wrong = ask(monitor, "/catalogue/?next=e30")
    # Then the first lists the seeded run, newest first, and the second says where to start
    assert status == 200 and "run-mon-1" in body and "newest first" in body
    assert wrong_status == 404 and "start from /catalogue/" in wrong
    assert ask(monitor, "/datasets/")[0] == 200 and "ds-mon" in ask(monitor, "/datasets/")[2]


def test_the_overview_api_is_plain_json_with_lists_and_iso_8601_times(monitor):
    # Given a night with an OP, a candidate, a failed run, its ticket, instance, dataset and campaign
    # When a script asks the API for the overview
    status, content_type, body = ask(monitor, "/api/overview.json")
    overview = json.loads(body)
    # Then every section has rows, so every field it emits is looked at below
    assert status == 200 and content_type == "application/json"
    assert all(overview[section] for section in SECTIONS), {s: len(overview[s]) for s in SECTIONS}
    # And no string holds a Python repr (of a list, set, dict or object) or a datetime's str()
    for where, text in strings(overview):
        assert not is_a_python_repr(text), (where, text)
        assert not STR_OF_A_DATETIME.search(text), (where, text)
    # And every time is an ISO 8601 string
    times = {where: text for where, text in strings(overview)
             if re.search(r"(_at|\.at|date_processed)$", where)}
    assert len(times) >= 10 and all(ISO_TIME.match(text) for text in times.values()), times
    # And the sets the tables hold are JSON lists
    [op] = [op for op in overview["ops"] if op["task_type"] == "observe"]
    assert op["candidate_ids"] == ["cand_small"] and isinstance(op["manifest_ids"], list)
    assert overview["instances"][0]["candidates"] == ["cand_small"]
    assert overview["runs"][0]["history"][1] == {"status": "FAILED", "at": "2026-11-21T21:07:05+00:00",
                                                 "detail": "dark_level failed"}


def seed_two_versions(stack) -> tuple[str, str]:
    """Two versions of one product in the data bucket, as vbi-l1 writes them (an empty primary HDU, the image
    tile-compressed, FILE_ID naming its observe frame): ds-cmp-a lossless, ds-cmp-b a reprocessing quantized with
    l1_quantize_level 4 and made on another master calibration; both under embargo for pid_1_23."""
    import numpy as np
    from astropy.io import fits
    from obsflow_tasks.vbi.tasks import l1_fits_bytes

    store, data = DynamoRunStore(stack.settings), stack.settings.bucket_name("data")
    stack.s3.create_bucket(Bucket=data)
    rng = np.random.default_rng(7)
    scenes = {f"cmp_observe_{i:06d}": rng.normal(1000.0, 60.0, (32, 32)).astype(np.float32) for i in range(3)}
    for dataset_id, level, calibration, minutes in (("ds-cmp-a", 0, "ds-cal-1", 10), ("ds-cmp-b", 4, "ds-cal-2", 20)):
        files = []
        for index, (file_id, scene) in enumerate(scenes.items()):
            name, header = f"VBI_{dataset_id}_{index:04d}_L1.fits", fits.Header({"FILE_ID": file_id, "DSETID": dataset_id})
            body = l1_fits_bytes(scene, header, level)
            stack.s3.put_object(Bucket=data, Key=f"pid_1_23/{dataset_id}/{name}", Body=body)
            files.append({"name": name, "key": f"pid_1_23/{dataset_id}/{name}", "sha256": f"{dataset_id}{index}",
                          "size": len(body), "task": "frames", "tags": ["product", "l1"]})
        metrics = {"frames": [{"light_level": 1000.0 + level}], "warnings": [],
                   "qc": [{"name": "light level, median", "value": 1000.0 + level, "unit": "ct", "note": ""}]}
        stack.s3.put_object(Bucket=data, Key=f"pid_1_23/{dataset_id}/quality_metrics.json", Body=json.dumps(metrics))
        files.append({"name": "quality_metrics.json", "key": f"pid_1_23/{dataset_id}/quality_metrics.json",
                      "sha256": f"{dataset_id}q", "size": 1, "task": "quality_metrics", "tags": ["quality", "product"]})
        provenance = {"configuration": {"parameters": {}, "options": {"l1_quantize_level": level}}, "tasks": [],
                      "input_frames": [{"file_id": f, "role": "observe"} for f in scenes],
                      "upstream_datasets": [{"role": "calibration", "instance_id": "ri-cal", "dataset_id": calibration,
                                             "recipe": "vbi-calibration@1.0.0", "kind": "calibration",
                                             "version_key": calibration}]}
        store.create_dataset(Dataset(dataset_id, f"run-{dataset_id}", "pid_1_23", "cand_small", "vbi-l1@3.0.0", data,
                                     f"pid_1_23/{dataset_id}/", "prod-cmp", f"v-{dataset_id}", 3, files, provenance,
                                     NIGHT + dt.timedelta(minutes=minutes), release_date="2027-11-21",
                                     embargo="EMBARGOED"))
    return "ds-cmp-a", "ds-cmp-b"


def test_two_versions_compared_on_the_monitor_s_page_and_by_the_command_as_the_roles_allow(monitor, stack):
    # Given two versions of a product, the second quantized by a changed option
    a, b = seed_two_versions(stack)
    # When the page comparing them is asked for
    status, _, page = ask(monitor, f"/compare/{a}/{b}")
    # Then it shows the option that changed, the calibrations each used, the QC value with B - A, and each frame
    # matched by its observe frame with non-zero pixel statistics
    assert status == 200, page
    assert "options.l1_quantize_level" in page and "ds-cal-1" in page and "ds-cal-2" in page
    assert "<td>light level, median</td><td>1000</td><td>1004</td><td>4</td>" in page
    assert "3 compared, 0 identical, 3 differing" in page and "cmp_observe_000002" in page
    # And the dataset page links it from its versions
    assert f'href="/compare/{a}/{b}"' in ask(monitor, f"/datasets/{b}")[2]
    # When the command compares them as a script would
    compared = CliRunner().invoke(main, ["--stage", "test", "datasets", "compare", a, b, "--json"])
    # Then it gives the same differences, the pixels' under the quantization step
    assert compared.exit_code == 0, compared.output
    result = json.loads(compared.stdout)
    assert result["configuration"] == [{"name": "options.l1_quantize_level", "a": 0, "b": 4}]
    assert [r["frame"] for r in result["frames"]] == list(sorted(r["frame"] for r in result["frames"]))
    assert all(0 < r["max_abs"] < 60.0 and 0 < r["relative"] < 0.05 for r in result["frames"]), result["frames"]
    # When a PI of another proposal asks for them, Then it is refused before anything is compared
    refused = CliRunner().invoke(main, ["--stage", "test", "datasets", "compare", a, b],
                                 env={"OBSFLOW_ROLE": "pi-read", "OBSFLOW_PROPOSAL": "pid_9_9"})
    assert refused.exit_code == 1 and f"{a} is proposal pid_1_23's, under embargo until 2027-11-21" in refused.output
    # And their own PI may
    assert CliRunner().invoke(main, ["--stage", "test", "datasets", "compare", a, b, "--no-pixels"],
                              env={"OBSFLOW_ROLE": "pi-read", "OBSFLOW_PROPOSAL": "pid_1_23"}).exit_code == 0
    # When the page is asked with something that is not an id, Then nothing is read and it says what an id is
    for other in ("..%2Fetc", "ds..x", "ds%20x"):
        status, _, page = ask(monitor, f"/compare/{a}/{other}")
        assert status == 404 and ("is not a dataset id" in page or "no page" in page), other
    assert "&#x27;ds x&#x27; is not a dataset id" in ask(monitor, f"/compare/{a}/ds%20x")[2]


@pytest.fixture
def stopped_stack_monitor():
    """Given the monitor of a local stack that has been stopped: nothing listens at its endpoint."""
    settings = Settings(stage="stopped", endpoint_url=f"http://127.0.0.1:{a_closed_port()}")
    served = Monitor(StageReads(settings), settings.stage, port=0).start()
    yield served, settings.endpoint_url
    served.stop()


def test_a_stopped_stack_is_said_on_the_page_and_by_the_api_with_503(stopped_stack_monitor):
    # Given the monitor of a local stack that was stopped
    monitor, endpoint = stopped_stack_monitor
    # When the operator opens the overview, and a script asks the API
    page_status, _, page = ask(monitor, "/")
    api_status, content_type, api = ask(monitor, "/api/overview.json")
    # Then both say the stack is not answering and how to start it, with 503, instead of a traceback
    said = f"the stack is not answering at {endpoint}: start it with `obsflow local serve` (or check AWS credentials)"
    assert page_status == 503 and "The stack is not answering" in page and escape(said) in page
    assert "Traceback" not in page
    assert api_status == 503 and content_type == "application/json" and json.loads(api) == {"error": said}


def test_a_monitor_off_loopback_warns_on_stderr_that_it_has_no_authentication_and_one_on_loopback_does_not(stack):
    # Given a stage the CLI finds (the ingest stack on moto)
    # When the operator asks for the monitor on an address other than loopback (here one this machine lacks)
    result = CliRunner().invoke(main, ["--stage", "test", "monitor", "--host", "192.0.2.1", "--port", "0"])
    # Then, before it listens, stderr warns that it has no authentication and needs a proxy with authentication
    warning = " ".join(result.stderr.split())
    assert "no authentication" in warning and "proxy with authentication" in warning and "192.0.2.1" in warning
    assert result.exit_code == 1 and "is --host an address of this machine?" in result.stderr
    # When it is asked for on loopback (on a port that is taken, so the command ends after its start-up)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = CliRunner().invoke(main, ["--stage", "test", "monitor", "--port", str(taken.getsockname()[1])])
    # Then there is no warning, only that the port is taken
    assert result.exit_code == 1 and "choose another --port" in result.stderr
    assert "authentication" not in result.stderr


# -- a page left open while the stack stops and starts again (a real browser) -------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class MotoEndpoint:
    """The stage's endpoint as `obsflow local serve` gives it (moto over HTTP), which a test stops and starts again
    on the same port. Moto keeps its state in this process; one connection per request, so a stop is a stop."""

    def __init__(self):
        self.port = 0

    def start(self) -> "MotoEndpoint":
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import WSGIRequestHandler, make_server

        one_request_each = type("OneRequestEach", (WSGIRequestHandler,),
                                {"protocol_version": "HTTP/1.0", "log_request": lambda *args, **kwargs: None})
        self._server = make_server("127.0.0.1", self.port, DomainDispatcherApplication(create_backend_app),
                                   threaded=True, request_handler=one_request_each)
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def watched_stage():
    """Given a stage's tables on a moto endpoint, one run on it, and the monitor over it."""
    endpoint = MotoEndpoint().start()
    settings = Settings(stage="watched", endpoint_url=f"http://127.0.0.1:{endpoint.port}")
    tables.bind(settings)
    tables.create_tables()
    DynamoRunStore(settings).create_run(Run("run-watched", "ri-watched", "cand_watched", "pid_1_2", "frame-census", "1",
                                            10, ["small"], {}, NIGHT, status="RUNNING"))
    served = Monitor(StageReads(settings), settings.stage, port=0).start()
    yield endpoint, served
    served.stop()
    endpoint.stop()


@pytest.fixture
def browser():
    if CHROMIUM is None:
        if os.environ.get("OBSFLOW_REQUIRE_BROWSER"):  # CI installs it: a missing browser must fail there, not skip
            raise RuntimeError("OBSFLOW_REQUIRE_BROWSER is set but no chromium is installed: apt-get install chromium")
        pytest.skip("no chromium to drive (`apt-get install chromium`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        yield launched
        launched.close()


def test_an_open_page_says_since_when_it_is_stale_while_the_stack_is_stopped_and_clears_when_it_answers(
        watched_stage, browser):
    endpoint, monitor = watched_stage
    # Given the operator has had the overview open since 21:04:05 (the page's clock), showing the running run
    page = browser.new_page(timezone_id="UTC")
    page.clock.set_fixed_time(NIGHT)  # the page's refreshes still come every few seconds
    page.goto(monitor.url)
    assert "run-watched" in page.inner_text("#runs") and page.is_hidden("#stale")
    # When the stack stops, and the page's next refresh comes
    endpoint.stop()
    # Then a banner says since when the page is stale and why, over the last picture, which stays
    page.wait_for_selector("#stale", state="visible", timeout=15_000)
    assert page.inner_text("#stale") == (
        "stale since 21:04:05 — last refresh failed: "
        f"the stack is not answering at http://127.0.0.1:{endpoint.port}: "
        "start it with `obsflow local serve` (or check AWS credentials)")
    assert "run-watched" in page.inner_text("#runs")
    # When the stack answers again, Then the next refresh clears the banner
    endpoint.start()
    page.wait_for_selector("#stale", state="hidden", timeout=15_000)
    assert "run-watched" in page.inner_text("#runs") and page.inner_text("#refreshed") == "refreshed 21:04:05"
