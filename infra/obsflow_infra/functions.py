"""One obsflow Lambda function: the functions image, ARM64, powertools, its own log group and role.

Every function runs the same image (functions/Dockerfile) with its own handler as the
image command, so the code and the pinned dependencies are built once.
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from obsflow.observability import SERVICE
from obsflow.settings import FUNCTION_CONCURRENCY, FUNCTION_SIZES, Settings
from obsflow_infra.config import StageConfig
from obsflow_infra.nag import NO_RESOURCE_LEVEL, acknowledge, allow_objects, wildcard_resource

REPO_ROOT = Path(__file__).resolve().parents[2]

SIZES = FUNCTION_SIZES  # (timeout in seconds, memory in MiB) per function, in settings: a run's cost counts them

# DynamoDB actions by access level; pynamodb describes a table before its first use.
TABLE_READ = ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query",
              "dynamodb:ConditionCheckItem"]
TABLE_WRITE = [*TABLE_READ, "dynamodb:PutItem", "dynamodb:UpdateItem"]  # obsflow never deletes items


class ObsflowFunction(Construct):
    """A function with a role that starts empty: each concern adds exactly what it needs."""

    def __init__(self, scope: Construct, id: str, *, function: str, config: StageConfig, settings: Settings,
                 description: str) -> None:
        super().__init__(scope, id)
        timeout_s, memory_mb = SIZES[function]
        name = settings.function_name(function)
        self.log_group = logs.LogGroup(self, "Logs", log_group_name=f"/aws/lambda/{name}",
                                       retention=config.logs_retention, removal_policy=config.removal_policy)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                             description=f"obsflow {config.stage} Lambda {function}")
        self.role.add_to_policy(iam.PolicyStatement(
            actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[self.log_group.log_group_arn]))
        acknowledge(self, wildcard_resource("*"), f"Active tracing: {NO_RESOURCE_LEVEL}.")
        self.function = lambda_.DockerImageFunction(
            self, "Function",
            function_name=name,
            description=description,
            code=lambda_.DockerImageCode.from_image_asset(
                str(REPO_ROOT), file="functions/Dockerfile", platform=ecr_assets.Platform.LINUX_ARM64,
                cmd=[f"obsflow_functions.{function.replace('-', '_')}.handler.handler"],
            ),
            architecture=lambda_.Architecture.ARM_64,
            timeout=cdk.Duration.seconds(timeout_s),
            memory_size=memory_mb,
            reserved_concurrent_executions=FUNCTION_CONCURRENCY.get(function),
            role=self.role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            environment={
                **settings.environment(),
                "OBSFLOW_ACCOUNT_ID": cdk.Aws.ACCOUNT_ID,
                "POWERTOOLS_SERVICE_NAME": SERVICE,
                "POWERTOOLS_METRICS_NAMESPACE": SERVICE,
                "POWERTOOLS_LOG_LEVEL": "INFO",
            },
        )

    def allow(self, actions: list[str], resources: list[str]) -> None:
        self.role.add_to_policy(iam.PolicyStatement(actions=actions, resources=resources))

    def allow_tables(self, table_arns: list[str], write: bool) -> None:
        """Items of these tables and indexes (CatalogTables.arns): read, or read and write."""
        self.allow(TABLE_WRITE if write else TABLE_READ, table_arns)

    def allow_objects(self, bucket: s3.IBucket, actions: list[str], prefix: str = "") -> None:
        allow_objects(self, self.role, bucket, actions, prefix)

    @property
    def arn(self) -> str:
        return self.function.function_arn
