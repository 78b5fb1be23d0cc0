"""State machines from the recipe builder; the Lambda functions; each role's IAM statements."""

from __future__ import annotations

import importlib
import json

import pytest

from obsflow.recipes.asl import build_definition, function_key, job_definition_field, job_queue_key, placeholders, render
from obsflow.recipes.definitions import RECIPES
from obsflow_infra.orchestration import LOG_DELIVERY
from obsflow.recipes.model import RESOURCE_CLASSES
from obsflow.settings import FUNCTIONS
from obsflow_infra.functions import SIZES

from .conftest import synthesize

pytestmark = pytest.mark.infra


def _reference(value: dict) -> str:
    """``{"Fn::GetAtt": [id, attr]}`` -> ``id.attr``; ``{"Ref": id}`` -> ``id``."""
    return ".".join(value["Fn::GetAtt"]) if "Fn::GetAtt" in value else value["Ref"]


def _batch_states(states: dict, task: str) -> list[dict]:
    """The Batch job states of a task: its own, or a data-parallel task's array and whole-run jobs."""
    every = {**states, **{n: s for state in states.values() for branch in state.get("Branches", [])
                          for n, s in branch["States"].items()}}
    found = [state for name, state in every.items()
             if name.partition(" ")[0] == task and state.get("Resource") == "arn:aws:states:::batch:submitJob.sync"]
    assert found, task
    return found


def test_one_state_machine_per_recipe_equal_to_the_builders_definition(dev):
    orchestration = dev.stack.orchestration
    dev.assertions.resource_count_is("AWS::StepFunctions::StateMachine", len(RECIPES))
    for recipe in RECIPES:
        machine = dev.resource(orchestration.state_machines[recipe.key])["Properties"]
        definition = build_definition(recipe)
        # The definition is the builder's, with its ${placeholders} left for CloudFormation
        assert json.loads(machine["DefinitionString"]) == definition
        assert set(machine["DefinitionSubstitutions"]) == placeholders(definition)
        assert machine["StateMachineName"] == dev.stack.settings.state_machine_name(recipe.name, recipe.version)
        # With the substitutions applied, every state names this stack's resources
        applied = json.loads(render(definition, {k: _reference(v) for k, v in machine["DefinitionSubstitutions"].items()}))
        states = applied["States"]
        assert states["StartRun"]["Parameters"]["FunctionName"] == dev.logical_id(orchestration.start_run.function) + ".Arn"
        if recipe.kind == "science":  # the PI hears of science datasets only
            assert states["NotifyPI"]["Parameters"]["TopicArn"] == dev.logical_id(dev.stack.operations.topics["pi-notifications"])
        else:
            assert "NotifyPI" not in states and states["Catalog"]["Next"] == "FinishRun"
        for task in recipe.tasks:
            jobs = _batch_states(states, task.name)
            assert len(jobs) == (2 if task.data_parallel else 1)  # an array job over its chunks, or one job
            for job in jobs:
                parameters = job["Parameters"]
                queue = dev.stack.compute.job_queues[task.resource_class]
                assert parameters["JobQueue"] == dev.logical_id(queue) + ".JobQueueArn"
                # The stage's job definition, or a developer campaign's revision: StartRun names it
                assert parameters["JobDefinition.$"] == \
                    f"$.start.result.job_definitions.{job_definition_field(task.resource_class)}"
        # Logged and traced
        assert machine["LoggingConfiguration"]["Level"] == "ALL"
        assert machine["TracingConfiguration"] == {"Enabled": True}
        assert machine["StateMachineType"] == "STANDARD"


def test_substitutions_point_at_the_functions_queues_and_topic(dev):
    substitutions = dev.stack.resolve(dev.stack.orchestration.substitutions)
    functions = dev.stack.functions
    for function in ("start-run", "catalog", "finish-run", "fail-run", "open-ticket"):
        assert substitutions[function_key(function)] == {"Fn::GetAtt": [dev.logical_id(functions[function].function), "Arn"]}
    for resource_class in RESOURCE_CLASSES:
        assert substitutions[job_queue_key(resource_class)] == {
            "Fn::GetAtt": [dev.logical_id(dev.stack.compute.job_queues[resource_class]), "JobQueueArn"]}


