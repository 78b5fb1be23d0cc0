"""Create the stack's resources directly (moto cannot deploy the CDK template).

The names, state machine definitions and job settings come from the same code the
CDK app uses, so the local stack and a deployed one agree.
"""

from __future__ import annotations

import io
import json
import zipfile

from obsflow import discovery, tables
from obsflow.recipes import registry
from obsflow.recipes.definitions import RECIPES
from obsflow.recipes.jobs import JOB_TIMEOUT_S, job_container_properties, job_retry_strategy
from obsflow.recipes.model import RESOURCE_CLASSES
from obsflow.runs.platform import StateMachines
from obsflow.settings import FUNCTION_CONCURRENCY, FUNCTIONS, MAX_RECEIVE_COUNT, TASK_OUTPUT_RETENTION_DAYS, TOPICS, Settings

VISIBILITY_TIMEOUT_S = 30
_TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                  "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com",
                                                                            "batch.amazonaws.com"]}}]}


def local_role_name(stage: str) -> str:
    """The one role the local stack's functions, state machines and jobs run as."""
    return f"obsflow-{stage}-local-role"


def _client(session, settings: Settings, service: str):
    return session.client(service, region_name=settings.region, endpoint_url=settings.endpoint_url)


def _ensure_bucket(s3, name: str) -> None:
    """Create the bucket unless it exists (a restarted local stack restores its buckets)."""
    try:
        s3.head_bucket(Bucket=name)
    except s3.exceptions.ClientError:
        s3.create_bucket(Bucket=name)


def create_ingest(settings: Settings, session) -> dict:
    """Ingest bucket, queue + dead-letter queue, S3 -> SQS notifications."""
    s3, sqs = _client(session, settings, "s3"), _client(session, settings, "sqs")
    bucket = settings.ingest_bucket_name
    _ensure_bucket(s3, bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    dlq_url = sqs.create_queue(QueueName=settings.ingest_dlq_name)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(
        QueueName=settings.ingest_queue_name,
        Attributes={
            "VisibilityTimeout": str(VISIBILITY_TIMEOUT_S),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}),
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    # Every key, not just the known prefixes: an unexpected key must be quarantined, not missed.
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{"Id": "ingest", "QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    return {"queue_url": queue_url, "dlq_url": dlq_url}


def create_storage(settings: Settings, session) -> None:
    """Work bucket (task outputs expire) and the versioned data bucket."""
    s3 = _client(session, settings, "s3")
    work, data = settings.bucket_name("work"), settings.bucket_name("data")
    _ensure_bucket(s3, work)
    s3.put_bucket_lifecycle_configuration(Bucket=work, LifecycleConfiguration={"Rules": [
        {"ID": "expire-task-outputs", "Status": "Enabled", "Filter": {"Prefix": "task-outputs/"},
         "Expiration": {"Days": TASK_OUTPUT_RETENTION_DAYS}},
    ]})
    _ensure_bucket(s3, data)
    s3.put_bucket_versioning(Bucket=data, VersioningConfiguration={"Status": "Enabled"})


def _zip_of_handler() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "# the local stack runs functions/<name>/handler.py in-process\n")
    return buffer.getvalue()


def create_processing(settings: Settings, session) -> dict:
    """Topics, Lambda functions, Batch queues and job definitions, one state machine per recipe."""
    iam, sns, awslambda = (_client(session, settings, s) for s in ("iam", "sns", "lambda"))
    batch = _client(session, settings, "batch")
    role_name = local_role_name(settings.stage)
    try:
        role_arn = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(_TRUST))["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        role_arn = iam.get_role(RoleName=role_name)["Role"]["Arn"]
    topics = {topic: sns.create_topic(Name=settings.topic_name(topic))["TopicArn"] for topic in TOPICS}
    functions = {}
    for function in FUNCTIONS:
        name = settings.function_name(function)
        try:
            functions[function] = awslambda.create_function(
                FunctionName=name, Runtime="python3.11", Role=role_arn, Handler="handler.handler",
                Code={"ZipFile": _zip_of_handler()}, Timeout=300, MemorySize=1024,
            )["FunctionArn"]
        except awslambda.exceptions.ResourceConflictException:
            functions[function] = awslambda.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
        if function in FUNCTION_CONCURRENCY:
            awslambda.put_function_concurrency(FunctionName=name,
                                               ReservedConcurrentExecutions=FUNCTION_CONCURRENCY[function])

    environment = batch.create_compute_environment(
        computeEnvironmentName=settings.resource("tasks"), type="UNMANAGED", state="ENABLED", serviceRole=role_arn
    )["computeEnvironmentArn"]
    for priority, resource_class in enumerate(RESOURCE_CLASSES, 1):
        batch.create_job_queue(
            jobQueueName=settings.job_queue_name(resource_class), state="ENABLED", priority=priority,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}],
        )
        batch.register_job_definition(
            jobDefinitionName=settings.job_definition_name(resource_class), type="container",
            containerProperties=job_container_properties(settings, resource_class, image="obsflow-pipeline:local"),
            retryStrategy=job_retry_strategy(), timeout={"attemptDurationSeconds": JOB_TIMEOUT_S},
            platformCapabilities=["EC2"],
        )
    machines = {recipe.key: StateMachines(settings).deploy(recipe) for recipe in RECIPES}
    registry.register(settings)
    return {"topics": topics, "functions": functions, "state_machines": machines}


def create_resources(settings: Settings, session, processing: bool = True) -> dict:
    """Everything the stack holds (idempotent). ``processing=False``: ingest and tables only."""
    urls = create_ingest(settings, session)
    tables.bind(settings)
    tables.create_tables()
    if processing:
        create_storage(settings, session)
        urls.update(create_processing(settings, session))
    discovery.publish(settings, _client(session, settings, "ssm"))  # last: a published stage is complete
    return urls
