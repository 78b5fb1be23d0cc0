"""Settings as one validated model, read from the environment once."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from obsflow.ids import ID_RULE, is_id
from obsflow.roles import check_role
from obsflow.windows import Site, Windows, check_window

TABLES = (
    "frames", "observing-programs", "manifests", "candidates", "quarantine",
    "recipes", "parameter-values", "recipe-instances", "catalogue-edges", "recipe-measurements", "runs", "run-counts",
    "capacity", "tickets", "datasets", "qc-values", "campaigns", "tags", "proposals",
)
BUCKETS = ("ingest", "work", "data")
TOPICS = ("pi-notifications", "operators")
# The same for the local stack and the deployed one:
MAX_RECEIVE_COUNT = 3  # deliveries of an ingest notification before it goes to the dead-letter queue
TASK_OUTPUT_RETENTION_DAYS = 14  # task outputs stay reusable this long (then expire), products live on in datasets
# Lambda functions: functions/<name with '_'>/handler.py, deployed as obsflow-<stage>-<name>.
FUNCTIONS = ("ingest", "submitter", "start-run", "catalog", "finish-run", "fail-run", "open-ticket", "backstop",
             "register-recipes", "release", "campaign-schedule")
# (timeout in seconds, memory in MiB) per function: what the stack deploys (infra) and what a run's cost counts.
FUNCTION_SIZES = {
    "ingest": (60, 1024),  # header parsing of 10 frames per batch
    "submitter": (120, 512),
    "start-run": (30, 512),
    "catalog": (300, 1024),  # copies a run's products into the data bucket
    "finish-run": (120, 512),
    "fail-run": (30, 512),
    "open-ticket": (60, 512),
    "backstop": (300, 512),
    "register-recipes": (60, 512),
    "release": (900, 512),  # re-tags every object of each dataset released
    "campaign-schedule": (300, 1024),  # evaluates each due campaign's selection
}
# Reserved concurrency: one submitter pass at a time. Passes side by side would each plan the same READY candidates
# (safely, but a nudge per candidate ready made each candidate planned several times over); a nudge that comes
# during a pass waits in Lambda's queue for the next.
FUNCTION_CONCURRENCY = {"submitter": 1}


class Prices(BaseModel):
    """What each thing a run uses costs, in USD: AWS's public on-demand list prices for ``region``, as published on
    ``as_of``: Fargate and Lambda on Arm (Graviton: the stack runs its jobs and functions on ARM64), DynamoDB
    on-demand, S3 Standard, SQS standard queues, SNS standard topics, Step Functions standard workflows; no free
    tier. Another region or a negotiated rate: set ``OBSFLOW_PRICES`` to a JSON object with the values that differ
    (and its ``region`` and ``as_of``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    region: str = "us-east-1"
    as_of: str = "2026-12-05"  # when these were written down (from AWS's published list prices)
    fargate_vcpu_hour: float = Field(default=0.03238, ge=0)
    fargate_gib_hour: float = Field(default=0.00356, ge=0)
    lambda_request: float = Field(default=0.20 / 1e6, ge=0)
    lambda_gb_second: float = Field(default=0.0000133334, ge=0)
    state_transition: float = Field(default=0.025 / 1e3, ge=0)
    dynamodb_read_unit: float = Field(default=0.125 / 1e6, ge=0)  # an on-demand read request unit
    dynamodb_write_unit: float = Field(default=0.625 / 1e6, ge=0)  # an on-demand write request unit
    s3_put_request: float = Field(default=0.005 / 1e3, ge=0)  # PUT, COPY, POST and LIST
    s3_get_request: float = Field(default=0.0004 / 1e3, ge=0)  # GET, HEAD and the rest (DELETE is free)
    s3_gib_month: float = Field(default=0.023, ge=0)
    sqs_request: float = Field(default=0.40 / 1e6, ge=0)
    sns_request: float = Field(default=0.50 / 1e6, ge=0)  # a publish

    @property
    def source(self) -> str:
        return f"AWS list prices, {self.region}, as of {self.as_of}"


class SiteSettings(BaseModel):
    """Where the telescope is: processing windows (obsflow.windows) follow its sky and its clock."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(default="DKIST, Haleakala", min_length=1, max_length=80)
    latitude: float = Field(default=20.7067, ge=-66, le=66, allow_inf_nan=False)  # below the polar circles
    longitude: float = Field(default=-156.2569, ge=-180, le=180, allow_inf_nan=False)
    timezone: str = "Pacific/Honolulu"

    @field_validator("timezone")
    @classmethod
    def _a_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is no IANA time zone (like Pacific/Honolulu)") from exc
        return value

    def site(self) -> Site:
        return Site(self.name, self.latitude, self.longitude, self.timezone)


# Names a setting must match (each becomes part of resource names or endpoints), and how to say so.
NAME_RULES = {
    "stage": (r"[a-z][a-z0-9-]{0,15}", "a stage name (a lowercase letter, then up to 15 of a-z, 0-9 and -)"),
    "region": (r"[a-z]{2}(-[a-z]+)+-\d{1,2}", "an AWS region name (like us-east-1)"),
}


class Settings(BaseSettings):
    """Where obsflow's resources are and how ingest behaves.

    Resource names derive from ``stage`` unless set explicitly, so the local stack,
    the deployed stack and the CLI agree without extra configuration.
    """

    model_config = SettingsConfigDict(env_prefix="OBSFLOW_", frozen=True, populate_by_name=True)

    stage: str = "local"
    region: str = Field(default="us-east-1", validation_alias="AWS_DEFAULT_REGION")
    endpoint_url: str | None = Field(default=None, validation_alias="AWS_ENDPOINT_URL")
    # Bucket names by logical bucket, where they differ from obsflow-<stage>-<bucket>: S3
    # names are global, so a deployed stage adds its account and region (JSON in OBSFLOW_BUCKETS).
    buckets: dict[str, str] = Field(default_factory=dict)
    # Bytes read from the start of a raw frame in one ranged GET: 11 FITS blocks
    # hold a SPEC-0122 header (~17 KiB) with room to spare and stay under 32 KiB.
    header_read_bytes: int = Field(default=11 * 2880, ge=2880)
    # Headers of one batch read side by side (S3 latency, not CPU, bounds ingest).
    header_read_concurrency: int = Field(default=10, ge=1, le=64)
    # A header that has not ended after this many bytes is rejected.
    header_max_bytes: int = Field(default=100 * 2880, ge=2880)
    # Concurrent runs per resource class (a run holds a slot in each class its tasks use).
    capacity_default: int = Field(default=4, ge=1)
    # Seconds a submitter pass plans before it stops and nudges the next pass for the rest: within the function's
    # timeout, however large a backlog (half of it discovering READY candidates at most, so that neither starves).
    submit_pass_budget_s: float = Field(default=FUNCTION_SIZES["submitter"][0] / 2, gt=0, le=FUNCTION_SIZES["submitter"][0])
    capacity_high_memory: int = Field(default=2, ge=1)
    capacity_multi_core: int = Field(default=2, ge=1)
    # A run failed of its infrastructure (a task killed, an AWS error: expected not to persist) is redriven by obsflow
    # this many times, its ticket saying so, before it waits for an operator (its instance ERROR only then).
    auto_redrives: int = Field(default=1, ge=0, le=10)
    # A candidate still incomplete this many days after its first frame is processed anyway.
    backstop_days: float = Field(default=13, gt=0)
    # Days a proposal's data stay private after observation when its document names neither a release date
    # nor embargo days, or when no document has come (obsflow.embargo).
    default_embargo_days: int = Field(default=365, ge=0, le=36500)
    # Observatory calibration programs: proposals whose calibrations may serve any proposal's data while under
    # embargo (OBSFLOW_CALIBRATION_PROGRAMS='["pid_cal"]'); any other proposal's, only once released.
    calibration_programs: tuple[str, ...] = ()
    # Secrets Manager secret of the Jira Service Management adapter (unset: no Jira).
    jira_secret_id: str | None = None
    account_id: str | None = Field(default=None, pattern=r"^\d{12}$")
    # What the state machine of a recipe version registered as data runs as and logs to (RegisterRecipes).
    state_machine_role_arn: str | None = None
    state_machine_log_group_arn: str | None = None
    prices: Prices = Prices()
    # The image pull a Fargate job is billed for (from the pull's start), where the job cannot read its own from the
    # task metadata: a model, the task image's compressed size over an effective pull rate (download and unpack).
    # The task image (containers/pipeline) installs ~520 MB, ~200 MB compressed.
    task_image_mb: float = Field(default=200, gt=0, allow_inf_nan=False)
    image_pull_mb_per_s: float = Field(default=10, gt=0, allow_inf_nan=False)
    # Hosted pipelines (obsflow.pipelines): where their environments are (a venv each, locally; the task image's
    # on AWS), the scratch their tasks share (a directory locally, EFS on AWS) and where the services they call
    # answer (host:port of "metadata-store" and "scratch-inventory", Redis), as the local stack or the stage sets.
    pipelines_dir: str | None = None
    scratch_dir: str | None = None
    pipeline_services: dict[str, str] = Field(default_factory=dict)
    # Processing windows, by recipe name or resource class: any, night, day or local hours HH:MM-HH:MM at the site
    # (OBSFLOW_WINDOWS='{"vbi-l1": "night"}'; unset: anything starts any time). OBSFLOW_SITE='{"name": ...,
    # "latitude": ..., "longitude": ..., "timezone": ...}' places the site (default DKIST's).
    windows: dict[str, str] = Field(default_factory=dict)
    site: SiteSettings = SiteSettings()
    # Fork each node from a warm server of its environment (the local stack) instead of starting it cold.
    pipeline_node_server: bool = False
    # A campaign estimated above either size waits, once started, for `obsflow campaigns approve` by the
    # data-quality or operator role before any of its runs starts. The stage's values rule (the discovery
    # document records them), not the caller's environment.
    campaign_approval_cpu_hours: float = Field(default=100, ge=0, allow_inf_nan=False)
    campaign_approval_output_bytes: int = Field(default=500 * 10**9, ge=0)
    # Who the command acts as (obsflow.roles): OBSFLOW_ROLE, and for the pi-read role its proposal. Unset: the
    # single operator of a local stack, who may do everything.
    role: str | None = None
    proposal: str | None = None

    @field_validator("stage", "region")
    @classmethod
    def _a_name(cls, value: str, info: ValidationInfo) -> str:
        pattern, what = NAME_RULES[info.field_name]
        if not re.fullmatch(pattern, value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    @field_validator("windows")
    @classmethod
    def _windows(cls, value: dict[str, str]) -> dict[str, str]:
        for key, spec in value.items():
            if not re.fullmatch(r"[a-z][a-z0-9-]{0,63}", key):
                raise ValueError(f"{key!r} is no recipe name or resource class")
            check_window(spec)
        return value

    def processing_windows(self) -> Windows:
        return Windows(self.site.site(), self.windows)

    @field_validator("endpoint_url")
    @classmethod
    def _an_http_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parsed = urlsplit(value)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL (the local stack's is http://127.0.0.1:4566)")
        try:
            parsed.port
        except ValueError as exc:
            raise ValueError(f"{value!r} has no valid port") from exc
        return value.rstrip("/")

    @field_validator("role")
    @classmethod
    def _a_role(cls, value: str | None) -> str | None:
        return check_role(value)

    @field_validator("proposal")
    @classmethod
    def _a_proposal(cls, value: str | None) -> str | None:
        if value and not is_id(value):
            raise ValueError(f"{value[:40]!r} is not a proposal id ({ID_RULE})")
        return value or None

    @property
    def local_endpoint(self) -> bool:
        """The endpoint is on this machine (the local stack), where any credentials will do."""
        return bool(self.endpoint_url) and urlsplit(self.endpoint_url).hostname in ("127.0.0.1", "localhost", "::1")

    @property
    def modelled_pull_s(self) -> float:
        """Seconds of a Fargate job's image pull, as modelled (``task_image_mb`` at ``image_pull_mb_per_s``)."""
        return self.task_image_mb / self.image_pull_mb_per_s

    @field_validator("buckets")
    @classmethod
    def _buckets_are_known(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = set(value) - set(BUCKETS)
        if unknown:
            raise ValueError(f"unknown bucket(s) {', '.join(sorted(unknown))}; known: {', '.join(BUCKETS)}")
        return value

    def resource(self, name: str) -> str:
        return f"obsflow-{self.stage}-{name}"

    @property
    def ingest_bucket_name(self) -> str:
        return self.bucket_name("ingest")

    @property
    def ingest_queue_name(self) -> str:
        return self.resource("ingest")

    @property
    def ingest_dlq_name(self) -> str:
        return self.resource("ingest-dlq")

    @property
    def task_log_group(self) -> str:
        """Where the Batch jobs of every recipe task log."""
        return f"/obsflow/{self.stage}/tasks"

    def bucket_name(self, bucket: str) -> str:
        return self.buckets.get(bucket) or self._known(bucket, BUCKETS, "bucket")

    def topic_name(self, topic: str) -> str:
        return self._known(topic, TOPICS, "topic")

    def function_name(self, function: str) -> str:
        return self._known(function, FUNCTIONS, "function")

    def capacity(self, resource_class: str) -> int:
        return getattr(self, "capacity_" + resource_class.replace("-", "_"))

    def job_queue_name(self, resource_class: str) -> str:
        return self.resource(f"tasks-{resource_class}")

    def job_definition_name(self, resource_class: str) -> str:
        return self.resource(f"task-{resource_class}")

    def pipeline_job_definition_name(self, package: str, version: str, resource_class: str) -> str:
        """A hosted pipeline version's job definition: its own task image (on AWS), one per resource class."""
        return self.resource(f"task-{package}-{version.replace('.', '-')}-{resource_class}")

    def state_machine_name(self, recipe: str, version: str) -> str:
        return self.resource(f"{recipe}-v{version.replace('.', '-')}")

    def _known(self, name: str, known: tuple[str, ...], kind: str) -> str:
        if name not in known:
            raise KeyError(f"unknown {kind} {name!r}; known: {', '.join(known)}")
        return self.resource(name)

    def table_name(self, table: str) -> str:
        return self._known(table, TABLES, "table")

    def environment(self) -> dict[str, str]:
        """The variables that give another process (a Lambda, a Batch job) these settings."""
        variables = {"OBSFLOW_STAGE": self.stage, "OBSFLOW_DEFAULT_EMBARGO_DAYS": str(self.default_embargo_days)}
        if self.buckets:
            variables["OBSFLOW_BUCKETS"] = json.dumps(self.buckets, sort_keys=True)
        if self.account_id:
            variables["OBSFLOW_ACCOUNT_ID"] = self.account_id
        if self.jira_secret_id:
            variables["OBSFLOW_JIRA_SECRET_ID"] = self.jira_secret_id
        for name in ("state_machine_role_arn", "state_machine_log_group_arn", "pipelines_dir", "scratch_dir"):
            if getattr(self, name):
                variables[f"OBSFLOW_{name.upper()}"] = getattr(self, name)
        if self.pipeline_services:
            variables["OBSFLOW_PIPELINE_SERVICES"] = json.dumps(self.pipeline_services, sort_keys=True)
        if self.calibration_programs:
            variables["OBSFLOW_CALIBRATION_PROGRAMS"] = json.dumps(list(self.calibration_programs))
        if self.windows:
            variables["OBSFLOW_WINDOWS"] = json.dumps(self.windows, sort_keys=True)
        if self.site != SiteSettings():
            variables["OBSFLOW_SITE"] = self.site.model_dump_json()
        if self.prices != Prices():  # the functions that record a run's cost price it as the stage says
            variables["OBSFLOW_PRICES"] = self.prices.model_dump_json()
        for name in ("task_image_mb", "image_pull_mb_per_s"):
            if getattr(self, name) != type(self).model_fields[name].default:
                variables[f"OBSFLOW_{name.upper()}"] = str(getattr(self, name))
        return variables

    def describe(self) -> dict:
        return {
            "stage": self.stage,
            "region": self.region,
            "endpoint_url": self.endpoint_url,
            "buckets": {bucket: self.bucket_name(bucket) for bucket in BUCKETS},
            "queues": {"ingest": self.ingest_queue_name, "ingest_dlq": self.ingest_dlq_name},
            "tables": {table: self.table_name(table) for table in TABLES},
            "topics": {topic: self.topic_name(topic) for topic in TOPICS},
            "functions": {function: self.function_name(function) for function in FUNCTIONS},
            "task_log_group": self.task_log_group,
            "capacity": {rc: self.capacity(rc) for rc in ("default", "high-memory", "multi-core")},
            "default_embargo_days": self.default_embargo_days,
            "campaign_approval": {"cpu_hours": self.campaign_approval_cpu_hours,
                                  "output_bytes": self.campaign_approval_output_bytes},
            # where a hosted pipeline's task finds its environment, scratch and services (obsflow.pipelines)
            "pipelines": {"environments": self.pipelines_dir, "scratch_dir": self.scratch_dir,
                          "services": self.pipeline_services},
        }


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