def test_every_function_is_an_arm64_image_with_powertools_tracing_and_sizes(dev):
    assert set(dev.stack.functions) == set(FUNCTIONS)
    # ours, plus the provider CDK's trigger uses to run RegisterRecipes
    dev.assertions.resource_count_is("AWS::Lambda::Function", len(FUNCTIONS) + 1)
    images = set()
    for name, function in dev.stack.functions.items():
        properties = dev.resource(function.function)["Properties"]
        timeout_s, memory_mb = SIZES[name]
        assert properties["FunctionName"] == dev.stack.settings.function_name(name)
        assert properties["Architectures"] == ["arm64"] and properties["PackageType"] == "Image"
        assert (properties["Timeout"], properties["MemorySize"]) == (timeout_s, memory_mb)
        assert properties["TracingConfig"] == {"Mode": "Active"}
        # One submitter pass at a time; the others scale out
        assert properties.get("ReservedConcurrentExecutions") == (1 if name == "submitter" else None)
        variables = properties["Environment"]["Variables"]
        assert variables["POWERTOOLS_SERVICE_NAME"] == "obsflow" and variables["OBSFLOW_STAGE"] == "dev"
        # The image command is a handler that exists in functions/
        (handler,) = properties["ImageConfig"]["Command"]
        module, attribute = handler.rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module), attribute))
        log_group = dev.resource(function.log_group)["Properties"]
        assert properties["LoggingConfig"]["LogGroup"] == {"Ref": dev.logical_id(function.log_group)}
        assert log_group["RetentionInDays"] == 30
        images.add(json.dumps(properties["Code"]))
    assert len(images) == 1  # one image, built once from functions/Dockerfile


def test_every_log_group_has_a_retention(dev, prod):
    for synthesized, days in ((dev, 30), (prod, 365)):
        groups = synthesized.resources("AWS::Logs::LogGroup")
        assert groups and all(g["Properties"]["RetentionInDays"] == days for g in groups.values())


def _actions(statements: list[dict]) -> set[str]:
    return {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}


BATCH_READS = ("batch:ListJobs", "batch:DescribeJobs")
# What each role may do, and nothing else.
EXPECTED_ACTIONS = {
    "ingest": {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "lambda:InvokeFunction",
               "sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueUrl", "sqs:DeleteMessage",
               "sqs:GetQueueAttributes"},
    "submitter": {"s3:GetObject", "s3:PutObject", "states:StartExecution", "ssm:GetParameter", "sns:Publish",
                  "kms:GenerateDataKey", "kms:Decrypt"},
    "start-run": {"s3:GetObject"},
    "catalog": {"s3:GetObject", "s3:PutObject", "s3:PutObjectTagging", "s3:ListBucket", "sns:Publish",
                "kms:GenerateDataKey", "kms:Decrypt"},
    "finish-run": {"s3:GetObject", "lambda:InvokeFunction"},
    "fail-run": {"lambda:InvokeFunction", "s3:GetObject", "sns:Publish", "kms:GenerateDataKey", "kms:Decrypt"},
    "open-ticket": {"logs:GetLogEvents", "batch:ListJobs", "batch:DescribeJobs", "sns:Publish", "kms:GenerateDataKey",
                    "kms:Decrypt"},
    "backstop": {"lambda:InvokeFunction", "sns:Publish", "kms:GenerateDataKey", "kms:Decrypt", "s3:DeleteObject",
                 "s3:ListBucket", "s3:GetObject"},
    # Opens datasets whose embargo has ended: their objects' tags, never their bytes.
    "release": {"s3:PutObjectTagging", "s3:ListBucket"},
    # Recurring campaigns: what each occurrence selected (campaigns/), the plan of a dataset selection (plans/).
    "campaign-schedule": {"s3:GetObject", "s3:PutObject", "lambda:InvokeFunction"},
    # Creates the state machine of a version registered as data, with the stack's role, logs and tracing; reads
    # the records of added pipelines (a pipeline's recipe names only its workflow's task classes).
    "register-recipes": {"states:CreateStateMachine", "states:UpdateStateMachine", "states:TagResource", "iam:PassRole",
                         "s3:GetObject", *LOG_DELIVERY},
}
COMMON = {"logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def test_each_function_role_holds_exactly_what_it_needs(dev):
    for name, function in dev.stack.functions.items():
        statements = dev.statements(function.role)
        actions = _actions(statements)
        data = {a for a in actions if not a.startswith("dynamodb:")}
        assert data == EXPECTED_ACTIONS[name] | COMMON, name
        # No wildcard actions, and no wildcard resources except for X-Ray (which takes none)
        assert not any("*" in action for action in actions), name
        for statement in statements:
            if statement["Resource"] == "*":
                # X-Ray, the log delivery of a state machine's logging, and Batch's job listing (the failed chunk of
                # an array job): none takes a resource ARN
                assert set(_actions([statement])) <= {"xray:PutTraceSegments", "xray:PutTelemetryRecords",
                                                      *(LOG_DELIVERY if name == "register-recipes" else ()),
                                                      *(BATCH_READS if name == "open-ticket" else ())}, name


def _resources_of(dev, role, action: str) -> list:
    return [r for s in dev.statements(role) if action in _actions([s])
            for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])]


