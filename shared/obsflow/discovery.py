"""How the CLI finds a stage's resources: one SSM parameter, written by the CDK stack and by the local stack.

``/obsflow/<stage>/resources`` holds the stage's description (buckets, queues, tables,
topics, functions, the task log group) as JSON. Names follow ``obsflow-<stage>-<name>``
except the buckets, whose deployed names also carry the account and region.
"""

from __future__ import annotations

import json

from botocore.exceptions import ClientError

from obsflow import aws
from obsflow.errors import NotFound
from obsflow.settings import Settings


def parameter_name(stage: str) -> str:
    return f"/obsflow/{stage}/resources"


def document(settings: Settings) -> dict:
    """What the parameter holds: the stage's resources, without where the caller connects from."""
    description = settings.describe()
    for connection in ("region", "endpoint_url", "capacity"):
        description.pop(connection)
    return description


def publish(settings: Settings, ssm) -> None:
    """Record the stage's resources (the local stack; the CDK stack writes the same document)."""
    ssm.put_parameter(
        Name=parameter_name(settings.stage), Value=json.dumps(document(settings), sort_keys=True),
        Type="String", Overwrite=True, Description=f"obsflow stage {settings.stage}: resource names",
    )


def withdraw(settings: Settings, ssm) -> None:
    """The stage is not complete (the local stack, restoring its state): no document until it is."""
    try:
        ssm.delete_parameter(Name=parameter_name(settings.stage))
    except ssm.exceptions.ParameterNotFound:
        pass


def discover(settings: Settings) -> Settings:
    """``settings`` with the bucket names, default embargo and campaign approval sizes the stage recorded; NotFound if the stage has none."""
    name = parameter_name(settings.stage)
    try:
        value = aws.client(settings, "ssm").get_parameter(Name=name)["Parameter"]["Value"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ParameterNotFound":
            raise
        where = settings.endpoint_url or f"AWS region {settings.region}"
        raise NotFound(
            f"no obsflow stage '{settings.stage}' at {where}: the SSM parameter {name} is missing. "
            "Deploy the stage (`cdk deploy -c stage=<stage>`), start `obsflow local serve`, "
            "or pick another --stage / --region / --endpoint-url."
        ) from exc
    recorded = json.loads(value)
    pipelines = recorded.get("pipelines") or {}
    approval = recorded.get("campaign_approval") or {}
    return settings.model_copy(update={
        "campaign_approval_cpu_hours": approval.get("cpu_hours", settings.campaign_approval_cpu_hours),
        "campaign_approval_output_bytes": approval.get("output_bytes", settings.campaign_approval_output_bytes),
        "buckets": recorded.get("buckets", {}),
        "default_embargo_days": recorded.get("default_embargo_days", settings.default_embargo_days),
        "pipelines_dir": settings.pipelines_dir or pipelines.get("environments"),
        "scratch_dir": settings.scratch_dir or pipelines.get("scratch_dir"),
        "pipeline_services": settings.pipeline_services or pipelines.get("services") or {}})
