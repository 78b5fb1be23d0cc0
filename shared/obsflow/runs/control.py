"""Pause and resume automated submission: one SSM parameter per stage.

While paused, candidates still become READY and are planned; their runs wait in
READY and start in priority order on resume.
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from obsflow import aws
from obsflow.settings import Settings

PAUSED, ACTIVE = "paused", "active"


def parameter_name(settings: Settings) -> str:
    return f"/obsflow/{settings.stage}/submission"


def is_paused(settings: Settings) -> bool:
    try:
        value = aws.client(settings, "ssm").get_parameter(Name=parameter_name(settings))["Parameter"]["Value"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ParameterNotFound":
            return False
        raise
    return value == PAUSED


def set_submission(settings: Settings, state: str, reason: str = "") -> None:
    aws.client(settings, "ssm").put_parameter(
        Name=parameter_name(settings), Value=state, Type="String", Overwrite=True,
        Description=f"obsflow automated submission: {state}" + (f" ({reason})" if reason else ""),
    )
