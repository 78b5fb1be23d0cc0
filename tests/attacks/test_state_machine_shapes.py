"""The generated state machines, attacked with many recipe shapes: every task runs once, after all its upstreams,
every failure reaches OpenTicket, and the ASL parses; the counted transitions follow the definition."""

from __future__ import annotations

import random

import pytest
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

from obsflow.recipes import asl
from obsflow.recipes.definitions import RECIPES
from obsflow.recipes.model import Option, Recipe, TaskSpec


def random_recipe(seed: int) -> Recipe:
    """A random DAG of 2-9 tasks, some reusable, some data-parallel."""
    rng = random.Random(seed)
    names = [f"t{i}" for i in range(rng.randint(2, 9))]
    tasks = [TaskSpec(name=name, entrypoint="obsflow_tasks.census:Summary", reuse=rng.random() < 0.5,
                      data_parallel=rng.random() < 0.3,
                      upstreams=tuple(u for u in names[:i] if rng.random() < 0.35)) for i, name in enumerate(names)]
    return Recipe(name="shape", version="1.0.0", instrument="VBI", description="a random shape",
                  documentation_url="https://example.org", tasks=tuple(tasks),
                  run_configuration=(Option(name="chunk_frames", type="int", minimum=1, default=32),))


SHAPES = [pytest.param(recipe, id=recipe.key) for recipe in RECIPES] + \
         [pytest.param(random_recipe(seed), id=f"random-{seed}") for seed in range(30)]


def walk(states: dict, at: str, branch_of: str | None, seen: dict) -> None:
    """Every state reachable from ``at``, with the top-level state that catches its failures."""
    while at is not None and at not in seen:
        state = states[at]
        seen[at] = branch_of or at
        for branch in state.get("Branches", []):
            walk(branch["States"], branch["StartAt"], branch_of or at, seen)
        for choice in state.get("Choices", []):
            walk(states, choice["Next"], branch_of, seen)
        at = state.get("Default") or state.get("Next")


def all_names(definition: dict) -> list[str]:
    return [name for name, state in definition["States"].items()
            for name in [name, *(n for branch in state.get("Branches", []) for n in all_names(branch))]]


@pytest.mark.parametrize("recipe", SHAPES)
def test_every_task_runs_once_after_its_upstreams_and_its_failure_opens_a_ticket(recipe):
    stages = asl.stages(recipe)
    # Every task in exactly one chain, after every upstream: an earlier stage's, or earlier in its own chain
    placed = {task.name: (s, c, p) for s, stage in enumerate(stages) for c, chain in enumerate(stage)
              for p, task in enumerate(chain)}
    assert sorted(placed) == sorted(t.name for t in recipe.tasks)
    assert sum(len(chain) for stage in stages for chain in stage) == len(recipe.tasks)
    for task in recipe.tasks:
        s, c, p = placed[task.name]
        for upstream in task.upstreams:
            us, uc, up = placed[upstream]
            assert us < s or (us == s and uc == c and up < p), (task.name, upstream, stages)
    # Every state's name is unique in the whole state machine, branches included (Step Functions refuses it else)
    definition = asl.build_definition(recipe)
    names = all_names(definition)
    assert len(names) == len(set(names)), sorted(n for n in set(names) if names.count(n) > 1)
    # Every state is reachable; every Batch job is caught, by itself or by the Parallel around it, to OpenTicket
    seen: dict[str, str] = {}
    walk(definition["States"], "StartRun", None, seen)
    jobs = [name for name, top in seen.items() if name not in definition["States"] or
            definition["States"][name].get("Resource", "").startswith("arn:aws:states:::batch")]
    assert jobs
    for name in jobs:
        catcher = definition["States"][seen[name]]
        assert catcher["Catch"][0]["Next"] == "OpenTicket", name
    # A reusable task has its Choice and Pass, each reached
    for task in recipe.tasks:
        assert (asl.reused_choice_name(task.name) in seen) == task.reuse
        assert (f"{task.name} {asl.REUSED}" in seen) == task.reuse
    rendered = asl.render(definition, {key: f"arn:aws:lambda:us-east-1:123456789012:function:{key}"
                                       for key in asl.placeholders(definition)})
    AmazonStateLanguageParser.parse(rendered)


@pytest.mark.parametrize("recipe", SHAPES)
def test_passing_a_reused_task_saves_exactly_its_own_states(recipe):
    # A reused task: its Choice and Pass; run: its Choice and its task's states (a data-parallel one: its chunk
    # Choice and its array job)
    definition = asl.build_definition(recipe)
    everything = asl.success_path(definition)[0]
    for task in recipe.tasks:
        if task.reuse:
            saved = everything - asl.success_path(definition, reused=frozenset({task.name}))[0]
            assert saved == (1 if task.data_parallel else 0), task.name
