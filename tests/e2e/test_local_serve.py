"""End to end: `obsflow local serve` in its own process, boto3 and the CLI as outside clients."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

import boto3
import pytest

from obsflow.local.stack import free_port

pytestmark = pytest.mark.e2e


def serve(tmp_path, port: int, *options: str, log_name: str = "serve.log", env: dict | None = None):
    """`obsflow local serve` in its own process, once it says it is ready: (process, log path)."""
    env = {**(env or os.environ), "PYTHONUNBUFFERED": "1"}
    env.pop("AWS_ENDPOINT_URL", None)
    log = tmp_path / log_name
    process = subprocess.Popen([sys.executable, "-m", "obsflow.cli", "local", "serve", "--port", str(port), *options],
                               stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while "Ctrl-C stops it" not in log.read_text():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "local stack did not start within 60 s"
        time.sleep(0.2)
    return process, log


@pytest.fixture
def served_stack(tmp_path):
    port = free_port()
    process, log = serve(tmp_path, port, "--state-dir", str(tmp_path / "state"))
    yield f"http://127.0.0.1:{port}", process, log
    if process.poll() is None:
        process.kill()


def run_cli(endpoint: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "obsflow.cli", "--endpoint-url", endpoint, *args],
                          capture_output=True, text=True, timeout=60)


def cli(endpoint: str, *args: str) -> str:
    result = run_cli(endpoint, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def candidate(endpoint: str, candidate_id: str) -> dict:
    """The candidate as the CLI shows it; {} until its document is ingested."""
    result = run_cli(endpoint, "candidates", "show", candidate_id, "--json")
    return json.loads(result.stdout) if result.returncode == 0 else {}


def test_uploads_from_an_outside_client_are_ingested_and_processed(served_stack, small_candidate):
    endpoint, process, log = served_stack
    # Given the local stack's resource names, as `obsflow info --json` prints them
    info = json.loads(cli(endpoint, "info", "--json"))
    assert info["endpoint_url"] == endpoint
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    # When the summit uploads the candidate, the frames and the manifest with boto3
    for key, body in [small_candidate.candidate_object(), *small_candidate.frame_objects(),
                      ("notes/stray.txt", b"not for obsflow"), small_candidate.manifest_object()]:
        s3.put_object(Bucket=info["buckets"]["ingest"], Key=key, Body=body)
    # Then the candidate becomes READY and its run succeeds, as the CLI shows
    deadline = time.monotonic() + 90
    while (detail := candidate(endpoint, "cand_small")).get("processing") != "SUCCEEDED":
        assert time.monotonic() < deadline and detail.get("processing") != "FAILED", log.read_text()
        time.sleep(0.5)
    assert detail["ready_reason"] == "complete"
    assert [op["received"] for op in detail["ops"]] == [4, 2, 2]
    assert len(json.loads(cli(endpoint, "frames", "list", "--op", "cand_small_dark", "--json"))) == 2
    run = json.loads(cli(endpoint, "runs", "show", detail["run_ids"][0], "--json"))
    assert [(t["task"], t["status"]) for t in run["tasks"]] == [
        ("inventory", "succeeded"), ("dark_level", "succeeded"), ("observe_stats", "succeeded"), ("summary", "succeeded")]
    assert "SUCCEEDED" in cli(endpoint, "runs", "list")
    # And the registered recipe explains itself
    assert [r["name"] for r in json.loads(cli(endpoint, "recipes", "list", "--json"))] == [
        "frame-census", "frame-census-manual", "vbi-calibration", "vbi-calibration", "vbi-l1", "vbi-l1",
        "vbi-night-summary"]
    shown = cli(endpoint, "recipes", "show", "frame-census")
    assert "2. dark_level | observe_stats" in shown and "saturation_level" in shown and "62000 from 2026-06-01" in shown
    ops = {op["op_id"]: (op["received"], op["expected"], op["complete"]) for op in json.loads(cli(endpoint, "ops", "list", "--json"))}
    assert ops == {op.op_id: (len(op.frames), len(op.frames), True) for op in small_candidate.ops}
    while not (quarantined := json.loads(cli(endpoint, "frames", "list", "--quarantined", "--json"))):
        assert time.monotonic() < deadline, log.read_text()  # notifications need not arrive in upload order
        time.sleep(0.5)
    assert [(q["key"], q["code"]) for q in quarantined] == [("notes/stray.txt", "unknown-prefix")]
    # And Ctrl-C stops it cleanly
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=20) == 0
    assert "stopped." in log.read_text()


def without_aws_variables() -> dict:
    return {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}


def test_the_cli_says_what_to_do_when_no_stack_answers():
    # When the CLI, without credentials, is pointed at a loopback port where nothing listens
    result = subprocess.run([sys.executable, "-m", "obsflow.cli", "--endpoint-url", f"http://127.0.0.1:{free_port()}",
                             "ops", "list"], capture_output=True, text=True, timeout=60, env=without_aws_variables())
    # Then it says that nothing answers there and how to start a stack
    assert result.returncode == 1
    assert "nothing answers at http://127.0.0.1:" in result.stderr and "obsflow local serve" in result.stderr


@pytest.mark.parametrize("option, value, said", [
    ("--endpoint-url", "notaurl", "--endpoint-url: 'notaurl' is not an http(s) URL"),
    ("--endpoint-url", "http://127.0.0.1:99999", "has no valid port"),
    ("--region", "mars 1", "--region: 'mars 1' is not an AWS region name"),
    ("--stage", "../x", "--stage: '../x' is not a stage name"),
])
def test_a_bad_endpoint_region_or_stage_is_one_readable_line(option, value, said):
    result = subprocess.run([sys.executable, "-m", "obsflow.cli", option, value, "info"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert said in result.stderr and "Traceback" not in result.stderr


def test_the_banner_exports_what_a_client_needs_and_the_cli_needs_no_credentials(served_stack):
    endpoint, _, log = served_stack
    # Given only the variables the banner's export line sets
    [line] = [line for line in log.read_text().splitlines() if "export " in line]
    exported = dict(pair.split("=", 1) for pair in line.split("export ", 1)[1].split())
    assert set(exported) == {"AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    # Then another AWS client reaches the stack with them alone
    client_env = {**without_aws_variables(), **exported}
    listed = subprocess.run([sys.executable, "-c", "import boto3; print(boto3.client('sqs').list_queues()['QueueUrls'])"],
                            capture_output=True, text=True, timeout=60, env=client_env)
    assert listed.returncode == 0 and "ingest" in listed.stdout, listed.stderr
    # And the CLI needs nothing but the endpoint
    info = subprocess.run([sys.executable, "-m", "obsflow.cli", "--endpoint-url", endpoint, "info", "--json"],
                          capture_output=True, text=True, timeout=60, env=without_aws_variables())
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["endpoint_url"] == endpoint


def test_the_stage_document_appears_only_when_every_resource_it_names_exists(tmp_path):
    # Given a local stack starting in its own process, watched from outside every 20 ms
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {**without_aws_variables(), "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / "serve.log", "w+")
    process = subprocess.Popen([sys.executable, "-m", "obsflow.cli", "local", "serve", "--port", str(port)],
                               stdout=log, stderr=subprocess.STDOUT, env=env)
    session = boto3.Session(region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local")
    ssm = session.client("ssm", endpoint_url=endpoint)
    try:
        deadline, document = time.monotonic() + 60, None
        while document is None:
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            try:
                document = json.loads(ssm.get_parameter(Name="/obsflow/local/resources")["Parameter"]["Value"])
            except Exception:  # noqa: BLE001  (not up, or not published yet)
                time.sleep(0.02)
        # When the document is first readable, then every resource it names already exists
        def client(service):
            return session.client(service, endpoint_url=endpoint)

        assert {t["TopicArn"].rsplit(":", 1)[1] for t in client("sns").list_topics()["Topics"]} >= set(document["topics"].values())
        assert {u.rsplit("/", 1)[1] for u in client("sqs").list_queues()["QueueUrls"]} >= set(document["queues"].values())
        assert set(client("dynamodb").list_tables()["TableNames"]) >= set(document["tables"].values())
        assert {b["Name"] for b in client("s3").list_buckets()["Buckets"]} >= set(document["buckets"].values())
        assert {f["FunctionName"] for f in client("lambda").list_functions()["Functions"]} >= set(document["functions"].values())
        assert client("stepfunctions").list_state_machines()["stateMachines"]
        # And the stack says it is ready
        while "Ctrl-C stops it" not in (tmp_path / "serve.log").read_text():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert "ready at " + endpoint in (tmp_path / "serve.log").read_text()
    finally:
        process.kill()


def test_an_observation_simulated_to_a_folder_and_uploaded_with_the_cli_is_processed(served_stack, tmp_path):
    endpoint, _, log = served_stack
    env = without_aws_variables()
    folder = tmp_path / "night"
    # Given an observation written by `obsflow simulate`, and a stray file beside it
    made = subprocess.run([sys.executable, "-m", "obsflow.cli", "simulate", "--out", str(folder), "--frames", "3",
                           "--calibration-frames", "2", "--size", "32", "--candidate", "cand_sim", "--recipe",
                           "frame-census"], capture_output=True, text=True, timeout=120, env=env)
    assert made.returncode == 0, made.stderr
    assert "next: obsflow upload" in made.stdout
    (folder / "notes.txt").write_text("not for obsflow")
    # When it is uploaded with `obsflow upload`, without credentials
    sent = subprocess.run([sys.executable, "-m", "obsflow.cli", "--endpoint-url", endpoint, "upload", str(folder)],
                          capture_output=True, text=True, timeout=120, env=env)
    # Then every frame, the manifest, the candidate and the proposal were sent; the stray file was not
    assert sent.returncode == 0, sent.stderr
    assert "uploaded 10 objects" in sent.stdout
    assert "skipped notes.txt" in sent.stderr
    # And the candidate is processed
    deadline = time.monotonic() + 90
    while (detail := candidate(endpoint, "cand_sim")).get("processing") != "SUCCEEDED":
        assert time.monotonic() < deadline and detail.get("processing") != "FAILED", log.read_text()
        time.sleep(0.5)
    assert [op["received"] for op in detail["ops"]] == [3, 2, 2]
    # And its products download with the CLI, each checked against its recorded SHA-256
    dataset_id = json.loads(cli(endpoint, "runs", "show", detail["run_ids"][0], "--json"))["dataset_id"]
    got = subprocess.run([sys.executable, "-m", "obsflow.cli", "--endpoint-url", endpoint, "datasets", "download",
                          dataset_id, "--to", str(tmp_path / "products")], capture_output=True, text=True, timeout=60,
                         env=env)
    assert got.returncode == 0, got.stderr
    [folder] = {path.parent for path in (tmp_path / "products").rglob("SHA256SUMS")}
    assert {"SHA256SUMS", "provenance.json"} < {path.name for path in folder.iterdir()}
    assert len(list(folder.iterdir())) > 2
    embargo_is_kept_until_the_release_job_opens_the_dataset(endpoint, dataset_id)


def embargo_is_kept_until_the_release_job_opens_the_dataset(endpoint: str, dataset_id: str) -> None:
    # Given the proposal's document (a year's embargo after each observation), received with the observation
    proposal = json.loads(cli(endpoint, "proposals", "show", "pid_1_23", "--json"))
    assert (proposal["pi_name"], proposal["rule"]) == ("Simulated PI", "public 365 days after observation")
    # Then every frame carries its release date, and the dataset the latest of its inputs'
    frames = json.loads(cli(endpoint, "frames", "list", "--json"))
    assert {f["release_date"] for f in frames} == {
        (dt.date.fromisoformat(f["date_obs"][:10]) + dt.timedelta(days=365)).isoformat() for f in frames}
    release = max(f["release_date"] for f in frames)
    [listed] = json.loads(cli(endpoint, "datasets", "list", "--embargoed", "--json"))
    assert (listed["dataset_id"], listed["release_date"]) == (dataset_id, release)
    assert f"under embargo until {release}: private to proposal pid_1_23" in cli(endpoint, "datasets", "show", dataset_id)
    # And every object of the dataset is tagged for the data bucket's policy
    dataset = json.loads(cli(endpoint, "datasets", "show", dataset_id, "--json"))
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")

    def object_tags() -> list[dict]:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=dataset["bucket"], Prefix=dataset["prefix"])["Contents"]]
        assert len(keys) == len(dataset["files"]) + 2  # with SHA256SUMS and provenance.json
        return [{t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=dataset["bucket"], Key=key)["TagSet"]}
                for key in keys]

    assert object_tags() == [{"proposal_id": "pid_1_23", "release_date": release, "embargoed": "true"}] * (
        len(dataset["files"]) + 2)
    # When the daily release job runs the day before the release date, nothing is released
    the_day_before = (dt.date.fromisoformat(release) - dt.timedelta(days=1)).isoformat()
    assert "would release 0 dataset(s): -; 1 still under embargo" in cli(endpoint, "release", "--now", the_day_before)
    # When the summit sends a revised proposal document, making the data public from today, and the job runs
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    revised = {"proposal_id": "pid_1_23", "pi": {"name": "Simulated PI", "email": "pi@example.org"},
               "release_date": today}
    s3.put_object(Bucket=json.loads(cli(endpoint, "info", "--json"))["buckets"]["ingest"],
                  Key="proposals/pid_1_23.json", Body=json.dumps(revised).encode())
    deadline = time.monotonic() + 30
    while (shown := json.loads(cli(endpoint, "proposals", "show", "pid_1_23", "--json")))["rule"] != \
            f"public from {today}":
        assert time.monotonic() < deadline, shown
        time.sleep(0.5)
    cli(endpoint, "release")  # (the stack's own schedule may have released it already: the outcome is the same)
    # Then the dataset is released: public tags with its new date on every object, and nothing is under embargo
    assert object_tags() == [{"proposal_id": "pid_1_23", "release_date": today, "embargoed": "false"}] * (
        len(dataset["files"]) + 2)
    assert json.loads(cli(endpoint, "datasets", "list", "--embargoed", "--json")) == []
    assert f"public since {today}" in cli(endpoint, "datasets", "show", dataset_id)
    # And the proposal's history holds the revision
    assert [e["kind"] for e in shown["events"]] == ["revised"]
    assert "embargo_days from 365 to None" in shown["events"][0]["detail"]
