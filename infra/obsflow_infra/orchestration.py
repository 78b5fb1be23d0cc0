"""Orchestration: one Step Functions state machine per registered recipe, and the Lambdas its states call.

The definitions come from the builder the local stack uses (obsflow.recipes.asl); the
ARNs go in as DefinitionSubstitutions.
"""

from __future__ import annotations

import json

from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import triggers
from constructs import Construct

from obsflow.recipes.asl import build_definition, camel, placeholders, substitutions
from obsflow.recipes.definitions import RECIPES
from obsflow.pipelines.service import PREFIX as PIPELINE_RECORDS
from obsflow.recipes.model import RESOURCE_CLASSES
from obsflow.settings import Settings
from obsflow.tables.datasets import RECORDS_PREFIX
from obsflow_infra.catalog import CatalogTables
from obsflow_infra.compute import RecipeCompute
from obsflow_infra.config import StageConfig
from obsflow_infra.functions import ObsflowFunction
from obsflow_infra.nag import NO_RESOURCE_LEVEL, acknowledge, wildcard_resource
from obsflow_infra.operations import Operations, arn

# The rule Step Functions manages to learn when a submitJob.sync job ends.
BATCH_SYNC_RULE = "rule/StepFunctionsGetEventsForBatchJobsRule"
# What creating a state machine that logs to CloudWatch Logs asks of its creator.
LOG_DELIVERY = ["logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
                "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies",
                "logs:DescribeLogGroups"]


