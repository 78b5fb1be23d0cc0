"""Filing a ticket: stored once (its id is the dedup key), published to operators, and
posted to Jira Service Management when a secret configures it."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

from pydantic import BaseModel, HttpUrl

from obsflow import aws
from obsflow.ingest.store import transient
from obsflow.observability import logger
from obsflow.settings import Settings
from obsflow.tables.base import save_if_new
from obsflow.tables.tickets import TicketItem


class JiraSecret(BaseModel):
    """The Secrets Manager secret (JSON) of the Jira Service Management adapter."""

    base_url: HttpUrl
    email: str
    api_token: str
    service_desk_id: str
    request_type_id: str


class JiraServiceDesk:
    """Jira Service Management's create-request API (POST /rest/servicedeskapi/request)."""

    def __init__(self, secret: JiraSecret, timeout_s: float = 10):
        self.secret, self.timeout_s = secret, timeout_s

    @classmethod
    def from_settings(cls, settings: Settings) -> "JiraServiceDesk | None":
        if not settings.jira_secret_id:
            return None
        value = aws.client(settings, "secretsmanager").get_secret_value(SecretId=settings.jira_secret_id)["SecretString"]
        return cls(JiraSecret.model_validate_json(value))

    def create_request(self, ticket: TicketItem) -> str:
        body = {
            "serviceDeskId": self.secret.service_desk_id,
            "requestTypeId": self.secret.request_type_id,
            "requestFieldValues": {"summary": ticket.summary[:250], "description": describe(ticket)},
        }
        credentials = base64.b64encode(f"{self.secret.email}:{self.secret.api_token}".encode()).decode()
        request = urllib.request.Request(
            f"{str(self.secret.base_url).rstrip('/')}/rest/servicedeskapi/request",
            data=json.dumps(body).encode(), method="POST",
            headers={"Authorization": f"Basic {credentials}", "Content-Type": "application/json",
                     "Accept": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            return json.loads(response.read())["issueKey"]


def describe(ticket: TicketItem) -> str:
    """The ticket's facts as plain text, for people reading it in the service desk."""
    lines = [ticket.summary, ""]
    for field in ("ticket_id", "kind", "run_id", "recipe", "candidate_id", "proposal_id", "failed_task", "error_type",
                  "error_message", "exit_code", "suggested_action"):
        value = getattr(ticket, field)
        if value is not None:
            lines.append(f"{field}: {value}")
    for name, link in (ticket.links or {}).items():
        if link:
            lines.append(f"{name}: {link}")
    if ticket.log_excerpt:
        lines += ["", "log excerpt:", ticket.log_excerpt]
    return "\n".join(lines)


def file_ticket(settings: Settings, ticket: TicketItem) -> bool:
    """Store, publish and post the ticket; False (and nothing sent) if it was filed before."""
    with transient(f"could not file ticket {ticket.ticket_id}"):
        if not save_if_new(ticket):
            return False
        aws.client(settings, "sns").publish(
            TopicArn=aws.topic_arn(settings, "operators"), Subject=f"obsflow ticket {ticket.ticket_id}"[:100],
            Message=describe(ticket), MessageAttributes={"kind": {"DataType": "String", "StringValue": ticket.kind}},
        )
    try:
        desk = JiraServiceDesk.from_settings(settings)
        if desk is not None:
            ticket.update(actions=[TicketItem.external_key.set(desk.create_request(ticket))])
    except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
        # The ticket is stored and published; the service desk can be told later.
        ticket.update(actions=[TicketItem.external_error.set(f"{type(exc).__name__}: {exc}")])
        logger.error("could not post the ticket to Jira", extra={"ticket_id": ticket.ticket_id, "error": str(exc)})
    logger.warning("ticket filed", extra={"ticket_id": ticket.ticket_id, "kind": ticket.kind})
    return True
