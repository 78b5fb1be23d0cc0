"""Hosted pipelines: what DKIST's pipelines expect of their host, on AWS, and a task image per pipeline version.

- Scratch: an EFS file system, mounted through one access point at the same absolute path in every job.
- The scratch inventory: an ElastiCache Redis replication group (DKIST's client speaks plain Redis, no AUTH).
- The metadata store needs nothing here: each job serves it on loopback (obsflow_tasks.pipeline), over the work bucket.
Both admit the stage's jobs (their security group) and nothing else. Each pipeline version of the stage
(``-c pipelines=...``) gets its task image (containers/pipeline/Dockerfile, target hosted-pipeline) and a job
definition per resource class, named as StartRun names them (Settings.pipeline_job_definition_name).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_batch as batch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_efs as efs
from aws_cdk import aws_elasticache as elasticache
from constructs import Construct

from obsflow.pipelines.environments import parse_requirement
from obsflow.recipes.asl import camel
from obsflow.recipes.jobs import job_environment
from obsflow.recipes.model import RESOURCE_CLASSES
from obsflow.settings import Settings
from obsflow_infra.compute import RecipeCompute
from obsflow_infra.config import StageConfig
from obsflow_infra.functions import REPO_ROOT
from obsflow_infra.nag import acknowledge

SCRATCH_PATH = "/mnt/scratch"  # the one absolute path of every run's scratch, in every job
PIPELINES_PATH = "/opt/obsflow/pipelines"  # where the hosted-pipeline image builds the pipeline's venv
TASK_USER = "10001"  # the task image's user (containers/pipeline/Dockerfile)
REDIS_PORT = 6390  # not Redis's default port (cdk-nag AEC5); DKIST's client takes any port from MESH_CONFIG


class HostedPipelines(Construct):
    def __init__(self, scope: Construct, id: str, *, config: StageConfig, settings: Settings,
                 compute: RecipeCompute) -> None:
        super().__init__(scope, id)
        isolated = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        jobs = compute.jobs_security_group

        def admitting_jobs(name: str, port: int) -> ec2.SecurityGroup:
            group = ec2.SecurityGroup(self, f"{name}SecurityGroup", vpc=compute.vpc, allow_all_outbound=False,
                                      description=f"obsflow {config.stage}: {name}, for the jobs of the stage only")
            group.add_ingress_rule(jobs, ec2.Port.tcp(port), f"the jobs of the stage reach the {name}")
            return group

        self.scratch = efs.FileSystem(
            self, "Scratch", vpc=compute.vpc, vpc_subnets=isolated, encrypted=True,
            security_group=admitting_jobs("Scratch", efs.FileSystem.DEFAULT_PORT),
            throughput_mode=efs.ThroughputMode.ELASTIC, enable_automatic_backups=False,
            # a run's scratch lives until its Teardown: nothing in it outlives the stack
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.access_point = self.scratch.add_access_point(
            "TaskScratch", path="/scratch", posix_user=efs.PosixUser(uid=TASK_USER, gid=TASK_USER),
            create_acl=efs.Acl(owner_uid=TASK_USER, owner_gid=TASK_USER, permissions="750"))
        self.scratch.grant(compute.job_role, "elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite")

        self.redis = self._redis(config, compute, isolated, admitting_jobs("ScratchInventory", REDIS_PORT))

        hosted = settings.model_copy(update={
            "scratch_dir": SCRATCH_PATH, "pipelines_dir": PIPELINES_PATH,
            # no metadata store: each job serves its own (obsflow_tasks.pipeline)
            "pipeline_services": {"scratch-inventory": f"{self.redis.attr_primary_end_point_address}:{REDIS_PORT}"}})
        volume = batch.EcsVolume.efs(name="scratch", file_system=self.scratch, container_path=SCRATCH_PATH,
                                     access_point_id=self.access_point.access_point_id,
                                     enable_transit_encryption=True, use_job_role=True)
        self.images: dict[str, ecs.ContainerImage] = {}
        self.job_definitions: dict[tuple[str, str], batch.EcsJobDefinition] = {}
        for requirement in config.pipelines:
            package, version = parse_requirement(requirement)
            image = ecs.ContainerImage.from_asset(
                str(REPO_ROOT), file="containers/pipeline/Dockerfile", target="hosted-pipeline",
                build_args={"PIPELINE": requirement}, platform=cdk.aws_ecr_assets.Platform.LINUX_ARM64)
            self.images[requirement] = image
            for resource_class in RESOURCE_CLASSES:
                self.job_definitions[(requirement, resource_class)] = compute.job_definition(
                    self, f"{camel(package)}{version.replace('.', '_')}{camel(resource_class)}",
                    settings.pipeline_job_definition_name(package, version, resource_class), image, resource_class,
                    job_environment(hosted, resource_class), volumes=(volume,))

    def _redis(self, config: StageConfig, compute: RecipeCompute, isolated: ec2.SubnetSelection,
               group: ec2.SecurityGroup) -> elasticache.CfnReplicationGroup:
        subnets = elasticache.CfnSubnetGroup(
            self, "ScratchInventorySubnets", description=f"obsflow {config.stage}: the scratch inventory",
            subnet_ids=compute.vpc.select_subnets(subnet_type=isolated.subnet_type).subnet_ids)
        replicated = config.stage == "prod"  # a primary and a replica in another zone, with failover
        redis = elasticache.CfnReplicationGroup(
            self, "ScratchInventory",
            replication_group_description=f"obsflow {config.stage}: hosted pipelines' scratch inventory (tags)",
            engine="redis", engine_version="7.1", cache_node_type="cache.r7g.large" if replicated else "cache.t4g.small",
            num_cache_clusters=2 if replicated else 1, automatic_failover_enabled=replicated, multi_az_enabled=replicated,
            port=REDIS_PORT, cache_subnet_group_name=subnets.ref, security_group_ids=[group.security_group_id],
            at_rest_encryption_enabled=True, transit_encryption_enabled=False, snapshot_retention_limit=0)
        acknowledge(redis, "AwsSolutions-AEC3", "At rest it is encrypted. DKIST's pipelines connect with a plain Redis "
                    "client (dkist_processing_common._util.tags: no TLS option); only the stage's jobs, in isolated "
                    "subnets, can reach it.")
        acknowledge(redis, "AwsSolutions-AEC6", "DKIST's pipelines send no Redis AUTH token (and AUTH needs TLS); "
                    "its security group admits the stage's jobs only.")
        if not replicated:
            acknowledge(redis, "AwsSolutions-AEC4", "dev: one node; a run's tags are rebuilt by running it again. "
                        "prod is multi-AZ with automatic failover.")
        return redis
