"""cdk-nag findings that are right for this design: acknowledged where they arise, each with its reason."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import IConstruct

# Actions that accept no resource ARN, so their statements must name "*".
NO_RESOURCE_LEVEL = "X-Ray trace upload, ECR authorization and Batch DescribeJobs accept no resource ARN"


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    # "<plugin>::<rule>" names the validation plugin whose finding this is.
    cdk.Validations.of(construct).acknowledge(cdk.Acknowledgment(id=f"AwsSolutions::{rule}", reason=reason))


def wildcard_resource(resource: str) -> str:
    """The cdk-nag finding of a wildcard in a statement's resource, as it names it."""
    return f"AwsSolutions-IAM5[Resource::{resource}]"


def logical_arn(resource: IConstruct) -> str:
    """How cdk-nag writes the ARN of a resource of this stack: ``<LogicalId.Arn>``."""
    stack = cdk.Stack.of(resource)
    return f"<{stack.resolve(stack.get_logical_id(resource.node.default_child))}.Arn>"


def allow_objects(scope: IConstruct, role: iam.IRole, bucket: s3.IBucket, actions: list[str], prefix: str = "") -> None:
    """``actions`` on the objects under ``prefix`` of ``bucket``: object keys are data, so the ARN ends in '*'."""
    role.add_to_principal_policy(iam.PolicyStatement(actions=actions, resources=[bucket.arn_for_objects(prefix + "*")]))
    acknowledge(scope, wildcard_resource(f"{logical_arn(bucket)}/{prefix}*"),
                f"Object keys are data (frame, run and dataset ids): access is limited to '{prefix or '(all)'}' "
                "in this one bucket and to the listed object actions.")
