"""The Jira Service Management adapter of the ServiceDesk port, configured by a Secrets Manager secret."""

from __future__ import annotations

import base64
import json
import urllib.request

from pydantic import BaseModel, HttpUrl, ValidationError

from obsflow import aws
from obsflow.runs.domain import Ticket
from obsflow.runs.failures import describe
from obsflow.settings import Settings


class JiraSecret(BaseModel):
    """The Secrets Manager secret (JSON) of the Jira Service Management adapter."""

    base_url: HttpUrl
    email: str
    api_token: str
    service_desk_id: str
    request_type_id: str


class ServiceDeskError(ValueError):
    """A service-desk failure, worded without any part of the secret."""


def _secret_problems(error: ValidationError) -> str:
    """What is wrong with each field, without the values pydantic would echo."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'the secret'}: {e['msg']}" for e in error.errors(include_input=False))


class JiraServiceDesk:
    """Jira Service Management's create-request API (POST /rest/servicedeskapi/request)."""

    def __init__(self, secret: JiraSecret, timeout_s: float = 10):
        self.secret, self.timeout_s = secret, timeout_s

    @classmethod
    def from_settings(cls, settings: Settings) -> "JiraServiceDesk | None":
        if not settings.jira_secret_id:
            return None
        try:
            value = aws.client(settings, "secretsmanager").get_secret_value(
                SecretId=settings.jira_secret_id)["SecretString"]
        except aws.AWS_ERRORS as exc:
            raise ServiceDeskError(f"could not read the Jira secret {settings.jira_secret_id}: {exc}") from exc
        try:
            return cls(JiraSecret.model_validate_json(value))
        except ValidationError as exc:
            raise ServiceDeskError(
                f"the Jira secret {settings.jira_secret_id} is not valid ({_secret_problems(exc)}); it needs JSON with "
                "base_url, email, api_token, service_desk_id and request_type_id"
            ) from None  # the cause would carry the secret's value

    def _redacted(self, text: str) -> str:
        for value in (self.secret.api_token, self.secret.email, str(self.secret.base_url)):
            if value:
                text = text.replace(value, "***")
        return text

    def create_request(self, ticket: Ticket) -> str:
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
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read())["issueKey"]
        except (OSError, ValueError, KeyError) as exc:  # URLError and HTTPError are OSErrors
            raise ServiceDeskError(self._redacted(f"{type(exc).__name__}: {exc}")) from None
