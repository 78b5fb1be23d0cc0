"""Embargo: products readable only by their proposal's principals until released, then by the archive's public
role; the daily release job that releases them.

The data bucket's policy reads the object tags the catalog writes (``obsflow.embargo``). It fails closed: an
object not tagged ``embargoed=false`` is denied to any principal whose ``proposal_id`` principal tag is missing
or differs from the object's, except the stage's own roles that read products (tasks read master
calibrations) and the data stewards named at synthesis (``-c dataStewards=<role ARN>,...``).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from obsflow.embargo import TAG_EMBARGOED, TAG_PROPOSAL
from obsflow.settings import Settings
from obsflow_infra.catalog import CatalogTables
from obsflow_infra.config import StageConfig
from obsflow_infra.functions import ObsflowFunction

RELEASE_RATE = cdk.Duration.days(1)
PRODUCT_READS = ["s3:GetObject", "s3:GetObjectVersion"]
NOT_RELEASED = {f"s3:ExistingObjectTag/{TAG_EMBARGOED}": "false"}  # under StringNotEquals: embargoed, or untagged
PRINCIPALS_PROPOSAL = f"${{aws:PrincipalTag/{TAG_PROPOSAL}}}"


class Embargo(Construct):
    def __init__(self, scope: Construct, id: str, *, config: StageConfig, settings: Settings, catalog: CatalogTables,
                 data: s3.Bucket, stage_readers: list[iam.IRole]) -> None:
        super().__init__(scope, id)
        self.public_reader = iam.Role(
            self, "ArchivePublicReader", assumed_by=iam.AccountPrincipal(cdk.Aws.ACCOUNT_ID),
            description=f"obsflow {config.stage}: the archive's public access; reads released products only")
        exempt = {"ArnNotEquals": {"aws:PrincipalArn": [r.role_arn for r in stage_readers] + list(config.data_stewards)}}
        objects = [data.arn_for_objects("*")]
        data.add_to_resource_policy(iam.PolicyStatement(
            sid="EmbargoDenyUntaggedPrincipals", effect=iam.Effect.DENY, principals=[iam.AnyPrincipal()],
            actions=PRODUCT_READS, resources=objects,
            conditions={"StringNotEquals": NOT_RELEASED, "Null": {f"aws:PrincipalTag/{TAG_PROPOSAL}": "true"},
                        **exempt}))
        data.add_to_resource_policy(iam.PolicyStatement(
            sid="EmbargoDenyOtherProposals", effect=iam.Effect.DENY, principals=[iam.AnyPrincipal()],
            actions=PRODUCT_READS, resources=objects,
            conditions={"StringNotEquals": {**NOT_RELEASED, f"s3:ExistingObjectTag/{TAG_PROPOSAL}": PRINCIPALS_PROPOSAL},
                        **exempt}))
        data.add_to_resource_policy(iam.PolicyStatement(
            sid="ProposalPrincipalsReadTheirProducts", principals=[iam.AnyPrincipal()], actions=PRODUCT_READS,
            resources=objects,
            conditions={"StringEquals": {f"s3:ExistingObjectTag/{TAG_PROPOSAL}": PRINCIPALS_PROPOSAL,
                                         "aws:PrincipalAccount": cdk.Aws.ACCOUNT_ID}}))
        data.add_to_resource_policy(iam.PolicyStatement(
            sid="ArchiveReadsReleasedProducts", principals=[self.public_reader], actions=PRODUCT_READS,
            resources=objects, conditions={"StringEquals": {f"s3:ExistingObjectTag/{TAG_EMBARGOED}": "false"}}))

        self.release = ObsflowFunction(
            self, "Release", function="release", config=config, settings=settings,
            description="Releases datasets whose embargo has ended (re-tags their objects public); re-dates the "
                        "others from the proposal documents in force")
        self.release.allow_tables(catalog.arns("datasets"), write=True)
        self.release.allow_tables(catalog.arns("proposals"), write=False)
        self.release.allow_objects(data, ["s3:PutObjectTagging"])
        self.release.allow(["s3:ListBucket"], [data.bucket_arn])
        events.Rule(self, "ReleaseSchedule", schedule=events.Schedule.rate(RELEASE_RATE),
                    description="Releases datasets whose embargo has ended",
                    targets=[targets.LambdaFunction(self.release.function)])
