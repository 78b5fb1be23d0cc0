"""What every part of the runs layer works with, and the errors they say.

The parts (planning, submission, the run lifecycle, cataloguing, tickets, the backstop) share one RunContext:
the store, the platform's ports, the recipes, the settings and the clock. A test that swaps one of them swaps
it for every part.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from obsflow.errors import NotFound, ObsflowError
from obsflow.runs.domain import Dataset, Instance, Run, utcnow
from obsflow.runs.ports import Documents, Executions, Notifier, RecipeBook, RunStore, ServiceDesk, SubmissionSwitch, TaskRunner
from obsflow.runs.transitions import RUN_MOVES
from obsflow.settings import Settings


class NotAllowed(ObsflowError):
    """The run (or dataset, instance, campaign) is not in a state that allows this operation."""


class ManualRunFailed(ObsflowError):
    pass


@dataclass
class SubmitReport:
    """What one submitter pass did."""

    paused: bool = False
    discovered: list[str] = field(default_factory=list)
    # What the pass left for the next one when its time budget ran out ("discovery", "planning"); it nudged it
    cut_short: list[str] = field(default_factory=list)
    planned: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    waiting: dict[str, str] = field(default_factory=dict)
    manual: list[str] = field(default_factory=list)
    reviews: list[str] = field(default_factory=list)  # candidates whose conflicts got a review ticket


@dataclass
class RunContext:
    store: RunStore
    documents: Documents
    executions: Executions
    notifier: Notifier
    switch: SubmissionSwitch
    recipes: RecipeBook
    settings: Settings
    service_desk: Callable[[], ServiceDesk | None] = lambda: None
    task_runner: TaskRunner | None = None
    clock: Callable[[], dt.datetime] = utcnow
    # The usage of the Lambda invocation in progress, so far (obsflow.metering); None outside one.
    invocation_usage: Callable[[], dict | None] = lambda: None
    # Seconds elapsed, for the submitter's time budget (``clock`` is the records' time)
    elapsed: Callable[[], float] = time.monotonic


def _shared(name: str) -> property:
    return property(lambda self: getattr(self.ctx, name), lambda self, value: setattr(self.ctx, name, value))


class Part:
    """A part of the runs layer: its collaborators are the shared context's."""

    store = _shared("store")
    documents = _shared("documents")
    executions = _shared("executions")
    notifier = _shared("notifier")
    switch = _shared("switch")
    recipes = _shared("recipes")
    settings = _shared("settings")
    service_desk = _shared("service_desk")
    task_runner = _shared("task_runner")
    clock = _shared("clock")
    elapsed = _shared("elapsed")

    def __init__(self, ctx: RunContext):
        self.ctx = ctx

    def move_run(self, run_id: str, move: str, detail: str | None = None, **changes) -> bool:
        """Make a named move of the run's state machine (transitions.RUN_MOVES); False if the run was not in a
        status the move starts from."""
        step = RUN_MOVES[move]
        return self.store.transition(run_id, step.to, step.sources, self.clock(), detail, **changes)

    def wake_users(self, input_keys: list[str]) -> None:
        """Mark due the instances that use these inputs (``<kind>:<ref>``): the submitter's next pass looks at
        them (obsflow.runs.planning)."""
        users = sorted({user for key in input_keys for user in self.store.users_of(key)})
        if users:
            self.store.mark_due_for_planning(users, self.clock())

    def require_run(self, run_id: str) -> Run:
        run = self.store.run(run_id)
        if run is None:
            raise NotFound(f"no run {run_id!r}; `obsflow runs list` shows the known ones")
        return run

    def instance_of(self, run: Run) -> Instance:
        instance = self.store.instance(run.instance_id)
        if instance is None:
            raise NotFound(f"the recipe instance {run.instance_id} of run {run.run_id} is gone")
        return instance

    def require_dataset(self, dataset_id: str) -> Dataset:
        dataset = self.store.dataset(dataset_id)
        if dataset is None:
            raise NotFound(f"no dataset {dataset_id!r}; `obsflow datasets list` shows them")
        return dataset
