"""Hosted pipelines on AWS: EFS scratch, the Redis scratch inventory, admitted from the stage's jobs only, and a task
image with job definitions per pipeline version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from obsflow.recipes.jobs import job_definitions
from obsflow.recipes.model import RESOURCE_CLASSES
from obsflow_infra.pipelines import REDIS_PORT, SCRATCH_PATH, TASK_USER

pytestmark = pytest.mark.infra

PIPELINES = json.loads((Path(__file__).resolve().parents[2] / "cdk.json").read_text())["context"]["pipelines"]


def _ingress_sources(synthesized, group) -> list[tuple[object, int]]:
    """(source, port) of every ingress rule of a security group (a construct or a logical id), inline or separate."""
    group_id = group if isinstance(group, str) else synthesized.logical_id(group)
    rules = [(r["SourceSecurityGroupId"], r["FromPort"])
             for r in synthesized.template["Resources"][group_id]["Properties"].get("SecurityGroupIngress", [])]
    for ingress in synthesized.resources("AWS::EC2::SecurityGroupIngress").values():
        properties = ingress["Properties"]
        if properties["GroupId"] == {"Fn::GetAtt": [group_id, "GroupId"]}:
            rules.append((properties.get("SourceSecurityGroupId") or properties.get("CidrIp"), properties["FromPort"]))
    return rules


def test_scratch_is_an_encrypted_efs_reached_through_one_access_point_by_the_jobs_only(dev):
    pipelines, compute = dev.stack.pipelines, dev.stack.compute
    jobs = {"Fn::GetAtt": [dev.logical_id(compute.jobs_security_group), "GroupId"]}
    # Then the file system is encrypted, and its mount targets admit NFS from the jobs' security group alone
    file_system = dev.resource(pipelines.scratch)["Properties"]
    assert file_system["Encrypted"] is True
    assert _ingress_sources(dev, pipelines.scratch.connections.security_groups[0]) == [(jobs, 2049)]
    # And the access point gives every job the task image's user and one directory
    access_point = dev.resource(pipelines.access_point)["Properties"]
    assert access_point["PosixUser"] == {"Uid": TASK_USER, "Gid": TASK_USER}
    assert access_point["RootDirectory"]["Path"] == "/scratch"
    # And the compute environments put every job in that security group
    for environment in dev.resources("AWS::Batch::ComputeEnvironment").values():
        assert environment["Properties"]["ComputeResources"]["SecurityGroupIds"] == [jobs]
    # And the job role may mount and write it
    mounts = [s for s in dev.statements(compute.job_role) if "elasticfilesystem:ClientMount" in s["Action"]]
    assert mounts and all("elasticfilesystem:ClientWrite" in s["Action"] for s in mounts)


def test_the_scratch_inventory_is_redis_in_the_isolated_subnets_for_the_jobs_only(dev, prod):
    for synthesized, replicated in ((dev, False), (prod, True)):
        redis = synthesized.resource(synthesized.stack.pipelines.redis)["Properties"]
        assert redis["Engine"] == "redis" and redis["Port"] == REDIS_PORT != 6379
        assert redis["AtRestEncryptionEnabled"] is True
        # prod: a replica in another zone with failover; dev: one node
        assert redis["MultiAZEnabled"] is replicated and redis["AutomaticFailoverEnabled"] is replicated
        assert redis["NumCacheClusters"] == (2 if replicated else 1)
        (group_id,) = [g["Fn::GetAtt"][0] for g in redis["SecurityGroupIds"]]
        jobs = {"Fn::GetAtt": [synthesized.logical_id(synthesized.stack.compute.jobs_security_group), "GroupId"]}
        assert _ingress_sources(synthesized, group_id) == [(jobs, REDIS_PORT)]
    subnets = next(iter(dev.resources("AWS::ElastiCache::SubnetGroup").values()))["Properties"]["SubnetIds"]
    assert len(subnets) == 2


def test_each_pipeline_version_has_its_task_image_and_a_job_definition_per_resource_class(dev):
    # Given the pipelines cdk.json lists, and a pipeline recipe of each
    pipelines, settings = dev.stack.pipelines, dev.stack.settings
    assert dev.stack.config.pipelines == tuple(PIPELINES) and len(PIPELINES) >= 2
    assets = json.loads((dev.outdir / f"{dev.stack.stack_name}.assets.json").read_text())["dockerImages"].values()
    images = {}
    for requirement in PIPELINES:
        package, version = requirement.split("==")
        # Then StartRun's names for a run of its recipe are the job definitions the stack makes
        recipe = type("PipelineRecipe", (), {"pipeline": type("Source", (), {"package": package, "version": version})})
        names = job_definitions(settings, recipe, {})
        for resource_class in RESOURCE_CLASSES:
            definition = dev.resource(pipelines.job_definitions[(requirement, resource_class)])["Properties"]
            assert definition["JobDefinitionName"] == names[resource_class.replace("-", "_")]
            assert definition["JobDefinitionName"].startswith(settings.resource("task-"))  # the state machines may submit it
            container = definition["ContainerProperties"]
            images.setdefault(requirement, set()).add(container["Image"]["Fn::Sub"])
            # And the scratch is EFS at the one path the tasks use, through the access point, encrypted, as the job
            (volume,) = container["Volumes"]
            efs = volume["EfsVolumeConfiguration"]
            assert efs["TransitEncryption"] == "ENABLED" and efs["AuthorizationConfig"]["Iam"] == "ENABLED"
            assert efs["AuthorizationConfig"]["AccessPointId"] == {"Ref": dev.logical_id(pipelines.access_point)}
            assert container["MountPoints"] == [{"ContainerPath": SCRATCH_PATH, "SourceVolume": "scratch"}]
            environment = {v["Name"]: v["Value"] for v in container["Environment"]}
            assert environment["OBSFLOW_SCRATCH_DIR"] == SCRATCH_PATH
            assert environment["OBSFLOW_RESOURCE_CLASS"] == resource_class
            # And the scratch inventory is the stage's Redis; the metadata store is each job's own
            services = json.dumps(environment["OBSFLOW_PIPELINE_SERVICES"])
            assert dev.logical_id(pipelines.redis) in services and "metadata-store" not in services
        # And the image is built from the Dockerfile's hosted-pipeline stage with the pipeline named
        (image,) = images[requirement]
        (asset,) = [a for a in assets if a["source"].get("dockerBuildArgs", {}).get("PIPELINE") == requirement]
        assert asset["source"]["dockerBuildTarget"] == "hosted-pipeline"
        assert asset["source"]["dockerFile"] == "containers/pipeline/Dockerfile"
        assert image.endswith(next(iter(asset["destinations"].values()))["imageTag"])
    assert len({image for found in images.values() for image in found}) == len(PIPELINES)


def test_a_stage_lists_its_pipelines_as_exact_versions():
    from obsflow_infra.config import StageConfig

    # Given a pipeline named without its version, or twice
    for pipelines, message in (("dkist-processing-vbi", "PACKAGE==VERSION"),
                               ("a==1.0.0,a==1.0.0", "listed twice")):
        # Then the stage's configuration refuses it, naming the context value
        with pytest.raises(ValueError, match=message):
            StageConfig(stage="dev", log_retention_days=30, retain_data=False, spot=True, max_vcpus=16,
                        pipelines=tuple(pipelines.split(",")))
