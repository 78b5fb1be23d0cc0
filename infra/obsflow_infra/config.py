"""The stage a stack is synthesized for, as a validated model (from the `stage` context)."""

from __future__ import annotations

import json
import re
from typing import Literal

import aws_cdk as cdk
from aws_cdk import aws_logs as logs
from pydantic import BaseModel, ConfigDict, Field, field_validator

from obsflow.pipelines.environments import EnvironmentError_, parse_requirement
from obsflow.settings import BUCKETS, Settings, SiteSettings

STAGES = ("dev", "prod")


def _listed(value) -> tuple[str, ...]:
    """A context value given as "a,b" on the command line, or as a list in cdk.json."""
    return tuple(part.strip() for part in value.split(",") if part.strip()) if isinstance(value, str) else tuple(value)


def _json(value):
    """A context value given as JSON on the command line, or as an object in cdk.json."""
    return json.loads(value) if isinstance(value, str) else value


class StageConfig(BaseModel):
    """What differs between stages: names, how long logs stay, what survives a stack deletion."""

    model_config = ConfigDict(frozen=True)

    stage: Literal["dev", "prod"]
    log_retention_days: Literal[30, 365]
    retain_data: bool
    spot: bool  # dev runs tasks on Fargate Spot first, prod on on-demand Fargate only
    max_vcpus: int = Field(ge=4)
    jira_secret_name: str | None = None  # Secrets Manager secret of the Jira adapter, if any
    # for proposals whose document names no embargo (checked where the stage's Settings are made)
    default_embargo_days: int = Settings.model_fields["default_embargo_days"].default
    # IAM role ARNs of the data center's staff who may read products under embargo (besides the stage's own roles)
    data_stewards: tuple[str, ...] = ()
    # Processing windows by recipe name or resource class, and the site they follow (obsflow.windows):
    # -c windows='{"vbi-l1": "night"}' or "windows" in cdk.json; -c site='{"name": ..., "timezone": ...}'
    windows: dict[str, str] = Field(default_factory=dict)
    site: SiteSettings = SiteSettings()
    # Hosted pipelines (PACKAGE==VERSION): a task image and job definitions each (-c pipelines=a==1.2.3,b==4.5.6)
    pipelines: tuple[str, ...] = ()

    @field_validator("pipelines")
    @classmethod
    def _requirements(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        try:
            names = ["{}=={}".format(*parse_requirement(requirement)) for requirement in value]
        except EnvironmentError_ as exc:
            raise ValueError(f"{exc} (-c pipelines=PACKAGE==VERSION,...)") from None
        if len(set(names)) != len(names):
            raise ValueError(f"a pipeline version is listed twice in {', '.join(value)}")
        return tuple(names)

    @field_validator("data_stewards")
    @classmethod
    def _role_arns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for arn in value:
            if not re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+", arn):
                raise ValueError(f"{arn!r} is not an IAM role ARN (-c dataStewards=arn:aws:iam::<account>:role/<name>,...)")
        return value

    @classmethod
    def from_context(cls, app: cdk.App) -> "StageConfig":
        stage = app.node.try_get_context("stage") or "dev"
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r} (-c stage=...); known: {', '.join(STAGES)}")
        defaults = {
            "dev": {"log_retention_days": 30, "retain_data": False, "spot": True, "max_vcpus": 16},
            "prod": {"log_retention_days": 365, "retain_data": True, "spot": False, "max_vcpus": 256},
        }[stage]
        stewards = app.node.try_get_context("dataStewards") or ()
        pipelines = app.node.try_get_context("pipelines") or ()
        embargo_days = app.node.try_get_context("defaultEmbargoDays")
        windows, site = (_json(app.node.try_get_context(name)) for name in ("windows", "site"))
        return cls(stage=stage, jira_secret_name=app.node.try_get_context("jiraSecretName"),
                   data_stewards=_listed(stewards), pipelines=_listed(pipelines),
                   **({"windows": windows} if windows else {}), **({"site": site} if site else {}),
                   **({"default_embargo_days": int(embargo_days)} if embargo_days is not None else {}), **defaults)

    @property
    def logs_retention(self) -> logs.RetentionDays:
        return {30: logs.RetentionDays.ONE_MONTH, 365: logs.RetentionDays.ONE_YEAR}[self.log_retention_days]

    @property
    def removal_policy(self) -> cdk.RemovalPolicy:
        return cdk.RemovalPolicy.RETAIN if self.retain_data else cdk.RemovalPolicy.DESTROY

    def settings(self) -> Settings:
        """The deployed stage's settings: conventional names, buckets made globally unique."""
        return Settings(
            stage=self.stage,
            buckets={b: f"obsflow-{self.stage}-{b}-{cdk.Aws.ACCOUNT_ID}-{cdk.Aws.REGION}" for b in BUCKETS},
            jira_secret_id=self.jira_secret_name,
            default_embargo_days=self.default_embargo_days,
            windows=self.windows,
            site=self.site,
        )
