"""Tickets reach the service desk: stored once, published to operators, posted to Jira when configured."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import boto3
import pytest
from moto import mock_aws

from obsflow import tables
from obsflow.local import moto_patches
from obsflow.runs.domain import Ticket
from obsflow.services import run_service
from obsflow.settings import Settings
from obsflow.tables import tickets


class FakeJira(BaseHTTPRequestHandler):
    """Checks what Jira Service Management's create-request API checks, and answers like it."""

    received: list[dict] = []

    def do_POST(self):  # noqa: N802  (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        expected_auth = "Basic " + base64.b64encode(b"ops@observatory.org:s3cret").decode()
        ok = (self.path == "/rest/servicedeskapi/request" and self.headers["Authorization"] == expected_auth
              and self.headers["Content-Type"] == "application/json"
              and {"serviceDeskId", "requestTypeId", "requestFieldValues"} <= set(body))
        FakeJira.received.append({"path": self.path, "body": body, "ok": ok})
        self.send_response(201 if ok else 400)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"issueKey": "OPS-42"} if ok else {"errorMessage": "bad request"}).encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def jira():
    server = HTTPServer(("127.0.0.1", 0), FakeJira)
    FakeJira.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def desk(jira):
    """Given tickets table, operators topic (with a subscribed queue) and the Jira secret on moto."""
    moto_patches.apply()
    with mock_aws():
        settings = Settings(stage="desk", jira_secret_id="obsflow/desk/jira")
        tables.bind(settings)
        tables.create_tables()
        session = boto3.Session(region_name=settings.region)
        sns, sqs = session.client("sns"), session.client("sqs")
        topic = sns.create_topic(Name=settings.topic_name("operators"))["TopicArn"]
        queue_url = sqs.create_queue(QueueName="operators")["QueueUrl"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint="arn:aws:sqs:us-east-1:123456789012:operators")
        session.client("secretsmanager").create_secret(Name="obsflow/desk/jira", SecretString=json.dumps({
            "base_url": jira, "email": "ops@observatory.org", "api_token": "s3cret",
            "service_desk_id": "7", "request_type_id": "31"}))
        yield settings, sqs, queue_url


def file_ticket(settings: Settings, ticket: Ticket) -> bool:
    return run_service(settings).file_ticket(ticket)


def ticket(ticket_id: str = "TKT-run-1-1") -> Ticket:
    return Ticket(ticket_id, kind="failure:configuration", summary="run run-1 failed in task summary",
                      run_id="run-1", failed_task="summary", exit_code=2, log_excerpt="fail_task is 'summary'",
                      suggested_action="adjust and retry", created_at=dt.datetime.now(dt.timezone.utc))


def test_a_ticket_is_posted_to_jira_once_and_published_to_operators(desk):
    settings, sqs, queue_url = desk
    # When the same failure files its ticket twice (a re-delivered event)
    first, second = file_ticket(settings, ticket()), file_ticket(settings, ticket())
    # Then it is stored once, with Jira's key, and Jira got one well-formed request
    assert (first, second) == (True, False)
    assert tickets.get("TKT-run-1-1").external_key == "OPS-42"
    [request] = FakeJira.received
    assert request["ok"] and request["body"]["serviceDeskId"] == "7" and request["body"]["requestTypeId"] == "31"
    description = request["body"]["requestFieldValues"]["description"]
    assert "failed_task: summary" in description and "exit_code: 2" in description and "fail_task is" in description
    # And the operators' topic carried it once
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 1 and "run run-1 failed" in json.loads(messages[0]["Body"])["Message"]


def test_a_service_desk_outage_keeps_the_ticket_and_says_why(desk, jira):
    settings, _, _ = desk
    FakeJira.received = []
    # Given Jira answers with an error
    boto3.client("secretsmanager", region_name="us-east-1").put_secret_value(
        SecretId="obsflow/desk/jira", SecretString=json.dumps({
            "base_url": jira, "email": "ops@observatory.org", "api_token": "wrong", "service_desk_id": "7",
            "request_type_id": "31"}))
    # When a ticket is filed
    assert file_ticket(settings, ticket("TKT-run-2-1"))
    # Then it is stored and the error is recorded on it
    stored = tickets.get("TKT-run-2-1")
    assert stored.external_key is None and "400" in stored.external_error


@pytest.mark.parametrize("secret_string", [
    # a field of the wrong kind: pydantic echoes the input it rejects
    json.dumps({"base_url": "not-a-url-s3cr3t-token-1", "email": "ops@observatory.org", "api_token": "s3cr3t-token-1",
                "service_desk_id": "7", "request_type_id": "31"}),
    # not JSON at all (a token pasted alone)
    "s3cr3t-token-1",
    # a required field missing: the rest of the secret is the input
    json.dumps({"base_url": "https://jira.example.org", "email": "ops@observatory.org", "api_token": "s3cr3t-token-1"}),
])
def test_a_malformed_jira_secret_never_reaches_a_ticket_or_a_log(desk, secret_string):
    settings, _, _ = desk
    records: list[logging.LogRecord] = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = records.append
    logging.getLogger("obsflow").addHandler(handler)
    # Given a malformed Jira secret that carries a token
    boto3.client("secretsmanager", region_name="us-east-1").put_secret_value(
        SecretId="obsflow/desk/jira", SecretString=secret_string)
    # When a ticket is filed
    assert file_ticket(settings, ticket("TKT-run-3-1"))
    # Then the ticket is kept, says what is wrong with the secret, and neither it nor a log line holds the token
    stored = tickets.get("TKT-run-3-1")
    assert stored.external_key is None and "obsflow/desk/jira" in stored.external_error
    assert "s3cr3t" not in json.dumps(stored.attribute_values, default=str)
    logging.getLogger("obsflow").removeHandler(handler)
    assert any(r.getMessage() == "could not post the ticket to the service desk" for r in records)
    assert "s3cr3t" not in json.dumps([r.__dict__ for r in records], default=str)
