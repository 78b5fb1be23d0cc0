"""The AWS quotas a day of obsflow could reach, with where each is stated and when that was read, and obsflow's own
ceiling on Batch.

Defaults for a new account in us-east-1; an adjustable one can be raised through Service Quotas. The capacity
model (``obsflow.capacity``) compares a day's demand with each.
"""

from __future__ import annotations

from dataclasses import dataclass

CHECKED = "2026-12-05"  # when the sources below were read


@dataclass(frozen=True)
class Quota:
    key: str
    name: str
    limit: float
    unit: str
    adjustable: bool
    source: str


QUOTAS = (
    Quota("lambda_concurrency", "Lambda concurrent executions (per Region)", 1_000, "executions at once", True,
          "https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html"),
    Quota("dynamodb_partition_write", "DynamoDB writes to one partition", 1_000, "write units/s", False,
          "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html"),
    Quota("dynamodb_partition_read", "DynamoDB reads from one partition", 3_000, "read units/s", False,
          "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html"),
    Quota("dynamodb_table_write", "DynamoDB on-demand table write throughput", 40_000, "write units/s", True,
          "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html"),
    Quota("sfn_start_execution", "Step Functions StartExecution, standard (bucket 1,300, refill; us-east-1)", 300,
          "starts/s", True, "https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html"),
    Quota("batch_submitted_jobs", "AWS Batch jobs in SUBMITTED state", 1_000_000, "jobs", False,
          "https://docs.aws.amazon.com/batch/latest/userguide/service_limits.html"),
    Quota("batch_submit_rate", "AWS Batch SubmitJob (per account)", 50, "submits/s", False,
          "https://docs.aws.amazon.com/batch/latest/userguide/service_limits.html"),
    Quota("fargate_launch_burst", "Fargate task launches, burst (bucket of 100, refilled 20/s)", 100,
          "tasks at once", True, "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/throttling.html"),
    Quota("fargate_launch_rate", "Fargate task launches, sustained", 20, "tasks/s", True,
          "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/throttling.html"),
    Quota("s3_prefix_put", "S3 PUT/COPY/POST/DELETE per partitioned prefix", 3_500, "requests/s", False,
          "https://docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance.html"),
    Quota("s3_prefix_get", "S3 GET/HEAD per partitioned prefix", 5_500, "requests/s", False,
          "https://docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance.html"),
)

# Not an AWS quota: the most vCPUs the stage's Fargate compute environment runs at once (infra/obsflow_infra/config.py:
# prod 256, dev 16). The account's "Fargate On-Demand vCPU resource count" (Service Quotas L-3032A538, set per
# account) must be at least as much.
PROD_COMPUTE_VCPUS = 256


def compute_environment(max_vcpus: float) -> Quota:
    return Quota("compute_environment_vcpus", "obsflow's compute environment maxvCpus (and the account's Fargate "
                 "vCPU quota)", max_vcpus, "vCPUs at once", True,
                 "infra/obsflow_infra/config.py (max_vcpus); https://docs.aws.amazon.com/AmazonECS/latest/developerguide/"
                 "service-quotas.html")
