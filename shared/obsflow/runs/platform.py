"""The run service's ports on AWS: S3 documents, Step Functions, SNS, SSM, CloudWatch Logs, Lambda.

The local stack serves the same calls (moto on loopback), so these adapters are what runs there too.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import subprocess
import sys

from botocore.exceptions import BotoCoreError, ClientError

from obsflow import aws
from obsflow.errors import NotFound, ObsflowError, TransientError
from obsflow.observability import logger
from obsflow.recipes import registry
from obsflow.recipes.asl import STATE_MACHINE_FUNCTIONS, TASK_COMMAND, build_definition, render, substitutions
from obsflow.recipes.definitions import RULES
from obsflow.recipes.model import RESOURCE_CLASSES, Recipe
from obsflow.recipes.rules import DiscoveryRule
from obsflow.runs import documents
from obsflow.runs.layout import DISCOVERY_RULES_KEY
from obsflow.runs.domain import Run, Ticket
from obsflow.runs.failures import describe
from obsflow.settings import Settings

LOG_LINES = 20


class S3Documents:
    def __init__(self, settings: Settings):
        self.settings, self.s3 = settings, aws.client(settings, "s3")

    def location(self, bucket: str) -> str:
        return self.settings.bucket_name(bucket)

    def put_json(self, bucket: str, key: str, document, tags: dict[str, str] | None = None) -> str:
        return documents.put_json(self.s3, self.location(bucket), key, document, tags)

    def get_json(self, bucket: str, key: str):
        return documents.get_json(self.s3, self.location(bucket), key)

    def get_json_many(self, bucket: str, keys: list[str]) -> list:
        return documents.get_json_many(self.s3, self.location(bucket), keys)

    def exists(self, bucket: str, key: str) -> bool:
        return documents.exists(self.s3, self.location(bucket), key)

    def put_text(self, bucket: str, key: str, text: str, tags: dict[str, str] | None = None) -> None:
        with aws.transient(f"could not write s3://{self.location(bucket)}/{key}"):
            self.s3.put_object(Bucket=self.location(bucket), Key=key, Body=text.encode(), ContentType="text/plain",
                               **documents.tagging(tags))

    def put_bytes(self, bucket: str, key: str, body: bytes, content_type: str) -> None:
        with aws.transient(f"could not write s3://{self.location(bucket)}/{key}"):
            self.s3.put_object(Bucket=self.location(bucket), Key=key, Body=body, ContentType=content_type)

    def get_bytes(self, bucket: str, key: str) -> bytes:
        return documents.get_bytes(self.s3, self.location(bucket), key)

    def copy(self, source_bucket: str, source_key: str, bucket: str, key: str,
             tags: dict[str, str] | None = None) -> None:
        # The copy's tags replace the source's (task outputs carry none that products should keep).
        with aws.transient(f"could not copy {source_key} to s3://{self.location(bucket)}/{key}"):
            self.s3.copy_object(Bucket=self.location(bucket), Key=key,
                                CopySource={"Bucket": self.location(source_bucket), "Key": source_key},
                                **({"TaggingDirective": "REPLACE", **documents.tagging(tags)} if tags else {}))

    def tag_prefix(self, bucket: str, prefix: str, tags: dict[str, str]) -> int:
        with aws.transient(f"could not tag s3://{self.location(bucket)}/{prefix}"):
            return documents.tag_prefix(self.s3, self.location(bucket), prefix, tags)

    def keys(self, bucket: str, prefix: str) -> set[str]:
        with aws.transient(f"could not list s3://{self.location(bucket)}/{prefix}"):
            return documents.keys(self.s3, self.location(bucket), prefix)

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        with aws.transient(f"could not remove s3://{self.location(bucket)}/{prefix}"):
            return documents.delete_prefix(self.s3, self.location(bucket), prefix)


def _console_escape(name: str) -> str:
    return name.replace("/", "$252F")


def _array_index(job: dict) -> int:
    """A child of an array job: its index (its job id is the array job's, then ``:index``)."""
    index = (job.get("arrayProperties") or {}).get("index")
    return int(index) if index is not None else int(job["jobId"].rsplit(":", 1)[-1])


BATCH_JOB_ENDED = ("SUCCEEDED", "FAILED")  # AWS Batch's own job statuses, not obsflow's


class StepFunctionsExecutions:
    def __init__(self, settings: Settings):
        self.settings = settings

    def start(self, run: Run) -> str:
        """Start (or find) the run's execution; its name derives from the run, so this is idempotent."""
        sfn = aws.client(self.settings, "stepfunctions")
        machine = aws.state_machine_arn(self.settings, run.recipe, run.version)
        payload = json.dumps({"run_id": run.run_id, "recipe": run.recipe, "version": run.version,
                              "proposal_id": run.proposal_id})
        try:
            return sfn.start_execution(stateMachineArn=machine, name=run.execution_name, input=payload)["executionArn"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ExecutionAlreadyExists":
                return machine.replace(":stateMachine:", ":execution:") + f":{run.execution_name}"
            raise TransientError(f"could not start run {run.run_id} on {machine}: {exc}") from exc
        except BotoCoreError as exc:
            raise TransientError(f"could not start run {run.run_id} on {machine}: {exc}") from exc

    def links(self, execution_arn: str | None, log_stream: str | None) -> dict:
        log_group = self.settings.task_log_group
        if self.settings.endpoint_url:  # the local stack has no console: name the records instead
            return {"execution": execution_arn, "logs": f"{log_group}/{log_stream}" if log_stream else None}
        region = self.settings.region
        result = {}
        if execution_arn:
            result["execution"] = (
                f"https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"
            )
        if log_stream:
            result["logs"] = (
                f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logsV2:log-groups/log-group/"
                f"{_console_escape(log_group)}/log-events/{_console_escape(log_stream)}"
            )
        return result

    def stop(self, run: Run, reason: str) -> list[str]:
        """StopExecution, then TerminateJob for each of the run's jobs (named ``<run>-<task>``) not yet ended in
        the queues its tasks use: a job that is not running is cancelled, a running one stopped."""
        try:
            if run.execution_arn:
                aws.client(self.settings, "stepfunctions").stop_execution(
                    executionArn=run.execution_arn, error="Obsflow.Cancelled", cause=reason[:32768])
            batch = aws.client(self.settings, "batch")
            terminated = []
            for resource_class in sorted({*run.resource_classes, "default"}):  # older state machines' gather jobs
                listed = batch.list_jobs(jobQueue=self.settings.job_queue_name(resource_class),
                                         filters=[{"name": "JOB_NAME", "values": [f"{run.run_id}-*"]}])
                for job in listed["jobSummaryList"]:
                    if job["status"] not in BATCH_JOB_ENDED:
                        batch.terminate_job(jobId=job["jobId"], reason=reason[:1024])
                        terminated.append(job["jobName"])
            return terminated
        except (ClientError, BotoCoreError) as exc:
            raise TransientError(f"run {run.run_id} is cancelled, but its execution or jobs could not all be stopped "
                                 f"({exc}): `obsflow runs cancel {run.run_id}` again stops what is left") from exc

    def failed_chunk(self, array_job_id: str) -> dict | None:
        batch = aws.client(self.settings, "batch")
        try:
            failed = batch.list_jobs(arrayJobId=array_job_id, jobStatus="FAILED")["jobSummaryList"]
            if not failed:
                return None
            first = min(failed, key=_array_index)
            job = batch.describe_jobs(jobs=[first["jobId"]])["jobs"][0]
        except Exception as exc:  # noqa: BLE001  (the ticket is still filed, naming the array job)
            logger.warning("could not find the failed chunk", extra={"array_job_id": array_job_id, "error": str(exc)})
            return None
        container = job.get("container") or {}
        return {"index": _array_index(job), "exit_code": container.get("exitCode"),
                "log_stream": container.get("logStreamName"), "reason": job.get("statusReason") or "job failed"}

    def log_excerpt(self, log_stream: str | None) -> str | None:
        if not log_stream:
            return None
        try:
            events = aws.client(self.settings, "logs").get_log_events(
                logGroupName=self.settings.task_log_group, logStreamName=log_stream, limit=LOG_LINES,
                startFromHead=False,
            )["events"]
        except Exception as exc:  # noqa: BLE001  (an excerpt is a convenience; the ticket matters)
            return f"(log excerpt unavailable: {exc})"
        return "\n".join(event["message"] for event in events)


class SnsNotifier:
    """PI notifications and tickets on SNS; nudges as asynchronous invocations of the submitter."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def notify_pi(self, proposal_id: str, dataset_id: str, subject: str, message: str) -> None:
        with aws.transient(f"could not notify the PI of dataset {dataset_id}"):
            aws.client(self.settings, "sns").publish(
                TopicArn=aws.topic_arn(self.settings, "pi-notifications"), Subject=subject[:100], Message=message,
                MessageAttributes={"proposal_id": {"DataType": "String", "StringValue": proposal_id},
                                   "dataset_id": {"DataType": "String", "StringValue": dataset_id}},
            )

    def notify_operators(self, ticket: Ticket) -> None:
        with aws.transient(f"could not publish ticket {ticket.ticket_id}"):
            aws.client(self.settings, "sns").publish(
                TopicArn=aws.topic_arn(self.settings, "operators"), Subject=f"obsflow ticket {ticket.ticket_id}"[:100],
                Message=describe(ticket), MessageAttributes={"kind": {"DataType": "String", "StringValue": ticket.kind}},
            )

    def nudge(self, reason: str) -> None:
        try:
            aws.client(self.settings, "lambda").invoke(
                FunctionName=self.settings.function_name("submitter"), InvocationType="Event",
                Payload=json.dumps({"nudge": reason}).encode(),
            )
        except (ClientError, BotoCoreError) as exc:
            logger.warning("could not nudge the submitter; the schedule will pick the work up", extra={"error": str(exc)})


class SsmSubmissionSwitch:
    """Pause and resume automated submission: one SSM parameter per stage.

    While paused, candidates still become READY and are planned; their runs wait in
    READY and start in priority order on resume.
    """

    def __init__(self, settings: Settings):
        self.settings = settings

    @staticmethod
    def parameter_name(settings: Settings) -> str:
        return f"/obsflow/{settings.stage}/submission"

    def is_paused(self) -> bool:
        try:
            value = aws.client(self.settings, "ssm").get_parameter(Name=self.parameter_name(self.settings))
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ParameterNotFound":
                return False
            raise TransientError(f"could not read the submission switch: {exc}") from exc
        return value["Parameter"]["Value"] == "paused"

    def set(self, state: str, reason: str = "") -> None:
        aws.client(self.settings, "ssm").put_parameter(
            Name=self.parameter_name(self.settings), Value=state, Type="String", Overwrite=True,
            Description=f"obsflow automated submission: {state}" + (f" ({reason})" if reason else ""),
        )


class ShippedRecipes:
    """The recipes and discovery rules this release ships (``recipes/shipped/``)."""

    def get(self, name: str, version: str | None = None) -> Recipe:
        return registry.get(name, version)

    def select(self, instrument: str, recipe: str | None = None) -> Recipe:
        return registry.select(instrument, recipe)

    def rules(self) -> tuple[DiscoveryRule, ...]:
        return RULES

    def one_pass(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()


# Within a submitter pass, what the registry answered, by question: a pass plans hundreds of candidates of a few
# recipes. Per context, so that a pass on one thread never answers another's.
_PASS_ANSWERS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("recipes_pass_answers", default=None)


class RegisteredRecipes:
    """The recipes registered in the stage's recipes table (shipped or registered as data), with the
    parameter values set as data; the discovery rules registered as data (`obsflow rules register`: a document in
    the work bucket), else the shipped ones."""

    def __init__(self, documents: "S3Documents | None" = None):
        self.documents = documents

    @contextlib.contextmanager
    def one_pass(self):
        """Within it, each recipe version and the rules are read once; a recipe registered meanwhile is seen by
        the next pass."""
        token = _PASS_ANSWERS.set({})
        try:
            yield
        finally:
            _PASS_ANSWERS.reset(token)

    @staticmethod
    def _answer(question: tuple, read):
        answers = _PASS_ANSWERS.get()
        if answers is None:
            return read()
        if question not in answers:
            answers[question] = read()
        return answers[question]

    def get(self, name: str, version: str | None = None) -> Recipe:
        def read() -> Recipe:
            with aws.transient(f"could not read recipe {name}"):
                return registry.registered(name, version)
        return self._answer(("recipe", name, version), read)

    def select(self, instrument: str, recipe: str | None = None) -> Recipe:
        if not recipe:
            raise NotFound(f"no recipe named for instrument {instrument!r}; discovery rules choose one otherwise")
        return self.get(recipe)

    def rules(self) -> tuple[DiscoveryRule, ...]:
        def read() -> tuple[DiscoveryRule, ...]:
            registered = self.registered_rules()
            return RULES if registered is None else tuple(DiscoveryRule.model_validate(r) for r in registered["rules"])
        return self._answer(("rules",), read)

    def registered_rules(self) -> dict | None:
        if self.documents is None:
            return None
        try:
            return self.documents.get_json("work", DISCOVERY_RULES_KEY)
        except NotFound:
            return None

    def register_rules(self, rules: tuple[DiscoveryRule, ...], by: str, at: str) -> None:
        """Put ``rules`` in force instead of the shipped ones; every recipe they name must be registered."""
        for rule in rules:
            self.get(rule.recipe)  # NotFound names the recipe and what to do
        self.documents.put_json("work", DISCOVERY_RULES_KEY, {
            "registered_by": by, "registered_at": at, "rules": [r.model_dump(mode="json") for r in rules]})

    def shipped_rules_again(self) -> None:
        self.documents.delete_prefix("work", DISCOVERY_RULES_KEY)


class BatchJobDefinitions:
    """Developer task images on AWS Batch: a revision of ``<the stage's job definition>-dev`` per resource class,
    the same as the stage's but for the image (the production definitions are never touched)."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def register_image(self, image: str, resource_classes: list[str]) -> dict[str, str]:
        registered = {}
        for resource_class in resource_classes:
            name = self.settings.job_definition_name(resource_class)
            registered[resource_class] = self._register_like(name, f"{name}-dev", image)
        return registered

    def for_pipeline(self, package: str, version: str) -> dict[str, str]:
        """The job definitions of a hosted pipeline version, by resource class. A deployed stage's come from its
        CDK app (with the pipeline's task image, EFS scratch and services); the local stack registers them here
        as copies of its own (its jobs find the pipeline's venv by the recipe)."""
        batch = aws.client(self.settings, "batch")
        names = {rc: self.settings.pipeline_job_definition_name(package, version, rc) for rc in RESOURCE_CLASSES}
        for resource_class, name in names.items():
            if batch.describe_job_definitions(jobDefinitionName=name, status="ACTIVE")["jobDefinitions"]:
                continue
            if not self.settings.local_endpoint:
                raise NotFound(f"stage '{self.settings.stage}' has no job definition {name}: its CDK app builds a "
                               f"task image for {package}=={version} only when deployed with "
                               f"`-c pipelines=...,{package}=={version}` (cdk.json lists the stage's pipelines)")
            self._register_like(self.settings.job_definition_name(resource_class), name,
                                f"obsflow-pipeline-{package}-{version}:local")
        return names

    def _register_like(self, base_name: str, name: str, image: str) -> str:
        """A revision of ``name``: the stage's job definition ``base_name`` with another image; 'name:revision'."""
        batch = aws.client(self.settings, "batch")
        found = batch.describe_job_definitions(jobDefinitionName=base_name, status="ACTIVE")["jobDefinitions"]
        if not found:
            raise NotFound(f"the stage has no job definition {base_name} to base the task image {image} on")
        base = max(found, key=lambda d: d["revision"])
        options = {k: base[k] for k in ("retryStrategy", "timeout", "platformCapabilities", "propagateTags") if k in base}
        response = batch.register_job_definition(
            jobDefinitionName=name, type=base["type"], containerProperties={**base["containerProperties"], "image": image},
            **options)
        return f"{response['jobDefinitionName']}:{response['revision']}"


class StateMachines:
    """Creates the state machine of a recipe version registered as data: the same builder and resources as the
    deployed ones, so a new version runs without a release."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def substitutions(self) -> dict[str, str]:
        settings = self.settings
        return substitutions(
            {function: aws.arn(settings, "lambda", f"function:{settings.function_name(function)}")
             for function in STATE_MACHINE_FUNCTIONS},
            aws.topic_arn(settings, "pi-notifications"),
            {rc: settings.job_queue_name(rc) for rc in RESOURCE_CLASSES},
        )

    def deploy(self, recipe: Recipe) -> str:
        """Create (or update) the recipe version's state machine; its ARN."""
        if not self.settings.state_machine_role_arn:
            raise ObsflowError("OBSFLOW_STATE_MACHINE_ROLE_ARN is not set: the state machines' role is unknown here")
        sfn = aws.client(self.settings, "stepfunctions")
        definition = render(build_definition(recipe), self.substitutions())
        name = self.settings.state_machine_name(recipe.name, recipe.version)
        arn = aws.state_machine_arn(self.settings, recipe.name, recipe.version)
        options = {"tracingConfiguration": {"enabled": True}}
        if self.settings.state_machine_log_group_arn:
            options["loggingConfiguration"] = {"level": "ALL", "includeExecutionData": False, "destinations": [
                {"cloudWatchLogsLogGroup": {"logGroupArn": self.settings.state_machine_log_group_arn}}]}
        with aws.transient(f"could not create the state machine {name}"):
            try:
                sfn.update_state_machine(stateMachineArn=arn, definition=definition,
                                         roleArn=self.settings.state_machine_role_arn, **options)
            except sfn.exceptions.StateMachineDoesNotExist:
                arn = sfn.create_state_machine(name=name, definition=definition, type="STANDARD",
                                               roleArn=self.settings.state_machine_role_arn, **options)["stateMachineArn"]
        return arn


class SubprocessTaskRunner:
    """A task run by hand: the task entrypoint as a process of this interpreter, against the stage's buckets (and,
    for a hosted pipeline's task, its services and scratch), as the stage's discovery document names them."""

    def __init__(self, settings: Settings | None = None):
        self.settings = settings

    def run(self, recipe: Recipe, task: str, run_id: str, operator: str, note: str) -> tuple[int, str, str]:
        # -P: the current directory is not on the task's import path (an `obsflow/` folder there would shadow it)
        command = [sys.executable, "-P", *TASK_COMMAND[1:], recipe.name, task, "--run-id", run_id,
                   "--manual", "--operator", operator, "--note", note]
        environment = {**os.environ, **(self.settings.environment() if self.settings else {})}
        completed = subprocess.run(command, capture_output=True, text=True, check=False, env=environment)
        return completed.returncode, completed.stdout, completed.stderr


