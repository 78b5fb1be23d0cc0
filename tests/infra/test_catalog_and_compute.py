"""Catalog tables equal to the pynamodb models; Batch compute per resource class."""

from __future__ import annotations

import pytest

from obsflow import tables
from obsflow.recipes.jobs import JOB_TIMEOUT_S, RESOURCES, job_retry_strategy
from obsflow.recipes.model import RESOURCE_CLASSES

pytestmark = pytest.mark.infra


def _key_schema(keys: list[dict]) -> set[tuple[str, str]]:
    return {(k["AttributeName"], k["KeyType"]) for k in keys}


def test_tables_have_exactly_the_keys_and_indexes_the_models_declare(dev):
    # Given every pynamodb model, and the tables in the template
    models = tables.models()
    synthesized = {t["Properties"]["TableName"]: t["Properties"] for t in dev.resources("AWS::DynamoDB::Table").values()}
    assert len(synthesized) == len(models)
    for name, model in models.items():
        schema = model._get_schema()
        table = synthesized[dev.stack.settings.table_name(name)]
        # Then keys, attribute types and indexes (keys and projection) are the model's
        assert _key_schema(table["KeySchema"]) == _key_schema(schema["key_schema"]), name
        assert sorted(table["AttributeDefinitions"], key=str) == sorted(schema["attribute_definitions"], key=str), name
        indexes = {i["IndexName"]: i for i in table.get("GlobalSecondaryIndexes", [])}
        assert set(indexes) == {i["index_name"] for i in schema["global_secondary_indexes"]}, name
        for index in schema["global_secondary_indexes"]:
            assert _key_schema(indexes[index["index_name"]]["KeySchema"]) == _key_schema(index["key_schema"])
            assert indexes[index["index_name"]]["Projection"] == index["projection"]
        # And every table is on-demand with point-in-time recovery
        assert table["BillingMode"] == "PAY_PER_REQUEST"
        assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_prod_tables_are_retained_and_protected_dev_tables_are_not(dev, prod):
    for synthesized, retained in ((dev, False), (prod, True)):
        for table in synthesized.resources("AWS::DynamoDB::Table").values():
            assert table["DeletionPolicy"] == ("Retain" if retained else "Delete")
            assert table["Properties"]["DeletionProtectionEnabled"] is retained


def test_a_fair_share_job_queue_per_resource_class(dev, prod):
    for synthesized, environments in ((dev, 2), (prod, 1)):
        compute = synthesized.stack.compute
        # Fargate compute environments: Spot first, then on-demand in dev; on-demand only in prod
        envs = synthesized.resources("AWS::Batch::ComputeEnvironment")
        assert len(envs) == environments
        types = [e["Properties"]["ComputeResources"]["Type"] for e in envs.values()]
        assert sorted(types) == sorted(["FARGATE_SPOT", "FARGATE"][-environments:])
        policy = {"Fn::GetAtt": [synthesized.logical_id(compute.scheduling_policy), "Arn"]}
        priorities = set()
        for resource_class in RESOURCE_CLASSES:
            queue = synthesized.resource(compute.job_queues[resource_class])["Properties"]
            assert queue["JobQueueName"] == synthesized.stack.settings.job_queue_name(resource_class)
            assert queue["SchedulingPolicyArn"] == policy
            assert [o["Order"] for o in queue["ComputeEnvironmentOrder"]] == list(range(1, environments + 1))
            priorities.add(queue["Priority"])
        assert len(priorities) == len(RESOURCE_CLASSES)
    fair_share = next(iter(dev.resources("AWS::Batch::SchedulingPolicy").values()))["Properties"]["FairsharePolicy"]
    assert fair_share["ShareDecaySeconds"] == 3600


def test_job_definitions_run_the_task_image_on_fargate_arm64(dev):
    compute = dev.stack.compute
    for resource_class in RESOURCE_CLASSES:
        definition = dev.resource(compute.job_definitions[resource_class])["Properties"]
        container = definition["ContainerProperties"]
        vcpu, memory = RESOURCES[resource_class]
        assert definition["PlatformCapabilities"] == ["FARGATE"]
        assert container["RuntimePlatform"] == {"CpuArchitecture": "ARM64", "OperatingSystemFamily": "LINUX"}
        assert {r["Type"]: r["Value"] for r in container["ResourceRequirements"]} == {
            "VCPU": vcpu, "MEMORY": memory}
        assert definition["Timeout"] == {"AttemptDurationSeconds": JOB_TIMEOUT_S}
        assert len(definition["RetryStrategy"]["EvaluateOnExit"]) == len(job_retry_strategy()["evaluateOnExit"])
        environment = {v["Name"]: v["Value"] for v in container["Environment"]}
        assert environment["OBSFLOW_STAGE"] == "dev" and environment["OBSFLOW_RESOURCE_CLASS"] == resource_class
        assert "OBSFLOW_BUCKETS" in environment
        assert container["LogConfiguration"]["Options"]["awslogs-group"] == {"Ref": dev.logical_id(compute.log_group)}
        assert container["NetworkConfiguration"] == {"AssignPublicIp": "DISABLED"}
    # And all three use one image asset, built from containers/pipeline/Dockerfile
    images = {dev.resource(compute.job_definitions[rc])["Properties"]["ContainerProperties"]["Image"]["Fn::Sub"]
              for rc in RESOURCE_CLASSES}
    assert len(images) == 1
    assets = (dev.outdir / f"{dev.stack.stack_name}.assets.json").read_text()
    assert '"dockerFile": "containers/pipeline/Dockerfile"' in assets and '"platform": "linux/arm64"' in assets


def test_tasks_run_in_isolated_subnets_reaching_aws_through_endpoints(dev):
    subnets = dev.resources("AWS::EC2::Subnet")
    assert all(s["Properties"]["MapPublicIpOnLaunch"] is False for s in subnets.values())
    dev.assertions.resource_count_is("AWS::EC2::NatGateway", 0)
    dev.assertions.resource_count_is("AWS::EC2::InternetGateway", 0)
    endpoints = [e["Properties"]["ServiceName"] for e in dev.resources("AWS::EC2::VPCEndpoint").values()]
    assert len(endpoints) == 4  # S3 (gateway), ECR API, ECR Docker, CloudWatch Logs
    dev.assertions.resource_count_is("AWS::EC2::FlowLog", 1)
