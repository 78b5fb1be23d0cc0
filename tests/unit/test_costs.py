"""What a run cost, from its task records, its state machine and the price table."""

from __future__ import annotations

import pytest

from obsflow.recipes import asl
from obsflow.recipes.definitions import RECIPES
from obsflow.runs.costs import run_cost
from obsflow.settings import Prices

CENSUS = next(r for r in RECIPES if r.key == "frame-census@1.0.0")
VBI = next(r for r in RECIPES if r.key == "vbi-l1@3.0.0")
VBI_BY_CONTENT = next(r for r in RECIPES if r.key == "vbi-l1@3.1.0")


def test_the_success_path_counts_every_state_entered_and_every_lambda_invoked():
    # frame-census: StartRun, inventory (its reused? Choice, then its job), the Parallel with its two branches
    # (each a Choice and a job), summary, Catalog, ForThePI (a Choice), NotifyPI (SNS, no Lambda), FinishRun;
    # a developer run's dataset skips NotifyPI
    assert asl.success_path(asl.build_definition(CENSUS)) == (13, 3)
    assert asl.success_path(asl.build_definition(CENSUS), notify_pi=False) == (12, 3)
    # a task StartRun found made already passes (a Pass state) instead of running: as many transitions
    assert asl.success_path(asl.build_definition(CENSUS), reused=frozenset({"inventory", "dark_level"})) == (13, 3)
    # vbi-l1: StartRun, parse (Choice, job), the data-parallel frames (a Parallel of one branch: its Choice, then an
    # array job, or one job for a single chunk), a Parallel of three branches (quality_metrics with its Choice then
    # quality_report; browse_movie with its Choice; asdf_inventory), Catalog, ForThePI, NotifyPI, FinishRun: as
    # many for 100,000 frames as for 10, in one chunk or many
    transitions, invocations = asl.success_path(asl.build_definition(VBI))
    assert invocations == 3 and transitions == 1 + 2 + (1 + 2) + (1 + 3 + 2 + 1) + 1 + 1 + 1 + 1
    assert asl.success_path(asl.build_definition(VBI), chunked=False)[0] == transitions
    # vbi-l1 3.1.0 with its frames reused: their Choice and a Pass instead of the chunks' Choice and array job
    reused = asl.success_path(asl.build_definition(VBI_BY_CONTENT), reused=frozenset({"parse", "frames"}))[0]
    assert reused == asl.success_path(asl.build_definition(VBI_BY_CONTENT))[0] - 1


def test_a_run_costs_its_tasks_vcpu_and_memory_time_its_lambdas_and_its_transitions():
    records = [{"task": "inventory", "duration_s": 100.0}, {"task": "observe_stats", "duration_s": 10.0},
               {"task": "dark_level", "duration_s": 0.0, "reused_from": {"run_id": "run-1"}}]
    prices = Prices(fargate_vcpu_hour=3.6, fargate_gib_hour=0.36, lambda_request=0.5, state_transition=0.25)
    cost = run_cost(records, CENSUS, prices, succeeded=True)
    # inventory: 1 vCPU, 4 GiB for 100 s; observe_stats (multi-core): 4 vCPU, 8 GiB for 10 s
    assert (cost["batch_vcpu_s"], cost["batch_gib_s"], cost["tasks_reused"]) == (140.0, 480.0, 1)
    assert cost["usd"] == pytest.approx(140 * 0.001 + 480 * 0.0001 + 3 * 0.5 + 13 * 0.25)
    failed = run_cost(records, CENSUS, prices, succeeded=False)
    assert failed["state_transitions"] is None and failed["lambda_invocations"] == 3
