"""Attacks, fourth round: a campaign document's record or bytes planted after it was attached are never served."""

from __future__ import annotations

import http.client

import pytest

from obsflow.monitor.server import Monitor
from obsflow.runs.campaigns import CampaignService
from obsflow.runs.service import NotAllowed
from tests.unit.fakes import fake_provenance
from tests.unit.test_run_service import add_candidate, make_service


@pytest.fixture
def attached():
    """Given a campaign with a plan attached, and a private document elsewhere in the work bucket."""
    service = make_service()
    add_candidate(service, "c1", status="PLANNED")
    campaigns = CampaignService(service, fake_provenance(service))
    campaigns.create("docs", "calibration", "dq", "why", recipe="frame-census", selection={"ids": {"ids": ["c1_obs"]}})
    service.documents.buckets["work"]["plans/private.json"] = b'{"proposal": "pid_2_99"}'
    record, _ = campaigns.attach("docs", "plan.txt", b"the plan", "the plan we run", "ana")
    return service, campaigns, record


def plant(service, record: dict) -> None:
    service.store.campaigns["docs"].documents.append(record)


@pytest.mark.parametrize("change, said", [
    ({"key": "plans/private.json"}, "is not where campaign docs keeps it"),
    ({"key": "campaigns/docs/documents/../../plans/private.json"}, "is not where campaign docs keeps it"),
    ({"name": 'plan.txt"\r\nSet-Cookie: session=planted'}, "holds a control character"),
    ({"name": "../plan.txt"}, "is a path"),
    ({"sha256": None}, "is not where campaign docs keeps it"),
])
def test_a_planted_document_record_is_not_read_and_says_why(attached, change, said):
    service, campaigns, record = attached
    # Given a record planted in the campaign's table beside the real one
    plant(service, {**record, **change})
    # When it is read, Then it is refused, saying why, and nothing of the bucket is returned
    with pytest.raises(NotAllowed, match=said):
        campaigns.document("docs", 2)
    # And the document attached is still served
    assert campaigns.document("docs", 1) == (record, b"the plan")


def test_a_document_whose_bytes_were_replaced_in_the_bucket_is_not_served(attached):
    service, campaigns, record = attached
    # Given the attached object overwritten in S3
    service.documents.buckets["work"][record["key"]] = b"<script>leak()</script>"
    # When it is read, Then it is refused: the bytes are not the file attached, and what to do is said
    with pytest.raises(NotAllowed, match="is not the file attached: its bytes .* were changed since; attach the file again"):
        campaigns.document("docs", 1)


class Reads:
    """The monitor's reads of the stage, over the fakes: the campaign documents only."""

    def __init__(self, campaigns):
        self.campaign_document = campaigns.document


def test_the_monitor_answers_a_planted_record_with_a_refusal_and_no_planted_header(attached):
    service, campaigns, record = attached
    plant(service, {**record, "name": 'plan.txt"\r\nSet-Cookie: session=planted', "key": "plans/private.json"})
    monitor = Monitor(Reads(campaigns), "unit", port=0).start()
    try:
        port = monitor.server.server_port
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/campaigns/docs/documents/2", headers={"Host": f"127.0.0.1:{port}"})
        response = connection.getresponse()
        status, headers, body = response.status, dict(response.getheaders()), response.read()
        connection.close()
    finally:
        monitor.stop()
    # Then it is refused with the reason in one line, sets no cookie, and serves none of the private document
    assert status == 409 and b"is not as attach records one" in body and body.count(b"\n") == 1
    assert "Set-Cookie" not in headers and b"pid_2_99" not in body
