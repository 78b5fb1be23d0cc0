"""Recipe compute: Fargate compute environments, a job queue and job definition per resource class.

Tasks run in isolated subnets and reach S3, ECR and CloudWatch Logs through VPC
endpoints only. Each queue shares its capacity fairly between proposals (the state
machines give each job its proposal's share identifier and its run's priority).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_batch as batch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from obsflow.recipes.asl import camel
from obsflow.recipes.jobs import DEFAULT_COMMAND, JOB_TIMEOUT_S, RESOURCES, job_environment, job_retry_strategy
from obsflow.recipes.model import RESOURCE_CLASSES
from obsflow.settings import Settings
from obsflow_infra.config import StageConfig
from obsflow_infra.functions import REPO_ROOT
from obsflow_infra.nag import NO_RESOURCE_LEVEL, acknowledge, allow_objects, wildcard_resource

# Higher runs first when queues share a compute environment: short default tasks ahead of big ones.
QUEUE_PRIORITY = {"default": 30, "multi-core": 20, "high-memory": 10}


def retry_strategies() -> list[batch.RetryStrategy]:
    """The same rules as the local stack's job definitions (obsflow.recipes.jobs)."""
    strategies = []
    for rule in job_retry_strategy()["evaluateOnExit"]:
        action = batch.Action.RETRY if rule["action"] == "RETRY" else batch.Action.EXIT
        reason = batch.Reason.custom(on_status_reason=rule.get("onStatusReason"), on_reason=rule.get("onReason"))
        strategies.append(batch.RetryStrategy.of(action, reason))
    return strategies


class RecipeCompute(Construct):
    def __init__(self, scope: Construct, id: str, *, config: StageConfig, settings: Settings,
                 buckets: dict[str, s3.Bucket]) -> None:
        super().__init__(scope, id)
        self.vpc = self._network(config)
        # Every job's network interface: what the hosted pipelines' scratch, Redis and metadata store admit.
        self.jobs_security_group = ec2.SecurityGroup(self, "Jobs", vpc=self.vpc, allow_all_outbound=True,
                                                     description=f"obsflow {config.stage}: recipe tasks")
        environments = [
            batch.FargateComputeEnvironment(
                self, f"Fargate{'Spot' if spot else ''}",
                compute_environment_name=settings.resource("tasks-spot" if spot else "tasks"),
                vpc=self.vpc, vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
                spot=spot, maxv_cpus=config.max_vcpus, security_groups=[self.jobs_security_group],
            )
            for spot in ([True, False] if config.spot else [False])
        ]
        self.scheduling_policy = batch.FairshareSchedulingPolicy(
            self, "FairShare", scheduling_policy_name=settings.resource("fair-share"),
            share_decay=cdk.Duration.hours(1), compute_reservation=10,
        )
        self.log_group = logs.LogGroup(self, "TaskLogs", log_group_name=settings.task_log_group,
                                       retention=config.logs_retention, removal_policy=config.removal_policy)
        self.job_role = self._job_role(config, buckets)
        self.execution_role = iam.Role(self, "ExecutionRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
                                       description=f"obsflow {config.stage}: pulls the task image, writes task logs")
        acknowledge(self.execution_role, wildcard_resource("*"), f"Image pulls: {NO_RESOURCE_LEVEL}.")
        image = ecs.ContainerImage.from_asset(str(REPO_ROOT), file="containers/pipeline/Dockerfile",
                                              platform=cdk.aws_ecr_assets.Platform.LINUX_ARM64)
        self.job_queues: dict[str, batch.JobQueue] = {}
        self.job_definitions: dict[str, batch.EcsJobDefinition] = {}
        for resource_class in RESOURCE_CLASSES:
            self.job_queues[resource_class] = batch.JobQueue(
                self, f"Queue{camel(resource_class)}", job_queue_name=settings.job_queue_name(resource_class),
                priority=QUEUE_PRIORITY[resource_class], scheduling_policy=self.scheduling_policy,
                compute_environments=[batch.OrderedComputeEnvironment(compute_environment=env, order=order)
                                      for order, env in enumerate(environments, 1)],
            )
            self.job_definitions[resource_class] = self.job_definition(
                self, camel(resource_class), settings.job_definition_name(resource_class), image, resource_class,
                job_environment(settings, resource_class))

    def job_definition(self, scope: Construct, id: str, name: str, image: ecs.ContainerImage, resource_class: str,
                       environment: dict[str, str], volumes: tuple[batch.EcsVolume, ...] = ()) -> batch.EcsJobDefinition:
        """A job definition of the resource class: its Fargate size, this stage's roles, logs, retries and timeout."""
        vcpu, memory = RESOURCES[resource_class]
        return batch.EcsJobDefinition(
            scope, f"Job{id}", job_definition_name=name,
            container=batch.EcsFargateContainerDefinition(
                scope, f"Container{id}",
                image=image, cpu=float(vcpu), memory=cdk.Size.mebibytes(int(memory)),
                command=DEFAULT_COMMAND,
                environment={**environment, "AWS_DEFAULT_REGION": cdk.Aws.REGION, "OBSFLOW_ACCOUNT_ID": cdk.Aws.ACCOUNT_ID},
                job_role=self.job_role, execution_role=self.execution_role,
                logging=ecs.LogDriver.aws_logs(stream_prefix=resource_class, log_group=self.log_group),
                fargate_cpu_architecture=ecs.CpuArchitecture.ARM64,
                fargate_operating_system_family=ecs.OperatingSystemFamily.LINUX,
                assign_public_ip=False, volumes=list(volumes),
            ),
            retry_attempts=3, retry_strategies=retry_strategies(),
            timeout=cdk.Duration.seconds(JOB_TIMEOUT_S), propagate_tags=True,
        )

    def _network(self, config: StageConfig) -> ec2.Vpc:
        vpc = ec2.Vpc(
            self, "Vpc", max_azs=2, nat_gateways=0,
            subnet_configuration=[ec2.SubnetConfiguration(name="tasks", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED,
                                                          cidr_mask=20)],
            gateway_endpoints={"S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3)},
        )
        for name, service in (("EcrApi", ec2.InterfaceVpcEndpointAwsService.ECR),
                              ("EcrDocker", ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER),
                              ("Logs", ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS)):
            endpoint = vpc.add_interface_endpoint(name, service=service, private_dns_enabled=True)
            acknowledge(endpoint, "AwsSolutions-EC23", "The endpoint admits HTTPS from this VPC's own CIDR only; "
                                                       "cdk-nag cannot read the CIDR, which is a token at synth time.")
        flow_logs = logs.LogGroup(self, "FlowLogs", retention=config.logs_retention, removal_policy=config.removal_policy)
        vpc.add_flow_log("FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs))
        return vpc

    def _job_role(self, config: StageConfig, buckets: dict[str, s3.Bucket]) -> iam.Role:
        """What a task does: read raw frames, read and write its run's documents and products in the work bucket,
        read the products of upstream datasets (master calibrations) in the data bucket."""
        role = iam.Role(self, "JobRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
                        description=f"obsflow {config.stage}: recipe tasks")
        allow_objects(self, role, buckets["ingest"], ["s3:GetObject", "s3:GetObjectVersion"], "raw/")
        allow_objects(self, role, buckets["work"], ["s3:GetObject", "s3:PutObject"])
        allow_objects(self, role, buckets["data"], ["s3:GetObject"])
        role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucket"],
                                               resources=[buckets["ingest"].bucket_arn, buckets["work"].bucket_arn]))
        return role
