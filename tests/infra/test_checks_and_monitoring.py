"""cdk-nag and cfn-lint on the synthesized app; alarms and dashboard; synth with the pinned CDK CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from aws_cdk import aws_s3 as s3
from cfnlint.api import ManualArgs, lint

from obsflow import discovery
from obsflow.recipes.definitions import RECIPES

from .conftest import REPO_ROOT, build, cdk

pytestmark = pytest.mark.infra

# CDK's own DependsOn next to a GetAtt (a role's policy before its function): harmless, and not ours to change.
LINT_IGNORED = {"W3005"}
REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2"]


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_cdk_nag_aws_solutions_finds_nothing_unacknowledged(synthesized, stage):
    # Given the app synthesized with the AwsSolutions pack as a validation plugin
    report = json.loads((synthesized(stage).outdir / "validation-report.json").read_text())
    # Then the pack ran and reports no violation
    (aws_solutions,) = [p for p in report["pluginReports"] if p["pluginName"] == "AwsSolutions"]
    assert aws_solutions["conclusion"] == "success"
    assert aws_solutions["violations"] == []


def test_cdk_nag_fails_the_synth_of_an_unreviewed_finding(tmp_path):
    # Given the app plus a bucket without access logs or TLS enforcement
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    app = cdk.App(outdir=str(tmp_path), context=context)
    stack = build(app)
    s3.Bucket(stack, "Unreviewed")
    # When synthesizing, then cdk-nag stops it, naming the rules
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for p in report["pluginReports"] for v in p["violations"]}
    assert {"AwsSolutions-S1", "AwsSolutions-S10"} <= rules


def test_every_acknowledged_finding_has_a_reason(dev):
    acknowledged = {rule: reason for construct in dev.stack.node.find_all() for entry in construct.node.metadata
                    if entry.type == "aws:cdk:acknowledged-rules" for rule, reason in entry.data.items()
                    if rule.startswith("AwsSolutions::")}
    assert len(acknowledged) >= 10
    for rule, reason in acknowledged.items():
        assert len(reason) > 40, rule


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_cfn_lint_finds_no_errors(synthesized, stage):
    template = json.dumps(synthesized(stage).template)
    matches = [m for m in lint(template, config=ManualArgs(regions=REGIONS)) if m.rule.id not in LINT_IGNORED]
    assert [str(m) for m in matches] == []


def test_alarms_watch_dead_letters_failed_runs_ingest_and_release_errors_and_tell_the_operators(dev):
    monitoring, operators = dev.stack.monitoring, dev.stack.operations.topics["operators"]
    alarms = {name: dev.resource(alarm)["Properties"] for name, alarm in monitoring.alarms.items()}
    assert set(alarms) == {"dead-letters", "failed-runs", "ingest-errors", "release-errors"}
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [{"Ref": dev.logical_id(operators)}]
        assert alarm["OKActions"] == [{"Ref": dev.logical_id(operators)}]
        assert alarm["Threshold"] == 1 and alarm["TreatMissingData"] == "notBreaching"
        assert alarm["AlarmDescription"]
    dead_letters = alarms["dead-letters"]
    assert dead_letters["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert dead_letters["Dimensions"][0]["Value"] == {"Fn::GetAtt": [dev.logical_id(dev.stack.ingest.dead_letter_queue),
                                                                     "QueueName"]}
    assert alarms["ingest-errors"]["MetricName"] == "Errors"
    assert alarms["ingest-errors"]["Dimensions"][0]["Value"] == {"Ref": dev.logical_id(dev.stack.ingest.handler.function)}
    assert alarms["release-errors"]["Dimensions"][0]["Value"] == {"Ref": dev.logical_id(dev.stack.embargo.release.function)}
    # Failed runs: the sum over every recipe's state machine
    failed = [m for m in alarms["failed-runs"]["Metrics"] if "MetricStat" in m]
    assert len(failed) == len(RECIPES)
    assert {m["MetricStat"]["Metric"]["MetricName"] for m in failed} == {"ExecutionsFailed"}
    # The operators' topic is encrypted with a key CloudWatch may use
    key_policy = dev.resource(dev.stack.operations.topic_key)["Properties"]["KeyPolicy"]["Statement"]
    assert any(s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"} for s in key_policy)
    dev.assertions.resource_count_is("AWS::CloudWatch::Dashboard", 1)


def test_schedules_run_the_submitter_every_minute_recurring_campaigns_every_5_and_the_daily_jobs(dev):
    rules = sorted((r["Properties"]["ScheduleExpression"], r["Properties"]["Targets"][0]["Arn"]["Fn::GetAtt"][0])
                   for r in dev.resources("AWS::Events::Rule").values())
    functions = dev.stack.functions
    assert rules == sorted([("rate(1 minute)", dev.logical_id(functions["submitter"].function)),
                            ("rate(1 day)", dev.logical_id(functions["backstop"].function)),
                            ("rate(1 day)", dev.logical_id(functions["release"].function)),
                            ("rate(5 minutes)", dev.logical_id(functions["campaign-schedule"].function))])


def test_the_stage_records_its_resources_for_the_cli(dev):
    parameter = dev.resource(dev.stack.node.find_child("Discovery"))["Properties"]
    assert parameter["Name"] == discovery.parameter_name("dev")
    # The same document the local stack publishes, with the deployed bucket names
    value = "".join(part if isinstance(part, str) else "<%s>" % part["Ref"] for part in parameter["Value"]["Fn::Join"][1])
    recorded = json.loads(value)
    assert set(recorded) == set(discovery.document(dev.stack.settings))
    assert recorded["buckets"]["ingest"] == "obsflow-dev-ingest-<AWS::AccountId>-<AWS::Region>"
    assert recorded["tables"]["runs"] == "obsflow-dev-runs"


def test_the_stage_document_is_written_after_every_resource_it_names(dev):
    # Given the discovery parameter and every bucket, table, queue, topic, function and state machine
    depends_on = set(dev.resource(dev.stack.node.find_child("Discovery")).get("DependsOn", []))
    named = {logical_id for kind in ("AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::SNS::Topic",
                                     "AWS::Lambda::Function", "AWS::StepFunctions::StateMachine",
                                     "AWS::Batch::JobQueue", "AWS::Batch::JobDefinition")
             for logical_id in dev.resources(kind)}
    # Then CloudFormation creates the document only after all of the stage's own ones exist
    outside_constructs = {i for i in named if not any(i.startswith(c) for c in (
        "Storage", "Catalog", "Ingest", "Compute", "Operations", "Orchestration", "Monitoring"))}
    assert named - outside_constructs <= depends_on
    assert len(named - outside_constructs) > 30


CDK_CLI = REPO_ROOT / "infra" / "node_modules" / ".bin" / "cdk"


@pytest.mark.skipif(not CDK_CLI.exists(), reason="the pinned CDK CLI is installed by `make test` (npm ci --prefix infra)")
def test_cdk_synth_works_offline_without_docker_or_credentials(tmp_path):
    # Given no AWS credentials or config, and no Docker on PATH
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environment.update(AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
                       PATH=os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                            if not (shutil.which("docker", path=p))))
    # When the pinned CLI synthesizes the prod stage
    completed = subprocess.run([str(CDK_CLI), "synth", "-c", "stage=prod", "-o", str(tmp_path / "out"), "--quiet",
                                "--no-notices"], cwd=REPO_ROOT, env=environment, capture_output=True, text=True,
                               timeout=300)
    # Then it succeeds (cdk-nag included) and writes the template and the image assets
    assert completed.returncode == 0, completed.stdout + completed.stderr
    template = json.loads((tmp_path / "out" / "obsflow-prod.template.json").read_text())
    assert len(template["Resources"]) > 100
    assets = json.loads((tmp_path / "out" / "obsflow-prod.assets.json").read_text())
    assert {a["source"]["dockerFile"] for a in assets["dockerImages"].values()} == {
        "functions/Dockerfile", "containers/pipeline/Dockerfile"}


def test_each_image_asset_holds_what_its_dockerfile_copies(dev):
    # Given the staged build contexts of the images (the repository, filtered by .dockerignore): the functions',
    # the tasks', and a hosted pipeline's per pipeline version
    assets = json.loads((dev.outdir / f"{dev.stack.stack_name}.assets.json").read_text())["dockerImages"]
    assert len(assets) == 2 + len(dev.stack.config.pipelines)
    for asset in assets.values():
        context = dev.outdir / asset["source"]["directory"]
        dockerfile = (context / asset["source"]["dockerFile"]).read_text()
        copies = [line.split()[1:-1] for line in dockerfile.splitlines()
                  if line.startswith("COPY ") and "--from=" not in line]
        # Then every source a COPY names is in the context, and nothing heavy came along
        assert copies
        for sources in copies:
            for source in sources:
                assert (context / source).exists(), f"{asset['source']['dockerFile']}: {source} is not in the context"
        assert not (context / ".venv").exists() and not (context / "tests").exists() and not (context / "infra").exists()


def test_operators_may_cancel_and_reprioritize_this_stages_runs_only(dev):
    # Given the run-control policy an operator's role attaches
    policy = dev.resource(dev.stack.operations.run_control)["Properties"]
    assert policy["ManagedPolicyName"] == "obsflow-dev-run-control"
    statements = {tuple(sorted(s["Action"])) if isinstance(s["Action"], list) else (s["Action"],): s["Resource"]
                  for s in policy["PolicyDocument"]["Statement"]}
    # Then it stops executions of this stage's state machines only, and writes this stage's runs tables only
    assert "execution:obsflow-dev-*:*" in json.dumps(statements[("states:StopExecution",)])
    tables = statements[("dynamodb:BatchGetItem", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:Query",
                         "dynamodb:UpdateItem")]
    assert all("Catalog" in json.dumps(t) for t in tables)
    assert statements[("batch:ListJobs", "batch:TerminateJob")] == "*"
