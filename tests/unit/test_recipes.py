"""Recipes as data: validation of definitions and values, selection, and the generated state machine."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from obsflow.errors import NotFound
from obsflow.recipes import registry
from obsflow.recipes.asl import build_definition, placeholders, render, stages as stages_of
from obsflow.recipes.definitions import RECIPES
from obsflow.recipes.model import RESOURCE_CLASSES, DatedValue, Option, Parameter, Recipe, RecipeError, TaskSpec


def recipe(tasks: dict[str, tuple[str, ...]], **extra) -> Recipe:
    return Recipe(
        name="test", version="1.0.0", instrument="VBI", description="test", documentation_url="https://example.org",
        tasks=tuple(TaskSpec(name=n, entrypoint="obsflow_tasks.census:Summary", upstreams=u) for n, u in tasks.items()),
        **extra,
    )


CHAIN = {"a": (), "b": ("a",), "c": ("b",)}
DIAMOND = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")}
INDEPENDENT = {"a": (), "b": (), "c": ()}
FRAME_CENSUS = registry.get("frame-census")


@pytest.mark.parametrize("shape, levels", [
    (CHAIN, [["a"], ["b"], ["c"]]),
    (DIAMOND, [["a"], ["b", "c"], ["d"]]),
    (INDEPENDENT, [["a", "b", "c"]]),
])
def test_tasks_are_grouped_so_every_upstream_comes_first(shape, levels):
    assert [[t.name for t in level] for level in recipe(shape).levels()] == levels


@pytest.mark.parametrize("shape, message", [
    ({"a": ("c",), "b": ("a",), "c": ("b",)}, "the tasks a, b, c form a cycle"),
    ({"a": (), "b": ("x",)}, "task b has unknown upstream(s) x"),
    ({"a": (), "b": (), "a2": ("a",), "x": ("x",)}, "the tasks x form a cycle"),
])
def test_an_invalid_dag_is_rejected_with_the_culprit_named(shape, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        recipe(shape)


def test_a_default_outside_its_valid_values_is_rejected():
    with pytest.raises(ValidationError, match="default outside its valid values: level: 70000 is above the maximum"):
        recipe(CHAIN, parameters=(Parameter(name="level", type="int", maximum=65535,
                                            values=(DatedValue(effective_from="2020-01-01", value=70000),)),))
    with pytest.raises(ValidationError, match="mode: 'fast' is not one of"):
        recipe(CHAIN, run_configuration=(Option(name="mode", type="str", choices=("slow",), default="fast"),))


def test_the_as_run_configuration_takes_dated_values_then_checked_overrides():
    # Given the census recipe, whose saturation level changed on 2026-06-01
    # When configurations are made for observations either side of that date
    before = FRAME_CENSUS.as_run_configuration(dt.date(2026, 5, 31))
    after = FRAME_CENSUS.as_run_configuration(dt.date(2026, 6, 1), {"saturation_level": "61000"})
    # Then each gets the value effective on its date, and overrides are converted and checked
    assert before == {"parameters": {"saturation_level": 60000}, "options": {}}
    assert after == {"parameters": {"saturation_level": 61000}, "options": {}}
    with pytest.raises(RecipeError, match="saturation_level: 0 is below the minimum"):
        FRAME_CENSUS.as_run_configuration(dt.date(2026, 6, 1), {"saturation_level": 0})
    with pytest.raises(RecipeError, match="has no parameter or option 'gain'"):
        FRAME_CENSUS.as_run_configuration(dt.date(2026, 6, 1), {"gain": 1})
    with pytest.raises(RecipeError, match="no value effective on 2019-12-31"):
        FRAME_CENSUS.as_run_configuration(dt.date(2019, 12, 31))


def test_a_candidate_gets_its_named_recipe_else_its_instruments():
    assert registry.select("VBI", "frame-census") == FRAME_CENSUS
    # frame-census has a mode, so an instrument match alone never selects it
    with pytest.raises(NotFound, match="no recipe matches instrument 'VBI'"):
        registry.select("VBI", None, recipes=(FRAME_CENSUS,))
    with pytest.raises(NotFound, match="no recipe 'nope'"):
        registry.select("VBI", "nope")


def _states(definition: dict) -> dict:
    """Every state, branches included."""
    found = {}
    for name, state in definition["States"].items():
        found[name] = state
        for branch in state.get("Branches", []):
            found.update(_states(branch))
    return found


@pytest.mark.parametrize("shape", [CHAIN, DIAMOND, INDEPENDENT])
def test_the_state_machine_follows_the_dag_and_every_failure_opens_a_ticket(shape):
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    definition = build_definition(recipe(shape))
    states = _states(definition)
    # Every task is a named Batch job; independent tasks share a Parallel state
    for task in shape:
        assert states[task]["Resource"] == "arn:aws:states:::batch:submitJob.sync"
    top = list(definition["States"])
    levels = recipe(shape).levels()
    assert top[: len(levels) + 1] == ["StartRun", *[" + ".join(t.name for t in level) for level in levels]]
    for level in levels:
        state = definition["States"][" + ".join(t.name for t in level)]
        assert state["Type"] == ("Parallel" if len(level) > 1 else "Task")
        assert state["Catch"][0]["Next"] == "OpenTicket"
    # The path after the tasks, and the failure path
    assert [definition["States"][s]["Next"] for s in ("Catalog", "NotifyPI", "OpenTicket", "FailRun")] == [
        "ForThePI", "FinishRun", "FailRun", "RunFailed"]
    # The PI hears of the dataset unless the run is a developer's
    choice = definition["States"]["ForThePI"]
    assert choice["Choices"] == [{"Variable": "$.catalog.result.notify_pi", "BooleanEquals": True, "Next": "NotifyPI"}]
    assert choice["Default"] == "FinishRun"
    assert definition["States"]["NotifyPI"]["Parameters"]["MessageAttributes"]["proposal_id"]["StringValue.$"]
    # Every task retries transient errors with backoff
    for name, state in states.items():
        if state["Type"] == "Task":
            assert state["Retry"] and all(r["BackoffRate"] > 1 and r["MaxAttempts"] > 1 for r in state["Retry"]), name
    # Every Next names a state, and the ASL parses once the ARNs are filled in
    for state in states.values():
        assert state.get("Next") is None or state["Next"] in states
    rendered = render(definition, {key: f"arn:aws:lambda:us-east-1:123456789012:function:{key}" for key in placeholders(definition)})
    AmazonStateLanguageParser.parse(rendered)
    assert "${" not in rendered


def test_a_task_that_needs_only_one_branch_follows_it_there_and_waits_for_no_other():
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    # Given a report that needs only the metrics, beside a stamping that the inventory needs
    shape = {"frames": (), "metrics": ("frames",), "stamp": ("frames",), "report": ("metrics",),
             "inventory": ("stamp",), "summary": ("report", "inventory")}
    # When its state machine is made
    stages = stages_of(recipe(shape))
    definition = build_definition(recipe(shape))
    # Then the report runs in the metrics' branch, right after them, and the inventory after the stamping in its
    # own: neither waits for the other branch; the summary, which needs both, waits for the Parallel
    assert [[[t.name for t in chain] for chain in stage] for stage in stages] == [
        [["frames"]], [["metrics", "report"], ["stamp", "inventory"]], [["summary"]]]
    parallel = definition["States"]["metrics + stamp"]
    assert [(b["StartAt"], b["States"][b["StartAt"]]["Next"]) for b in parallel["Branches"]] == [
        ("metrics", "report"), ("stamp", "inventory")]
    assert parallel["Next"] == "summary"
    rendered = render(definition, {key: f"arn:aws:lambda:us-east-1:123456789012:function:{key}" for key in placeholders(definition)})
    AmazonStateLanguageParser.parse(rendered)


def test_rendering_names_a_missing_substitution():
    with pytest.raises(KeyError, match="PiNotificationsTopicArn"):
        render(build_definition(FRAME_CENSUS), {})


def test_the_shipped_state_machines_never_iterate_over_frames():
    for shipped in RECIPES:
        states = _states(build_definition(shipped))
        # No Map state, and inputs are selected by run id only: transitions cannot grow with the frames
        assert {state["Type"] for state in states.values()} <= {"Task", "Parallel", "Choice", "Pass", "Fail"}
        paths = {v for state in states.values() for v in json.dumps(state.get("Parameters", {})).split('"') if v.startswith("$.")}
        assert paths <= {"$.run_id", "$.error", "$.catalog.result.subject", "$.catalog.result.message",
                         "$.catalog.result.proposal_id", "$.catalog.result.dataset_id",
                         "$.start.result.share_identifier", "$.start.result.scheduling_priority",
                         *(f"$.start.result.job_definitions.{rc.replace('-', '_')}" for rc in RESOURCE_CLASSES),
                         *(f"$.start.result.chunks.{task.name}" for task in shipped.tasks if task.data_parallel)}


def test_discovery_rules_as_data_are_checked_like_the_shipped_ones():
    from obsflow.recipes.definitions import RULES, parse_rules

    shipped = (Path(registry.__file__).parent / "shipped" / "discovery-rules.yaml").read_text()
    assert parse_rules(shipped, "shipped") == RULES
    for text, reason in [("{}", "a list of rules"), ("[", "not YAML"),
                         ("- {name: a, instrument: VBI, recipe: r, group_by: candidate, inputs: [{source: rule, "
                          "rule: nowhere, role: x}]}", "unknown rule 'nowhere'")]:
        with pytest.raises(RecipeError, match=reason):
            parse_rules(text, "rules.yaml")
