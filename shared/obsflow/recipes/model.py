"""Recipes as data: a named, versioned DAG of tasks with parameters and a run configuration.

A definition that cannot run (a cycle, an unknown upstream, a default outside its
valid values) fails validation with a message that names the culprit.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

RESOURCE_CLASSES = ("default", "high-memory", "multi-core")
ResourceClass = Literal["default", "high-memory", "multi-core"]
IDENTIFIER = r"^[a-z][a-z0-9_]{0,47}$"
# A parameter or option: obsflow's are identifiers; a hosted pipeline's are its own (DKIST's ViSP reads
# visp_pac_remove_linear_I_trend and a 58-character name).
PARAMETER_NAME = r"^[A-Za-z][A-Za-z0-9_]{0,99}$"

_TYPES: dict[str, type | tuple[type, ...]] = {"int": int, "float": (int, float), "str": str, "bool": bool,
                                               "json": (dict, list)}


CHUNK_OPTION = "chunk_frames"
HOST_TASKS = "obsflow_tasks.pipeline:"  # the tasks that host a pipeline's
TASK_ENTRYPOINT = r"^obsflow_tasks(\.[a-z_][a-z0-9_]*)*:[A-Za-z_]\w*$"
# MAJOR.MINOR.PATCH without leading zeros: 01.0.0 would be a second name for 1.0.0 (and sort as "latest")
SEMANTIC_VERSION = r"^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})$"
# A recipe is one DynamoDB item (400 KB) and one state machine: far more than any workflow has (ViSP's 21)
MAX_TASKS, MAX_VALUES = 300, 200


def _semantic_version(value: str) -> str:
    if not re.fullmatch(SEMANTIC_VERSION, value):
        raise ValueError(f"version {value!r} is not MAJOR.MINOR.PATCH without leading zeros (e.g. 1.0.0)")
    return value


Version = Annotated[str, AfterValidator(_semantic_version)]

MAX_CHUNKS = 10_000  # the largest AWS Batch array job


def chunk_count(frames: int, chunk_frames: int) -> int:
    """How many chunks a data-parallel task's frames make: ``chunk_frames`` each, at most MAX_CHUNKS (then more
    frames per chunk), at least one."""
    return max(1, min(MAX_CHUNKS, -(-frames // max(1, chunk_frames))))


def chunk_bounds(frames: int, index: int, count: int) -> tuple[int, int]:
    """The frames [start, stop) of chunk ``index`` of ``count``: consecutive, their sizes differing by one at most."""
    if not 0 <= index < count:
        raise ValueError(f"chunk {index} of {count} does not exist")
    size, extra = divmod(frames, count)
    start = index * size + min(index, extra)
    return start, start + size + (index < extra)


def _finite_bound(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError(f"a bound is a finite number, not {value!r}")
    return value


FiniteBound = Annotated[float | None, AfterValidator(_finite_bound)]


class RecipeError(ValueError):
    """A recipe definition, or a value given to one, is invalid."""


class Option(BaseModel):
    """A named value with its valid values: a type and a range or an enumeration."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=PARAMETER_NAME)
    type: Literal["int", "float", "str", "bool", "json"]  # json: an object or array (a hosted pipeline's)
    description: str = ""
    minimum: FiniteBound = None
    maximum: FiniteBound = None
    choices: tuple[Any, ...] | None = None
    default: Any = None

    def check(self, value: Any) -> Any:
        """``value`` if it is valid, converted from text where needed; else RecipeError."""
        value = self._coerce(value)
        expected = _TYPES[self.type]
        if not isinstance(value, expected) or (self.type != "bool" and isinstance(value, bool)):
            raise RecipeError(f"{self.name}: {value!r} is not of type {self.type}")
        if not _finite(value):  # NaN passes every comparison below, and infinities are no measurement
            raise RecipeError(f"{self.name}: {value!r} is not finite: NaN and infinities are refused")
        if self.minimum is not None and value < self.minimum:
            raise RecipeError(f"{self.name}: {value!r} is below the minimum {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise RecipeError(f"{self.name}: {value!r} is above the maximum {self.maximum}")
        if self.choices is not None and value not in self.choices:
            raise RecipeError(f"{self.name}: {value!r} is not one of {list(self.choices)}")
        return value

    def _coerce(self, value: Any) -> Any:
        if not isinstance(value, str) or self.type == "str":
            return value
        try:
            if self.type == "bool":
                return {"true": True, "false": False}[value.lower()]
            if self.type == "json":
                return json.loads(value)
            return int(value) if self.type == "int" else float(value)
        except (KeyError, ValueError):  # json.JSONDecodeError is a ValueError
            raise RecipeError(f"{self.name}: {value!r} is not of type {self.type}") from None


def _finite(value: Any) -> bool:
    """No NaN or infinity anywhere in ``value`` (a number, or a json option's object or array)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    return True


class DatedValue(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    effective_from: dt.date
    value: Any


class Parameter(Option):
    """A science parameter whose value depends on the observation date."""

    values: tuple[DatedValue, ...] = Field(min_length=1)

    @field_validator("values")
    @classmethod
    def _sorted(cls, values: tuple[DatedValue, ...]) -> tuple[DatedValue, ...]:
        return tuple(sorted(values, key=lambda v: v.effective_from))

    def effective(self, on: dt.date) -> Any:
        applicable = [v for v in self.values if v.effective_from <= on]
        if not applicable:
            raise RecipeError(
                f"parameter {self.name} has no value effective on {on.isoformat()} "
                f"(the first is effective from {self.values[0].effective_from.isoformat()})"
            )
        return applicable[-1].value


class TaskSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=IDENTIFIER)
    entrypoint: str = Field(description="module:Class of the task, in obsflow_tasks")
    upstreams: tuple[str, ...] = ()
    resource_class: ResourceClass = "default"
    description: str = ""
    # Incremental re-execution. A task that declares ``reuse`` says its outputs depend only on its inputs,
    # its code and the parameters/options in ``uses``: another run whose digest for it is the same reuses
    # them instead of running it. Undeclared, it re-runs in every run (its outputs may name the run).
    reuse: bool = False
    uses: tuple[str, ...] | None = Field(default=None, description="parameters and options it reads; None: all")
    # Data-parallel: the task works on the observe frames one by one, so it runs as one job per chunk of them
    # (a Batch array job; the run option ``chunk_frames`` sets the chunk size), and the last chunk to finish records
    # the chunks' outputs as the task's. Run by hand, it is one job over every frame.
    data_parallel: bool = False
    # A node of a hosted pipeline's workflow: the pipeline's own task class (module:Class), run unchanged in the
    # pipeline's environment by ``entrypoint`` (obsflow's host task); its retries are the node's own.
    pipeline_task: str | None = Field(default=None, pattern=r"^[\w.]+:\w+$")
    retries: int = Field(default=0, ge=0, le=10)
    retry_delay_s: int = Field(default=60, ge=1, le=3600)

    @field_validator("entrypoint")
    @classmethod
    def _in_the_task_package(cls, value: str) -> str:
        # A recipe is data, and data must not name code elsewhere (os:system, or a module imported to check it)
        if not re.fullmatch(TASK_ENTRYPOINT, value):
            raise ValueError(f"{value!r} is not a task of obsflow's task package (obsflow_tasks.<module>:<Class>)")
        return value


class PipelineSource(BaseModel):
    """Where a hosted pipeline's recipe comes from: a workflow of an instrument team's published package."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    package: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    version: Version
    workflow: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$", description="the workflow's own name")
    module: str = Field(pattern=r"^[\w.]+$", description="the module that defines the workflow")
    source_url: str = ""


class QcGate(BaseModel):
    """A threshold on one QC value of a calibration recipe's datasets: passed when the value is measured, finite,
    and within [min, max]. A master calibration whose every gate passes is certified when catalogued."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: str = Field(pattern=PARAMETER_NAME, description="a QC value of the dataset's quality JSON")
    min: FiniteBound = None
    max: FiniteBound = None
    description: str = ""

    @model_validator(mode="after")
    def _bounded(self) -> "QcGate":
        if self.min is None and self.max is None:
            raise ValueError(f"gate {self.metric}: give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"gate {self.metric}: min {self.min} is above max {self.max}")
        return self

    def evaluate(self, values: dict[str, float]) -> dict:
        """The gate, the measured value and whether it passed, with why not (what the certification records)."""
        value = values.get(self.metric)
        if value is None or not math.isfinite(value):
            why = f"{self.metric} not measured" if value is None else f"{self.metric} is {value}"
        elif self.min is not None and value < self.min:
            why = f"{self.metric} {value:g} < {self.min:g}"
        elif self.max is not None and value > self.max:
            why = f"{self.metric} {value:g} > {self.max:g}"
        else:
            why = None
        return {"metric": self.metric, "min": self.min, "max": self.max, "value": value, "passed": why is None,
                "failure": why}

    def describe(self) -> str:
        bounds = [f"{self.metric} >= {self.min:g}"] * (self.min is not None) + [f"{self.metric} <= {self.max:g}"] * (
            self.max is not None)
        return " and ".join(bounds)


class Estimates(BaseModel):
    """What a run costs before any has been measured: CPU-seconds and output bytes, base plus per input frame."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cpu_seconds_base: float = Field(default=30.0, ge=0)
    cpu_seconds_per_frame: float = Field(default=1.0, ge=0)
    bytes_per_frame: int = Field(default=0, ge=0)

    def workload(self, frames: int) -> tuple[float, int]:
        return self.cpu_seconds_base + self.cpu_seconds_per_frame * frames, self.bytes_per_frame * frames


class Recipe(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")
    version: Version
    instrument: str
    modes: tuple[str, ...] = ()
    description: str
    documentation_url: str
    priority: int = Field(default=0, ge=0, le=99)
    automated: bool = True
    # What its datasets are: science (the PI is notified), calibration (masters others use) or summary.
    kind: Literal["science", "calibration", "summary"] = "science"
    estimates: Estimates = Estimates()
    tasks: tuple[TaskSpec, ...] = Field(min_length=1, max_length=MAX_TASKS)
    parameters: tuple[Parameter, ...] = Field(default=(), max_length=MAX_VALUES)
    run_configuration: tuple[Option, ...] = Field(default=(), max_length=MAX_VALUES)
    pipeline: PipelineSource | None = None  # a hosted pipeline's workflow (`obsflow pipelines add`)
    # Thresholds on its datasets' QC values: a calibration recipe's masters are certified when every gate passes
    qc_gates: tuple[QcGate, ...] = Field(default=(), max_length=MAX_VALUES)

    @model_validator(mode="after")
    def _valid(self) -> "Recipe":
        where = f"recipe {self.name} {self.version}"
        names = [t.name for t in self.tasks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise RecipeError(f"{where}: task names repeat: {', '.join(duplicates)}")
        for task in self.tasks:
            unknown = [u for u in task.upstreams if u not in names]
            if unknown:
                raise RecipeError(f"{where}: task {task.name} has unknown upstream(s) {', '.join(unknown)}")
        self.levels()  # raises on a cycle
        keys = [o.name for o in (*self.parameters, *self.run_configuration)]
        for task in self.tasks:
            unknown = sorted(set(task.uses or ()) - set(keys))
            if unknown:
                raise RecipeError(f"{where}: task {task.name} uses unknown parameter(s)/option(s) {', '.join(unknown)}")
        for task in self.tasks:
            if task.data_parallel and CHUNK_OPTION not in [o.name for o in self.run_configuration if o.type == "int"]:
                raise RecipeError(f"{where}: task {task.name} is data-parallel: the run configuration needs an int "
                                  f"option {CHUNK_OPTION} (frames per chunk)")
            if task.data_parallel and task.uses is not None and CHUNK_OPTION not in task.uses:
                raise RecipeError(f"{where}: task {task.name} is data-parallel: list {CHUNK_OPTION} in its uses "
                                  "(its outputs are made per chunk)")
        misplaced = [t.name for t in self.tasks if (t.pipeline_task is not None and self.pipeline is None)
                     or (self.pipeline is not None and t.pipeline_task is None
                         and not t.entrypoint.startswith(HOST_TASKS))]
        if misplaced:
            raise RecipeError(f"{where}: only a pipeline's recipe runs pipeline tasks, and it runs nothing else but "
                              f"obsflow's host tasks ({HOST_TASKS}...): see task(s) {', '.join(misplaced)}")
        metrics = [g.metric for g in self.qc_gates]
        gated_twice = sorted({m for m in metrics if metrics.count(m) > 1})
        if gated_twice:
            raise RecipeError(f"{where}: one gate per QC value; gated twice: {', '.join(gated_twice)}")
        if self.qc_gates and self.kind != "calibration":
            raise RecipeError(f"{where}: QC gates certify master calibrations: only a calibration recipe has them")
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise RecipeError(f"{where}: parameter/configuration names repeat: {', '.join(repeated)}")
        try:
            for parameter in self.parameters:
                for dated in parameter.values:
                    parameter.check(dated.value)
            for option in self.run_configuration:
                option.check(option.default)
        except RecipeError as exc:
            raise RecipeError(f"{where}: default outside its valid values: {exc}") from None
        return self

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    def task(self, name: str) -> TaskSpec:
        for task in self.tasks:
            if task.name == name:
                return task
        raise RecipeError(f"recipe {self.key} has no task {name!r}; its tasks: {', '.join(t.name for t in self.tasks)}")

    def levels(self) -> list[list[TaskSpec]]:
        """Tasks in dependency order, grouped: every task's upstreams are in earlier groups."""
        remaining = {t.name: set(t.upstreams) for t in self.tasks}
        done: set[str] = set()
        levels = []
        while remaining:
            ready = [t for t in self.tasks if t.name in remaining and remaining[t.name] <= done]
            if not ready:
                raise RecipeError(f"recipe {self.name} {self.version}: the tasks {', '.join(sorted(remaining))} form a cycle")
            levels.append(ready)
            for task in ready:
                done.add(task.name)
                del remaining[task.name]
        return levels

    def chunks(self, configuration: dict[str, Any], observe_frames: int) -> dict[str, int]:
        """Each data-parallel task's chunk count for a run of this configuration over ``observe_frames``."""
        return {task.name: chunk_count(observe_frames, int(configuration["options"][CHUNK_OPTION]))
                for task in self.tasks if task.data_parallel}

    def resource_classes(self) -> list[str]:
        return sorted({t.resource_class for t in self.tasks})

    def default_configuration(self) -> dict[str, Any]:
        return {option.name: option.default for option in self.run_configuration}

    def as_run_configuration(self, observed_on: dt.date, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Recipe defaults and parameter values effective on ``observed_on``, then ``overrides``, checked."""
        configuration = {
            "parameters": {p.name: p.effective(observed_on) for p in self.parameters},
            "options": self.default_configuration(),
        }
        known = {o.name: ("parameters", o) for o in self.parameters} | {o.name: ("options", o) for o in self.run_configuration}
        for name, value in (overrides or {}).items():
            if name not in known:
                raise RecipeError(
                    f"recipe {self.key} has no parameter or option {name!r}; known: {', '.join(sorted(known))}"
                )
            section, option = known[name]
            configuration[section][name] = option.check(value)
        return configuration

    def matches(self, instrument: str, mode: str | None = None) -> bool:
        return instrument.upper() == self.instrument.upper() and (not self.modes or mode in self.modes)
