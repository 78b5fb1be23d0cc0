"""Operations: the SNS topics, the ticket Lambda, the submitter, backstop and campaign schedule with their schedules.

Permissions that point at functions or state machines use ARNs built from their
conventional names, because those resources in turn point back (a finished run nudges
the submitter; the submitter starts runs).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from constructs import Construct

from obsflow.recipes.definitions import RECIPES
from obsflow.runs.platform import SsmSubmissionSwitch
from obsflow.settings import TOPICS, Settings
from obsflow.tables.datasets import RECORDS_PREFIX
from obsflow_infra.catalog import CatalogTables
from obsflow_infra.config import StageConfig
from obsflow_infra.functions import ObsflowFunction
from obsflow_infra.nag import acknowledge, wildcard_resource

SUBMITTER_RATE = cdk.Duration.minutes(1)
BACKSTOP_RATE = cdk.Duration.days(1)
CAMPAIGN_SCHEDULE_RATE = cdk.Duration.minutes(5)


def arn(service: str, resource: str, sep: str = ":") -> str:
    return f"arn:{cdk.Aws.PARTITION}:{service}:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}{sep}{resource}"


def function_arn(settings: Settings, function: str) -> str:
    return arn("lambda", f"function:{settings.function_name(function)}")


def state_machine_arns(settings: Settings) -> list[str]:
    return [arn("states", f"stateMachine:{settings.state_machine_name(r.name, r.version)}") for r in RECIPES]


class Operations(Construct):
    def __init__(self, scope: Construct, id: str, *, config: StageConfig, settings: Settings,
                 catalog: CatalogTables, buckets: dict[str, s3.Bucket]) -> None:
        super().__init__(scope, id)
        self.settings = settings
        self.topic_key = kms.Key(self, "TopicKey", enable_key_rotation=True,
                                 description=f"obsflow {config.stage}: encrypts the SNS topics")
        # CloudWatch alarms publish to the operators' topic.
        self.topic_key.add_to_resource_policy(iam.PolicyStatement(
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=["*"],
        ))
        self.topics = {
            topic: sns.Topic(self, topic.title().replace("-", ""), topic_name=settings.topic_name(topic),
                             master_key=self.topic_key, enforce_ssl=True)
            for topic in TOPICS
        }
        self.jira_secret = (secretsmanager.Secret.from_secret_name_v2(self, "JiraSecret", config.jira_secret_name)
                            if config.jira_secret_name else None)

        self.ticket = ObsflowFunction(self, "OpenTicket", function="open-ticket", config=config, settings=settings,
                                      description="Opens one service-desk ticket per failed run attempt")
        self.allow_tickets(self.ticket, catalog)
        self.ticket.allow_tables(catalog.arns("runs"), write=False)
        self.ticket.allow(["logs:GetLogEvents"], [arn("logs", f"log-group:{settings.task_log_group}:log-stream:*")])
        acknowledge(self.ticket, wildcard_resource(
            f"arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:{settings.task_log_group}:log-stream:*"),
            "Batch names a log stream per job; the ticket quotes the failed job's stream of the task log group only.")
        # A data-parallel task's failure is its array job's: the ticket names the chunk that failed, and quotes its log.
        self.ticket.allow(["batch:ListJobs", "batch:DescribeJobs"], ["*"])
        acknowledge(self.ticket, wildcard_resource("*"),
                    "Batch's ListJobs and DescribeJobs support no resource-level permissions; they read, never change.")

        self.submitter = ObsflowFunction(
            self, "Submitter", function="submitter", config=config, settings=settings,
            description="Plans READY candidates and starts READY runs by priority within the run slots",
        )
        self.submitter.allow_tables(catalog.arns("candidates", "recipe-instances", "catalogue-edges", "runs", "capacity"),
                                    write=True)
        # Discovery reads a candidate's OPs and frames; planning, upstream datasets and measured costs.
        self.submitter.allow_tables(catalog.arns("frames", "observing-programs", "datasets", "recipe-measurements",
                                                 "recipes", "parameter-values", "campaigns"), write=False)
        for prefix in ("runs/", "input-datasets/"):
            self.submitter.allow_objects(buckets["work"], ["s3:GetObject", "s3:PutObject"], prefix)
        self.submitter.allow_objects(buckets["work"], ["s3:GetObject"], RECORDS_PREFIX)  # upstream datasets' files
        self.submitter.allow(["states:StartExecution"], state_machine_arns(settings))
        self.submitter.allow(["ssm:GetParameter"], [arn("ssm", f"parameter{SsmSubmissionSwitch.parameter_name(settings)}")])
        self.allow_tickets(self.submitter, catalog)  # a manual-by-definition run waits with a ticket
        events.Rule(self, "SubmitterSchedule", schedule=events.Schedule.rate(SUBMITTER_RATE),
                    description="Starts waiting runs even if a nudge was lost",
                    targets=[targets.LambdaFunction(self.submitter.function)])

        self.backstop = ObsflowFunction(
            self, "Backstop", function="backstop", config=config, settings=settings,
            description=f"Releases candidates still incomplete {settings.backstop_days} days after their first frame; "
                        "sweeps developer datasets past their retention",
        )
        self.backstop.allow_tables(catalog.arns("candidates"), write=True)
        self.backstop.allow_tables(catalog.arns("observing-programs"), write=False)
        # The retention sweep: developer datasets (dev/ in the data bucket) past their retention, unless in use.
        self.backstop.allow_tables(catalog.arns("datasets"), write=True)
        self.backstop.allow_tables(catalog.arns("catalogue-edges", "recipe-instances"), write=False)
        self.backstop.allow_objects(buckets["data"], ["s3:DeleteObject"], "dev/")
        self.backstop.allow_objects(buckets["work"], ["s3:GetObject"], RECORDS_PREFIX)  # which files to sweep
        self.backstop.allow(["s3:ListBucket"], [buckets["data"].bucket_arn])
        self.allow_tickets(self.backstop, catalog)
        self.allow_nudge(self.backstop)
        events.Rule(self, "BackstopSchedule", schedule=events.Schedule.rate(BACKSTOP_RATE),
                    description="Processes candidates that never completed",
                    targets=[targets.LambdaFunction(self.backstop.function)])
        self.campaign_schedule = self._campaign_schedule(config, settings, catalog, buckets)
        self.run_control = self._run_control(config, settings, catalog)

    def _campaign_schedule(self, config: StageConfig, settings: Settings, catalog: CatalogTables,
                           buckets: dict[str, s3.Bucket]) -> ObsflowFunction:
        """Recurring campaigns: every few minutes, each one whose next occurrence is due selects what is new and
        inserts its instances (the submitter runs them)."""
        function = ObsflowFunction(self, "CampaignSchedule", function="campaign-schedule", config=config,
                                   settings=settings, description="Runs the occurrences of recurring campaigns that are due")
        function.allow_tables(catalog.arns("campaigns", "recipe-instances", "catalogue-edges"), write=True)
        # The selection (ID sets, tags, catalogue queries and QC filters) and the plan of a dataset selection.
        function.allow_tables(catalog.arns("frames", "observing-programs", "candidates", "tags", "datasets", "qc-values",
                                           "runs", "recipes", "parameter-values", "recipe-measurements"), write=False)
        function.allow_objects(buckets["work"], ["s3:GetObject", "s3:PutObject"], "campaigns/")  # each occurrence
        function.allow_objects(buckets["work"], ["s3:GetObject", "s3:PutObject"], "plans/")
        function.allow_objects(buckets["work"], ["s3:GetObject"], RECORDS_PREFIX)
        self.allow_nudge(function)
        events.Rule(self, "CampaignScheduleRate", schedule=events.Schedule.rate(CAMPAIGN_SCHEDULE_RATE),
                    description="Recurring campaigns: occurrences that are due",
                    targets=[targets.LambdaFunction(function.function)])
        return function

    def _run_control(self, config: StageConfig, settings: Settings, catalog: CatalogTables) -> iam.ManagedPolicy:
        """What `obsflow runs cancel` and `runs prioritize` do, for the operators' roles to attach: this stage's
        runs and their executions and jobs, nothing of another stage."""
        tables = catalog.arns("runs", "recipe-instances", "capacity", "campaigns", "recipes")
        policy = iam.ManagedPolicy(
            self, "RunControl", managed_policy_name=settings.resource("run-control"),
            description=f"obsflow {config.stage}: cancel and re-prioritize runs (obsflow runs cancel|prioritize)",
            statements=[
                iam.PolicyStatement(actions=["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:Query",
                                             "dynamodb:UpdateItem", "dynamodb:BatchGetItem"], resources=tables),
                iam.PolicyStatement(actions=["states:StopExecution"],
                                    resources=[arn("states", f"execution:{settings.resource('')}*:*")]),
                iam.PolicyStatement(actions=["batch:ListJobs", "batch:TerminateJob"], resources=["*"]),
                iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[function_arn(settings, "submitter")]),
            ])
        acknowledge(policy, wildcard_resource("*"), "Batch's ListJobs and TerminateJob take no job queue as a resource "
                    "(a job's ARN is only known once it runs); the CLI terminates only jobs named after the run.")
        acknowledge(policy, wildcard_resource(
            f"arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:{settings.resource('')}*:*"),
            "A run's execution is named after the run, under this stage's state machines only.")
        return policy

    def allow_publish(self, role: iam.IRole, topic: str) -> None:
        role.add_to_principal_policy(iam.PolicyStatement(actions=["sns:Publish"], resources=[self.topics[topic].topic_arn]))
        role.add_to_principal_policy(iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"],
                                                         resources=[self.topic_key.key_arn]))

    def allow_tickets(self, function: ObsflowFunction, catalog: CatalogTables) -> None:
        """Filing a ticket: the tickets table, the operators' topic and, if set, the Jira secret."""
        function.allow_tables(catalog.arns("tickets"), write=True)
        self.allow_publish(function.role, "operators")
        if self.jira_secret:
            function.allow(["secretsmanager:GetSecretValue"], [f"{self.jira_secret.secret_arn}-??????"])

    def allow_nudge(self, function: ObsflowFunction) -> None:
        function.allow(["lambda:InvokeFunction"], [function_arn(self.settings, "submitter")])