def test_only_catalog_writes_the_data_bucket_and_no_function_deletes_task_outputs(dev):
    data_arn = {"Fn::GetAtt": [dev.logical_id(dev.stack.storage.buckets["data"]), "Arn"]}
    for name, function in dev.stack.functions.items():
        writes = json.dumps(_resources_of(dev, function.role, "s3:PutObject"))
        assert (json.dumps(data_arn) in writes) == (name == "catalog"), name
    work_arn = json.dumps({"Fn::GetAtt": [dev.logical_id(dev.stack.storage.buckets["work"]), "Arn"]})
    assert not [name for name, function in dev.stack.functions.items()
                if work_arn in json.dumps(_resources_of(dev, function.role, "s3:DeleteObject"))]
    # And only the retention sweep deletes data, and only developer datasets
    deleters = {name: json.dumps(_resources_of(dev, function.role, "s3:DeleteObject"))
                for name, function in dev.stack.functions.items()}
    assert [name for name, resources in deleters.items() if resources != "[]"] == ["backstop"]
    assert deleters["backstop"].endswith('"/dev/*"]]}]')


def test_register_recipes_creates_state_machines_of_the_stage_only_with_the_stage_role(dev):
    function = dev.stack.functions["register-recipes"]
    assert json.dumps(_resources_of(dev, function.role, "s3:GetObject")).count("/pipelines/packages/*") == 1
    machines = json.dumps(_resources_of(dev, function.role, "states:CreateStateMachine"))
    assert f":stateMachine:obsflow-{dev.stack.settings.stage}-*" in machines
    passed = _resources_of(dev, function.role, "iam:PassRole")
    assert passed == [{"Fn::GetAtt": [dev.logical_id(dev.stack.orchestration.role), "Arn"]}]
    environment = dev.resource(function.function)["Properties"]["Environment"]["Variables"]
    assert environment["OBSFLOW_STATE_MACHINE_ROLE_ARN"] == passed[0]
    assert "OBSFLOW_STATE_MACHINE_LOG_GROUP_ARN" in environment


def test_the_catalogue_tables_are_written_by_discovery_and_the_run_steps_only(dev):
    functions = dev.stack.functions
    submitter = json.dumps(_resources_of(dev, functions["submitter"].role, "dynamodb:PutItem"))
    assert dev.logical_id(dev.stack.catalog["catalogue-edges"]) in submitter  # discovery records input edges
    for step in ("start-run", "catalog", "finish-run", "fail-run"):  # each records its instance's derived state
        updates = json.dumps(_resources_of(dev, functions[step].role, "dynamodb:UpdateItem"))
        assert dev.logical_id(dev.stack.catalog["recipe-instances"]) in updates, step
    measured = json.dumps(_resources_of(dev, functions["finish-run"].role, "dynamodb:UpdateItem"))
    assert dev.logical_id(dev.stack.catalog["recipe-measurements"]) in measured
    ingest = json.dumps(_resources_of(dev, functions["ingest"].role, "dynamodb:UpdateItem"))
    assert dev.logical_id(dev.stack.catalog["recipe-instances"]) not in ingest


def test_a_run_s_status_counts_may_be_written_wherever_its_status_may(dev):
    # Given the runs table and the counts of their statuses, written in the same transactions
    runs, counts = (dev.logical_id(dev.stack.catalog[name]) for name in ("runs", "run-counts"))
    # Then each function that may update a run may update the counts, and no other function may
    updates = {name: json.dumps(_resources_of(dev, function.role, "dynamodb:UpdateItem"))
               for name, function in dev.stack.functions.items()}
    run_writers = {name for name, resources in updates.items() if f'"{runs}"' in resources}
    assert run_writers == {name for name, resources in updates.items() if f'"{counts}"' in resources}
    assert run_writers >= {"submitter", "start-run", "finish-run", "fail-run"}
    # And so may the run-control policy the operators attach (a cancel is a move)
    statements = dev.resource(dev.stack.operations.run_control)["Properties"]["PolicyDocument"]["Statement"]
    controlled = json.dumps([s["Resource"] for s in statements if "dynamodb:UpdateItem" in _actions([s])])
    assert f'"{runs}"' in controlled and f'"{counts}"' in controlled


def test_table_access_names_each_table_and_index(dev):
    ingest_tables = json.dumps(_resources_of(dev, dev.stack.functions["ingest"].role, "dynamodb:PutItem"))
    for table in ("frames", "observing-programs", "manifests", "candidates", "quarantine"):
        assert dev.logical_id(dev.stack.catalog[table]) in ingest_tables
    for table in ("runs", "datasets", "tickets", "capacity"):
        assert dev.logical_id(dev.stack.catalog[table]) not in ingest_tables
    assert '"/index/by-op"' in ingest_tables and "index/*" not in ingest_tables
    # Read-only where only reading: the submitter reads frames but never writes them
    submitter = dev.stack.functions["submitter"].role
    assert dev.logical_id(dev.stack.catalog["frames"]) in json.dumps(_resources_of(dev, submitter, "dynamodb:Query"))
    assert dev.logical_id(dev.stack.catalog["frames"]) not in json.dumps(_resources_of(dev, submitter, "dynamodb:PutItem"))


