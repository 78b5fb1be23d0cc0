"""Who may do what, on AWS: one IAM role per role of ``obsflow.roles``, each with only what its commands need.

Who may assume them: the account (AccountRootPrincipal), and nothing outside it. The account's administrators
grant each role to the people who hold it (an IAM policy allowing ``sts:AssumeRole`` on the role's ARN, or an IAM
Identity Center permission set); the stack grants nobody. The pi-read role also takes session tags: the grant
passes the PI's proposal as the principal tag ``proposal_id``, which this role's statements and the data
bucket's embargo policy (obsflow_infra.embargo) read.

What IAM cannot see is left to the command and said here: a campaign's type is an attribute of its item, so the
developer role may write campaigns of any type as far as DynamoDB is concerned (the command refuses the others);
what IAM can say, it says: a developer reads only ``dev/`` of the data bucket and may never write a dataset's item
(its decisions), a PI reads only its own proposal's and released objects.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from obsflow import discovery, roles
from obsflow.embargo import TAG_EMBARGOED, TAG_PROPOSAL
from obsflow.pipelines.service import PREFIX as PIPELINE_RECORDS
from obsflow.runs.layout import DISCOVERY_RULES_KEY
from obsflow.runs.platform import SsmSubmissionSwitch
from obsflow.settings import TABLES, Settings
from obsflow.tables.datasets import RECORDS_PREFIX
from obsflow_infra.catalog import CatalogTables
from obsflow_infra.config import StageConfig
from obsflow_infra.functions import TABLE_READ, TABLE_WRITE
from obsflow_infra.nag import acknowledge, allow_objects, logical_arn, wildcard_resource
from obsflow_infra.operations import arn, function_arn

SESSION = cdk.Duration.hours(4)
DEV_PREFIX = "dev/"  # a developer campaign's datasets (obsflow.runs.layout.dataset_prefix)
PLANS = "plans/"  # reprocessing plans (obsflow.runs.reprocessing)
CAMPAIGN_FILES = "campaigns/"  # a campaign's attached documents and what each occurrence selected
TABLE_CHANGES = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"]
# Tables each role writes, beyond reading the stage (the operator's run control is its managed policy).
WRITES = {
    roles.OPERATOR: ("runs", "recipe-instances", "catalogue-edges", "capacity", "campaigns", "tickets", "candidates"),
    roles.DATA_QUALITY: ("datasets", "qc-values", "tags", "campaigns", "tickets"),  # qc-values: `datasets reindex-qc`
    roles.DEVELOPER: ("campaigns", "recipe-instances", "catalogue-edges", "runs"),
    roles.PIPELINE_MANAGER: ("recipes", "parameter-values"),
    roles.PI_READ: (),
}
# Its datasets (and their QC values, to select by), and the recipes that made them.
PI_TABLES = ("datasets", "qc-values", "proposals", "recipes", "parameter-values")


class PeopleRoles(Construct):
    """The IAM roles of the people who use a stage: operator, data-quality, developer, pipeline-manager, pi-read."""

    def __init__(self, scope: Construct, id: str, *, config: StageConfig, settings: Settings, catalog: CatalogTables,
                 buckets: dict[str, s3.Bucket], run_control: iam.ManagedPolicy) -> None:
        super().__init__(scope, id)
        self.settings, self.catalog, self.buckets = settings, catalog, buckets
        self.roles: dict[str, iam.Role] = {}
        for role in roles.ROLES:
            principal = iam.AccountRootPrincipal()
            self.roles[role] = iam.Role(
                self, role.title().replace("-", ""), role_name=settings.resource(role),
                assumed_by=principal.with_session_tags() if role == roles.PI_READ else principal,
                max_session_duration=SESSION,
                description=f"obsflow {config.stage} {role}: {roles.DUTIES[role]}"[:1000])
            # The CLI finds the stage's resources in one parameter.
            self._allow(role, ["ssm:GetParameter"],
                        [arn("ssm", f"parameter{discovery.parameter_name(settings.stage)}")])
            readable = PI_TABLES if role == roles.PI_READ else TABLES
            self._allow(role, TABLE_READ + ["dynamodb:Scan"], catalog.arns(*readable))
            if WRITES[role]:
                self._allow(role, TABLE_WRITE, catalog.arns(*WRITES[role]))
            self._objects(role, "work", ["s3:GetObject"], RECORDS_PREFIX)  # a dataset's file list, kept apart
        self._operator(run_control)
        self._data_quality()
        self._developer()
        self._pipeline_manager()
        self._pi_read()

    def _allow(self, role: str, actions: list[str], resources: list[str], **conditions) -> None:
        self.roles[role].add_to_policy(iam.PolicyStatement(actions=actions, resources=resources,
                                                           conditions=conditions or None))

    def _objects(self, role: str, bucket: str, actions: list[str], prefix: str) -> None:
        allow_objects(self, self.roles[role], self.buckets[bucket], actions, prefix)

    def _nudge(self, role: str) -> None:
        self._allow(role, ["lambda:InvokeFunction"], [function_arn(self.settings, "submitter")])

    def _operator(self, run_control: iam.ManagedPolicy) -> None:
        """Runs (retry, redrive, cancel, prioritize: its run-control policy), tickets, pause and resume (the
        submission switch), campaigns, uploads to the ingest bucket and the ingest dead-letter queue."""
        self.roles[roles.OPERATOR].add_managed_policy(run_control)
        self._allow(roles.OPERATOR, ["ssm:GetParameter", "ssm:PutParameter"],
                    [arn("ssm", f"parameter{SsmSubmissionSwitch.parameter_name(self.settings)}")])
        for prefix in (PLANS, CAMPAIGN_FILES, "input-datasets/", "runs/"):
            self._objects(roles.OPERATOR, "work", ["s3:GetObject", "s3:PutObject"], prefix)
        for prefix in ("raw/", "manifests/", "candidates/", "proposals/"):
            self._objects(roles.OPERATOR, "ingest", ["s3:PutObject"], prefix)
        self._allow(roles.OPERATOR, ["sqs:GetQueueUrl", "sqs:GetQueueAttributes", "sqs:ReceiveMessage",
                                     "sqs:DeleteMessage", "sqs:SendMessage"],
                    [arn("sqs", self.settings.ingest_dlq_name), arn("sqs", self.settings.ingest_queue_name)])

    def _data_quality(self) -> None:
        """Dataset decisions and calibration certification (the datasets table), bad frames and tags, campaign
        accept, reject and approve; an approval nudges the submitter."""
        self._nudge(roles.DATA_QUALITY)
        self._objects(roles.DATA_QUALITY, "work", ["s3:GetObject"], PLANS)
        self._objects(roles.DATA_QUALITY, "work", ["s3:GetObject", "s3:PutObject"], CAMPAIGN_FILES)  # attach

    def _developer(self) -> None:
        """Developer campaigns: their datasets under dev/ of the data bucket, read and swept by hand; plans; never
        a dataset's item (a production decision), whatever else grants it."""
        self._nudge(roles.DEVELOPER)
        for prefix in (PLANS, CAMPAIGN_FILES):
            self._objects(roles.DEVELOPER, "work", ["s3:GetObject", "s3:PutObject"], prefix)
        self._objects(roles.DEVELOPER, "data", ["s3:GetObject", "s3:DeleteObject"], DEV_PREFIX)
        self._allow(roles.DEVELOPER, ["s3:ListBucket"], [self.buckets["data"].bucket_arn],
                    StringLike={"s3:prefix": [f"{DEV_PREFIX}*"]})
        self.roles[roles.DEVELOPER].add_to_policy(iam.PolicyStatement(
            sid="DevelopersNeverDecideDatasets", effect=iam.Effect.DENY, actions=TABLE_CHANGES,
            resources=self.catalog.arns("datasets")))

    def _pipeline_manager(self) -> None:
        """Recipes (registered through the stage's register-recipes function, which makes their state machines),
        parameter values, the discovery rules in force, hosted pipelines' records."""
        self._allow(roles.PIPELINE_MANAGER, ["lambda:InvokeFunction"],
                    [function_arn(self.settings, "register-recipes")])
        self._objects(roles.PIPELINE_MANAGER, "work", ["s3:GetObject", "s3:PutObject"], PIPELINE_RECORDS)
        self._allow(roles.PIPELINE_MANAGER, ["s3:GetObject", "s3:PutObject"],
                    [self.buckets["work"].arn_for_objects(DISCOVERY_RULES_KEY)])
        self._allow(roles.PIPELINE_MANAGER, ["s3:ListBucket"], [self.buckets["work"].bucket_arn],
                    StringLike={"s3:prefix": [f"{PIPELINE_RECORDS}*"]})
        self._allow(roles.PIPELINE_MANAGER, ["batch:DescribeJobDefinitions"], ["*"])
        acknowledge(self.roles[roles.PIPELINE_MANAGER], wildcard_resource("*"),
                    "Batch's DescribeJobDefinitions takes no resource: `pipelines add` checks that the stage's job "
                    "definitions of the pipeline exist; it reads, never changes.")

    def _pi_read(self) -> None:
        """A PI's own proposal's objects (the principal tag proposal_id equals the object's tag) and released
        ones (tagged embargoed=false by the release job); listing only under its proposal's prefix."""
        data, own = self.buckets["data"], f"${{aws:PrincipalTag/{TAG_PROPOSAL}}}"
        reads = ["s3:GetObject", "s3:GetObjectVersion"]
        self.roles[roles.PI_READ].add_to_policy(iam.PolicyStatement(
            sid="ItsProposalsObjects", actions=reads, resources=[data.arn_for_objects("*")],
            conditions={"StringEquals": {f"s3:ExistingObjectTag/{TAG_PROPOSAL}": own}}))
        self.roles[roles.PI_READ].add_to_policy(iam.PolicyStatement(
            sid="ReleasedObjects", actions=reads, resources=[data.arn_for_objects("*")],
            conditions={"StringEquals": {f"s3:ExistingObjectTag/{TAG_EMBARGOED}": "false"}}))
        self._allow(roles.PI_READ, ["s3:ListBucket"], [data.bucket_arn], StringLike={"s3:prefix": [f"{own}/*"]})
        acknowledge(self.roles[roles.PI_READ], wildcard_resource(f"{logical_arn(data)}/*"),
                    "A PI reads objects by their tags, not their keys: its own proposal's (the object's proposal_id "
                    "tag equals its principal tag) and released ones (embargoed=false), as the bucket policy does.")