class Orchestration(Construct):
    def __init__(self, scope: Construct, id: str, *, config: StageConfig, settings: Settings, catalog: CatalogTables,
                 buckets: dict[str, s3.Bucket], compute: RecipeCompute, operations: Operations) -> None:
        super().__init__(scope, id)
        work, data = buckets["work"], buckets["data"]

        def step(function: str, description: str) -> ObsflowFunction:
            handler = ObsflowFunction(self, camel(function), function=function, config=config, settings=settings,
                                      description=description)
            # Every step changes a run and records its instance's derived state; recipes are data.
            handler.allow_tables(catalog.arns("runs", "recipe-instances"), write=True)
            handler.allow_tables(catalog.arns("catalogue-edges", "recipes", "parameter-values"), write=False)
            return handler

        self.start_run = step("start-run", "Marks a run RUNNING with its execution and names its job definitions")
        self.start_run.allow_tables(catalog.arns("campaigns"), write=False)
        self.start_run.allow_objects(work, ["s3:GetObject"], "runs/")  # the run document: each chunked task's chunks
        self.catalog = step("catalog", "Turns a run's products into a versioned dataset in the data bucket")
        self.catalog.allow_tables(catalog.arns("datasets", "qc-values"), write=True)  # with its QC values by metric
        self.catalog.allow_objects(work, ["s3:GetObject"])
        self.catalog.allow_objects(work, ["s3:PutObject"], RECORDS_PREFIX)  # the files and provenance of big datasets
        # Products are written with their embargo tags (obsflow.embargo), which S3 authorizes as tagging.
        self.catalog.allow_objects(data, ["s3:GetObject", "s3:PutObject", "s3:PutObjectTagging"])
        self.catalog.allow_tables(catalog.arns("proposals"), write=False)  # release dates
        self.catalog.allow(["s3:ListBucket"], [work.bucket_arn, data.bucket_arn])
        operations.allow_tickets(self.catalog, catalog)  # a new version of a product asks for a decision
        self.finish_run = step("finish-run", "Marks a run SUCCEEDED, records what it cost and frees its slots")
        # What a successful run cost refines the estimates of its recipe version.
        self.finish_run.allow_tables(catalog.arns("recipe-measurements"), write=True)
        self.finish_run.allow_objects(work, ["s3:GetObject"], "input-datasets/")
        self.fail_run = step("fail-run", "Marks a run FAILED, records what it cost and frees its slots")
        # A campaign whose runs fail too often pauses itself, with a ticket (its blast radius).
        self.fail_run.allow_tables(catalog.arns("campaigns"), write=True)
        self.fail_run.allow_objects(work, ["s3:GetObject"], "runs/")
        operations.allow_tickets(self.fail_run, catalog)
        for ends_run in (self.finish_run, self.fail_run):
            ends_run.allow_tables(catalog.arns("capacity"), write=True)
            operations.allow_nudge(ends_run)

        functions = {"start-run": self.start_run, "catalog": self.catalog, "finish-run": self.finish_run,
                     "fail-run": self.fail_run, "open-ticket": operations.ticket}
        pi_topic = operations.topics["pi-notifications"]
        self.substitutions = substitutions(
            {name: function.arn for name, function in functions.items()}, pi_topic.topic_arn,
            {rc: compute.job_queues[rc].job_queue_arn for rc in RESOURCE_CLASSES},
        )
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
                             description=f"obsflow {config.stage}: the recipe state machines")
        self.role.add_to_policy(iam.PolicyStatement(actions=["lambda:InvokeFunction"],
                                                    resources=[f.arn for f in functions.values()]))
        # The stage's job definitions by name (their latest revision), and a developer campaign's revisions
        # with another task image (<name>-dev:N, registered by `obsflow campaigns start`).
        job_definitions = arn("batch", f"job-definition/{settings.resource('task-')}*")
        self.role.add_to_policy(iam.PolicyStatement(
            actions=["batch:SubmitJob"], resources=[*(q.job_queue_arn for q in compute.job_queues.values()), job_definitions]))
        acknowledge(self.role, wildcard_resource(
            f"arn:<AWS::Partition>:batch:<AWS::Region>:<AWS::AccountId>:job-definition/{settings.resource('task-')}*"),
            "The stage's task job definitions, any revision: StartRun names the stage's or a developer campaign's.")
        self.role.add_to_policy(iam.PolicyStatement(actions=["batch:DescribeJobs", "batch:TerminateJob"], resources=["*"]))
        acknowledge(self.role, wildcard_resource("*"), f"Batch jobs, tracing and log delivery: {NO_RESOURCE_LEVEL}.")
        self.role.add_to_policy(iam.PolicyStatement(actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                                                    resources=[arn("events", BATCH_SYNC_RULE)]))
        operations.allow_publish(self.role, "pi-notifications")

        self.log_group = logs.LogGroup(self, "Logs", log_group_name=f"/aws/vendedlogs/states/obsflow-{config.stage}",
                                       retention=config.logs_retention, removal_policy=config.removal_policy)
        self.state_machines: dict[str, sfn.StateMachine] = {}
        for recipe in RECIPES:
            definition = build_definition(recipe)
            used = placeholders(definition)
            self.state_machines[recipe.key] = sfn.StateMachine(
                self, f"Recipe{camel(recipe.name)}V{recipe.version.replace('.', '_')}",
                state_machine_name=settings.state_machine_name(recipe.name, recipe.version),
                state_machine_type=sfn.StateMachineType.STANDARD,
                definition_body=sfn.DefinitionBody.from_string(json.dumps(definition)),
                definition_substitutions={key: value for key, value in self.substitutions.items() if key in used},
                role=self.role,
                tracing_enabled=True,
                logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
            )
        self._register_recipes_after_deployment(config, settings, catalog, work)

    def _register_recipes_after_deployment(self, config: StageConfig, settings: Settings, catalog: CatalogTables,
                                           work: s3.IBucket) -> None:
        """`obsflow recipes list` shows what this deployment runs: the image changes with the recipes, and so
        the trigger runs again. `obsflow recipes register FILE` calls the same function with a definition:
        it records that version and creates its state machine, with this stack's role, logs and tracing."""
        self.register_recipes = ObsflowFunction(
            self, "RegisterRecipes", function="register-recipes", config=config, settings=settings,
            description="Records recipe versions in the recipes table and creates the state machine of a new one")
        function = self.register_recipes
        function.allow_tables(catalog.arns("recipes"), write=True)
        # A hosted pipeline's recipe is accepted with the task classes `obsflow pipelines add` recorded only.
        function.allow_objects(work, ["s3:GetObject"], PIPELINE_RECORDS)
        function.function.add_environment("OBSFLOW_STATE_MACHINE_ROLE_ARN", self.role.role_arn)
        function.function.add_environment("OBSFLOW_STATE_MACHINE_LOG_GROUP_ARN", self.log_group.log_group_arn)
        function.allow(["states:CreateStateMachine", "states:UpdateStateMachine", "states:TagResource"],
                       [arn("states", f"stateMachine:{settings.resource('')}*")])
        acknowledge(function, wildcard_resource(
            f"arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:stateMachine:{settings.resource('')}*"),
            "A version registered as data gets a state machine named obsflow-<stage>-<recipe>-v<version>; "
            "only that name prefix is allowed.")
        function.allow(["iam:PassRole"], [self.role.role_arn])
        function.allow(LOG_DELIVERY, ["*"])
        acknowledge(function, wildcard_resource("*"), "CloudWatch Logs delivery for Step Functions accepts no "
                    "resource ARN (logs:CreateLogDelivery and its kin).")
        triggers.Trigger(self, "RegisterRecipesTrigger", handler=function.function,
                         execute_after=[catalog["recipes"], *self.state_machines.values()],
                         execute_on_handler_change=True)