def test_the_qc_index_is_written_by_the_catalog_step_only_and_read_by_the_campaign_schedule(dev):
    # Given the QC values table (by dataset and metric, indexed by metric and value)
    table, functions = dev.logical_id(dev.stack.catalog["qc-values"]), dev.stack.functions
    # Then the catalog step alone writes it (a dataset's QC values as it is catalogued), its index by name
    writers = [name for name, function in functions.items()
               if table in json.dumps(_resources_of(dev, function.role, "dynamodb:PutItem"))]
    assert writers == ["catalog"]
    # And recurring campaigns, whose selections take QC filters, query its index and write nothing of it
    schedule = functions["campaign-schedule"].role
    assert '"/index/by-metric"' in json.dumps(_resources_of(dev, schedule, "dynamodb:Query"))
    assert table not in json.dumps(_resources_of(dev, schedule, "dynamodb:PutItem"))
    # And no other function reads it
    readers = sorted(name for name, function in functions.items()
                     if table in json.dumps(_resources_of(dev, function.role, "dynamodb:Query")))
    assert readers == ["campaign-schedule", "catalog"]


def test_the_state_machine_role_invokes_its_functions_submits_jobs_and_notifies_the_pi(dev):
    role = dev.stack.orchestration.role
    actions = _actions(dev.statements(role))
    assert {"lambda:InvokeFunction", "batch:SubmitJob", "batch:DescribeJobs", "batch:TerminateJob",
            "events:PutTargets", "events:PutRule", "events:DescribeRule", "sns:Publish"} <= actions
    assert not any("*" in action for action in actions)
    invoked = json.dumps(_resources_of(dev, role, "lambda:InvokeFunction"))
    assert "Ingest" not in invoked and "Submitter" not in invoked
    published = _resources_of(dev, role, "sns:Publish")
    assert published == [{"Ref": dev.logical_id(dev.stack.operations.topics["pi-notifications"])}]


def test_recipes_are_registered_after_each_deployment_that_changes_them(dev):
    (trigger,) = dev.resources("Custom::Trigger").values()
    register = dev.stack.functions["register-recipes"]
    # The handler's version: its logical id changes with the image, so a new image runs it again
    version = dev.template["Resources"][trigger["Properties"]["HandlerArn"]["Ref"]]
    assert version["Type"] == "AWS::Lambda::Version"
    assert version["Properties"]["FunctionName"] == {"Ref": dev.logical_id(register.function)}
    # after the recipes table and every state machine exist
    for machine in dev.stack.orchestration.state_machines.values():
        assert dev.logical_id(machine) in trigger["DependsOn"]
    assert dev.logical_id(dev.stack.catalog["recipes"]) in trigger["DependsOn"]
    recipes_table = dev.logical_id(dev.stack.catalog["recipes"])
    assert recipes_table in json.dumps(_resources_of(dev, register.role, "dynamodb:PutItem"))


def test_with_a_jira_secret_only_the_ticket_filers_may_read_it(tmp_path):
    # Given the app synthesized with the Jira adapter's secret named
    synthesized = synthesize("dev", tmp_path, jiraSecretName="obsflow/jira")
    for name, function in synthesized.stack.functions.items():
        readers = _resources_of(synthesized, function.role, "secretsmanager:GetSecretValue")
        variables = synthesized.resource(function.function)["Properties"]["Environment"]["Variables"]
        # Then the functions that file tickets read exactly that secret (its ARN ends in six random characters)
        if name in ("open-ticket", "submitter", "backstop", "catalog", "fail-run"):
            assert json.dumps(readers).endswith(':secret:obsflow/jira-??????"]]}]'), name
        else:
            assert readers == [], name
        assert variables["OBSFLOW_JIRA_SECRET_ID"] == "obsflow/jira"


def test_the_task_role_reads_raw_frames_and_products_and_uses_the_work_bucket(dev):
    statements = dev.statements(dev.stack.compute.job_role)
    assert _actions(statements) == {"s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:ListBucket",
                                    "elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"}  # hosted scratch
    assert '"/raw/*"' in json.dumps(statements)
    # The data bucket is read only (upstream datasets' products: a science run reads its master calibrations)
    data = dev.logical_id(dev.stack.storage.buckets["data"])
    assert [s["Action"] for s in statements if data in json.dumps(s["Resource"])] == ["s3:GetObject"]
