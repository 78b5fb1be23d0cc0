"""boto3 clients and ARNs for the configured stack (AWS, or the local stack's endpoint)."""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from functools import lru_cache

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException

from obsflow.errors import TransientError
from obsflow.settings import Settings

AWS_ERRORS = (PynamoDBException, ClientError, BotoCoreError)


@contextmanager
def transient(what: str):
    """Turn an AWS failure into a TransientError: the caller (a queue, a state machine) retries."""
    try:
        yield
    except AWS_ERRORS as exc:
        raise TransientError(f"{what}: {exc}") from exc


@lru_cache(maxsize=1)
def _shared_loader():
    from botocore.loaders import create_loader

    return create_loader()


def botocore_session():
    """A new botocore session that reads botocore's data files (endpoints, service models) through one
    loader per process: each is parsed once, not once per session (~0.1 s of JSON for every client and
    every table model otherwise, at each Lambda cold start and local stack start); its calls are metered
    (obsflow.metering)."""
    from botocore.session import get_session

    from obsflow import faults, metering

    session = get_session()
    session.register_component("data_loader", _shared_loader())
    session.register("before-send", faults.inject_aws_fault)  # nothing unless OBSFLOW_FAULTS is set
    # what each call asks of AWS, counted for the run it works for (nothing outside a metered invocation or job)
    session.register("before-parameter-build", metering.on_request)
    session.register("after-call", metering.on_response)
    return session


def preload(*services: str) -> None:
    """Parse the services' models now, in a process that forks others (the local stack's task server): each
    child then makes its clients in milliseconds, not a tenth of a second."""
    for service in services:
        _client(service, "us-east-1", None)


@lru_cache(maxsize=64)
def _client(service: str, region: str, endpoint_url: str | None):
    return boto3.session.Session(botocore_session=botocore_session()).client(
        service, region_name=region, endpoint_url=endpoint_url)


def client(settings: Settings, service: str):
    return _client(service, settings.region, settings.endpoint_url)


@lru_cache(maxsize=8)
def _caller_account(region: str, endpoint_url: str | None) -> str:
    return _client("sts", region, endpoint_url).get_caller_identity()["Account"]


def account_id(settings: Settings) -> str:
    return settings.account_id or _caller_account(settings.region, settings.endpoint_url)


def arn(settings: Settings, service: str, resource: str) -> str:
    return f"arn:aws:{service}:{settings.region}:{account_id(settings)}:{resource}"


def state_machine_arn(settings: Settings, recipe: str, version: str) -> str:
    return arn(settings, "states", f"stateMachine:{settings.state_machine_name(recipe, version)}")


def topic_arn(settings: Settings, topic: str) -> str:
    return arn(settings, "sns", settings.topic_name(topic))


def scheduled_time(event: dict) -> dt.datetime:
    """When a scheduled function runs as of: an operator's "now", else the EventBridge event's time, else now."""
    when = dt.datetime.fromisoformat(event.get("now") or event.get("time") or dt.datetime.now(dt.timezone.utc).isoformat())
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
