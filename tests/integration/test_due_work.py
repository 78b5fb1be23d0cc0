"""A submitter pass reads what is due, not what waits: counted in DynamoDB requests on moto, not timed."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter

import boto3
import pytest
from pynamodb.connection.base import Connection

from obsflow import services, tables
from obsflow.recipes import registry
from obsflow.recipes.model import RESOURCE_CLASSES
from obsflow.runs.domain import HistoryEntry, Instance, InstanceInput, Run
from obsflow.runs.platform import RegisteredRecipes, ShippedRecipes
from obsflow.runs.service import RunService
from obsflow.runs.store import DynamoRunStore
from obsflow.statuses import FAILED, READY, SKIPPED, SUBMITTED, SUCCEEDED
from obsflow.tables.candidates import CandidateItem
from obsflow.tables.capacity import CapacityItem
from obsflow.tables.runs import RunItem, fill_queues
from tests.unit.fakes import FakeDocuments, FakeExecutions, FakeNotifier, FakeSwitch
from tests.unit.test_run_service import Clock

T0 = dt.datetime(2026, 11, 20, 21, 0, tzinfo=dt.timezone.utc)


class _Requests(Counter):
    keys_read: set

    def clear(self):
        super().clear()
        self.keys_read = set()


@pytest.fixture
def requests(monkeypatch):
    """Every DynamoDB request made, as (operation, table) -> count."""
    made = _Requests()
    original = Connection._make_api_call

    def counted(self, operation_name, operation_kwargs):
        table = (operation_kwargs.get("TableName") or next(iter(operation_kwargs.get("RequestItems", {})), "")
                 ).rsplit("-", 1)[-1]
        made[operation_name, table] += 1
        if operation_name == "GetItem" and table == "instances":
            made.keys_read.add(operation_kwargs["Key"]["instance_id"]["S"])
        if operation_name == "BatchGetItem":
            for name, request in operation_kwargs["RequestItems"].items():
                if name.endswith("-instances"):
                    made.keys_read.update(key["instance_id"]["S"] for key in request["Keys"])
        return original(self, operation_name, operation_kwargs)

    monkeypatch.setattr(Connection, "_make_api_call", counted)
    made.clear()
    return made


@pytest.fixture
def service(catalog) -> RunService:
    settings, _ = catalog
    return RunService(DynamoRunStore(settings), FakeDocuments(), FakeExecutions(), FakeNotifier(), FakeSwitch(),
                      ShippedRecipes(), settings, service_desk=lambda: None, clock=Clock())


def _instance(instance_id: str, upstream: str | None = None) -> Instance:
    inputs = [InstanceInput("calibration", "instance", upstream)] if upstream else []
    return Instance(instance_id, "c1", "pid_1_23", "vbi-night-summary", "1.0.0", "2026-11-20", T0, inputs=inputs,
                    reference="2026-11-20/pid_1_23")


def _waiting(service: RunService, upstream: str, count: int) -> None:
    """``count`` instances that wait for ``upstream``, looked at until none is due (an upstream looked at after its
    users marks them due again: their reason names its state)."""
    for index in range(count):
        service.store.create_instance(_instance(f"{upstream}-user-{index:05d}", upstream))
    for _ in range(3):
        service.submit()
        if not service.store.instances_due_for_planning():
            return
    raise AssertionError("instances stayed due")


def _one_pass(service: RunService, requests: Counter) -> Counter:
    requests.clear()
    service.submit()
    return Counter(requests)


def test_a_pass_over_ten_or_two_hundred_waiting_instances_makes_the_same_requests(service, requests):
    # Given an upstream instance that waits itself, and 10 instances waiting for it, each looked at once
    service.store.create_instance(_instance("ri-up-a", "ri-root"))
    _waiting(service, "ri-up-a", 10)
    assert service.store.instance("ri-up-a-user-00003").state == "WAITING"
    # When a submitter pass runs with nothing new
    few = _one_pass(service, requests)
    # And again after 190 more instances wait for another upstream
    service.store.create_instance(_instance("ri-up-b", "ri-root"))
    _waiting(service, "ri-up-b", 190)
    many = _one_pass(service, requests)
    # Then both passes made the same requests, and read no instance table item at all (only the due index)
    assert many == few
    assert sum(n for (operation, table), n in few.items() if table == "instances") == 1
    assert few[("Query", "instances")] == 1


def test_an_upstream_that_moves_makes_exactly_its_users_due(service, requests):
    # Given 30 instances waiting for one upstream and 30 for another, all looked at
    for upstream in ("ri-up-a", "ri-up-b"):
        service.store.create_instance(_instance(upstream, "ri-root"))
        _waiting(service, upstream, 30)
    # When the first upstream's state moves (its derived state is recorded) and a pass runs
    service.store.update_instance("ri-up-a", state="ERROR", state_reason="cannot plan: test")
    service.wake_users(["instance:ri-up-a"])
    requests.clear()
    service.submit()
    # Then the pass read the 30 users of that upstream (and the upstream), none of the others'
    assert requests.keys_read == {"ri-up-a", *(f"ri-up-a-user-{i:05d}" for i in range(30))}
    # And each says what it waits for now, while the other upstream's users were not touched
    assert "ERROR" in service.store.instance("ri-up-a-user-00007").state_reason
    assert "ri-up-b (vbi-night-summary: WAITING" in service.store.instance("ri-up-b-user-00007").state_reason
    # And a further pass reads none of them again
    assert _one_pass(service, requests)[("GetItem", "instances")] == 0


def test_a_mark_made_while_a_pass_looked_is_not_lost(service):
    # Given a due instance, read by a pass as due with one mark
    service.store.create_instance(_instance("ri-x"))
    [(instance_id, mark)] = service.store.instances_due_for_planning()
    # When its input moves while the pass looks (marked again), then the pass clears the mark it read
    service.store.mark_due_for_planning([instance_id], T0 + dt.timedelta(seconds=1))
    cleared = service.store.planning_looked_at(instance_id, mark)
    # Then the newer mark stays: the next pass looks at it again
    assert cleared is False and [i for i, _ in service.store.instances_due_for_planning()] == ["ri-x"]
    # And marking an id of no instance records nothing
    service.store.mark_due_for_planning(["ri-nothing"], T0)
    assert service.store.instance("ri-nothing") is None


@pytest.mark.parametrize("upstreams", [20, 250])
def test_a_night_s_instance_waiting_for_its_upstreams_reads_them_in_batches_and_names_a_few(
        service, requests, upstreams):
    # Given a night's summary over ``upstreams`` science instances that all wait, the summary looked at once
    science = [f"ri-sci-{index:04d}" for index in range(upstreams)]
    for instance_id in science:
        service.store.create_instance(_instance(instance_id, "ri-root"))
    night = _instance("ri-night")
    night.inputs = [InstanceInput("science", "instance", instance_id) for instance_id in science]
    service.store.create_instance(night)
    service.submit()
    # When one science instance moves and a pass looks at the summary again
    service.store.update_instance(science[3], state="ERROR", state_reason="cannot plan: test")
    service.wake_users([f"instance:{science[3]}"])
    requests.clear()
    service.submit()
    # Then its upstreams are read a hundred to a request, never one by one with their inputs
    assert requests[("BatchGetItem", "instances")] == -(-upstreams // 100) + 1  # and its own state, refreshed
    assert requests[("GetItem", "instances")] == 1  # the summary, with its inputs
    assert requests[("Query", "edges")] == 1  # the summary's inputs; no upstream's
    # And its reason names five of them and counts the rest, so it stays small however many wait
    reason = service.store.instance("ri-night").state_reason
    assert reason.count("ri-sci-") == 5 and f"and {upstreams - 5} more of its {upstreams} upstream" in reason
    # And only the inputs asked about are read when a candidate adds to it: one it has, one it has not
    have, new = InstanceInput("science", "instance", science[0]), InstanceInput("science", "instance", "ri-sci-new")
    assert service.store.missing_inputs("ri-night", [have, new]) == [new]


def test_a_pass_reads_each_recipe_and_the_rules_once_however_many_candidates_use_them(catalog, requests):
    # Given the shipped recipes registered in the stage's tables, and the registered recipe book
    settings, _ = catalog
    registry.register(settings)
    recipes = RegisteredRecipes(FakeDocuments())
    # When one pass asks for a recipe and the rules as two hundred candidates would
    requests.clear()
    with recipes.one_pass():
        for _ in range(200):
            recipes.rules()
            assert recipes.get("frame-census").name == "frame-census"
            recipes.get("frame-census", "1.0.0")
    in_a_pass = Counter(requests)
    # And outside a pass, as one candidate would
    requests.clear()
    recipes.get("frame-census")
    alone = Counter(requests)
    # Then the pass read the registry once per question asked (the latest version, a named one), no more
    assert in_a_pass == Counter({key: 2 * n for key, n in alone.items()})
    # And a recipe registered after the pass is what the next pass reads
    changed = registry.get("frame-census").model_copy(update={"version": "9.0.0", "description": "newer"})
    registry.register_recipe(settings, changed)
    with recipes.one_pass():
        assert recipes.get("frame-census").version == "9.0.0"


def _queued(service: RunService, count: int, resource_classes: tuple[str, ...] = ("default", "multi-core"),
            first: int = 0, priority: int = 5, at: dt.datetime = T0) -> None:
    """``count`` READY runs of frame-census needing ``resource_classes``, planned at ``at``."""
    for index in range(first, first + count):
        service.store.create_run(Run(f"run-{index:05d}", f"ri-{index:05d}", "c1", "pid_1_23", "frame-census", "1.0.0",
                                     priority, list(resource_classes), {}, at,
                                     history=[HistoryEntry(READY, at, "planned")]))


def test_a_pass_reads_only_the_ready_queues_whose_slots_are_free(service, requests, catalog):
    # Given every multi-core slot held by a run already going, and 10 runs queued that need one
    settings, _ = catalog
    for index in range(settings.capacity("multi-core")):
        CapacityItem("multi-core").update(actions=[CapacityItem.run_ids.add({f"going-{index}"})])
    _queued(service, 10)
    # When a pass runs, and again after 190 more are queued
    few = _one_pass(service, requests)
    _queued(service, 190, first=10)
    many = _one_pass(service, requests)
    # Then both passes made the same requests, and wrote no run: each queried the 3 (empty) queues of classes with
    # a free slot, and the runs started but not launched
    assert many == few
    assert [(request, n) for request, n in few.items() if request[1] == "runs"] == [(("Query", "runs"), 4)]
    # And a run needing only a high-memory slot, queued behind them all at a lower priority, starts at the next pass
    service.store.create_instance(_instance("ri-00500"))
    _queued(service, 1, ("high-memory",), first=500, priority=1)
    assert service.submit().started == ["run-00500"]
    # And the 200 still wait in their queue, which a new index gives runs recorded before it
    assert len(service.store.runs_with_status("READY")) == 200 and fill_queues() == 0


def test_runs_queued_before_the_ready_index_existed_are_put_in_their_queues_when_it_is_added(service, catalog):
    # Given the runs table as an earlier obsflow made it, without the ready-for index, holding a READY run and an
    # ended one (neither with a queue attribute)
    settings, _ = catalog
    dynamodb = boto3.client("dynamodb", region_name=settings.region)
    name = settings.table_name("runs")
    dynamodb.delete_table(TableName=name)
    schema = RunItem._get_schema()
    dynamodb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST", KeySchema=schema["key_schema"],
        AttributeDefinitions=[d for d in schema["attribute_definitions"] if d["AttributeName"] != "ready_for"],
        GlobalSecondaryIndexes=[{"IndexName": i["index_name"], "KeySchema": i["key_schema"], "Projection": i["projection"]}
                                for i in schema["global_secondary_indexes"] if i["index_name"] != "ready-for"])
    _queued(service, 2)
    service.store.transition("run-00001", "SUCCEEDED", ("READY",), T0)
    for run_id in ("run-00000", "run-00001"):
        RunItem(run_id).update(actions=[RunItem.ready_for.remove()])
    # When the local stack starts on it (creating what is missing)
    tables.create_tables()
    # Then the READY run is in its queue, and the ended one is not
    assert [run.run_id for run in service.store.ready_runs(("default", "multi-core"))] == ["run-00000"]
    assert RunItem.get("run-00001").ready_for is None


def test_the_day_s_moves_are_counted_by_status_in_one_request_however_many_runs_there_are(catalog, service,
                                                                                          requests):
    queries = services.queries(catalog[0])
    # Given five runs planned this hour, two of them since ended (one end delivered twice), and one planned two
    # days before and failed the day after
    _queued(service, 5)
    for run_id, status in (("run-00001", SUCCEEDED), ("run-00002", SKIPPED), ("run-00001", SUCCEEDED)):
        service.store.transition(run_id, status, (READY,), T0 + dt.timedelta(minutes=5))
    _queued(service, 1, first=100, at=T0 - dt.timedelta(days=2))
    service.store.transition("run-00100", FAILED, (READY,), T0 - dt.timedelta(days=1))
    # When the moves since the start of the hour before are counted
    requests.clear()
    entered = queries.runs_entered_since(T0 - dt.timedelta(minutes=30))
    # Then each of this hour's runs counts once in each status it entered (the repeated end counts nothing), the
    # older run not at all, in the order a run moves through them
    assert list(entered.items()) == [(READY, 5), (SUCCEEDED, 1), (SKIPPED, 1)]
    # And the count is one query, as it is once 60 more runs are planned and started
    assert requests == {("Query", "counts"): 1}
    _queued(service, 60, first=200, at=T0 + dt.timedelta(minutes=10))
    for index in range(200, 260):
        assert service.store.take_slots(service.store.run(f"run-{index:05d}"), {rc: 100 for rc in RESOURCE_CLASSES},
                                        T0 + dt.timedelta(minutes=11))
    requests.clear()
    assert queries.runs_entered_since(T0 - dt.timedelta(minutes=30)) == {READY: 65, SUBMITTED: 60, SUCCEEDED: 1,
                                                                        SKIPPED: 1}
    assert requests == {("Query", "counts"): 1}


def test_a_run_recorded_with_two_entries_of_one_hour_and_status_counts_both_in_its_one_transaction(catalog, service):
    # Given a run recorded with a history of two READY entries in one hour (a transaction names each count once)
    run = Run("run-twice", "ri-twice", "c1", "pid_1_23", "frame-census", "1.0.0", 5, ["default"], {}, T0,
              history=[HistoryEntry(READY, T0, "planned"), HistoryEntry(READY, T0 + dt.timedelta(minutes=1), "again")])
    # When it is recorded
    # Then it is, and both entries count
    assert service.store.create_run(run)
    assert services.queries(catalog[0]).runs_entered_since(T0) == {READY: 2}


def test_a_stage_recorded_before_the_counts_gets_them_from_its_runs_histories(catalog, service):
    settings, _ = catalog
    queries = services.queries(settings)
    # Given runs planned, one ended, on a stage whose status counts were not kept yet
    _queued(service, 3)
    service.store.transition("run-00000", SUCCEEDED, (READY,), T0 + dt.timedelta(hours=1))
    boto3.client("dynamodb", region_name=settings.region, endpoint_url=settings.endpoint_url).delete_table(
        TableName=settings.table_name("run-counts"))
    # When the local stack starts on it (creating what is missing)
    tables.create_tables()
    # Then the counts are those of the runs' histories, and a move from then on adds to them
    assert queries.runs_entered_since(T0) == {READY: 3, SUCCEEDED: 1}
    service.store.transition("run-00001", FAILED, (READY,), T0 + dt.timedelta(hours=1))
    assert queries.runs_entered_since(T0) == {READY: 3, SUCCEEDED: 1, FAILED: 1}
    # And starting again on the same tables counts nothing twice
    tables.create_tables()
    assert queries.runs_entered_since(T0) == {READY: 3, SUCCEEDED: 1, FAILED: 1}


def _planned_candidates(service: RunService, first: int, count: int) -> None:
    """``count`` READY candidates, each with its science instance and one run of it."""
    for index in range(first, first + count):
        candidate_id = f"cand-{index:04d}"
        instance_id, run_id = f"ri-{candidate_id}", f"run-{candidate_id}"
        service.store.create_instance(dataclasses.replace(_instance(instance_id), candidate_id=candidate_id))
        service.store.add_run_to_instance(instance_id, run_id)
        service.store.create_run(Run(run_id, instance_id, candidate_id, "pid_1_23", "vbi-l1", "1.0.0", 5,
                                     ["default"], {}, T0 + dt.timedelta(seconds=index)))
        CandidateItem(candidate_id, proposal_id="pid_1_23", instrument="VBI", observe_op=f"op-{index}",
                      key=f"manifests/{candidate_id}.json", status="READY", instance_id=instance_id,
                      created_at=T0 + dt.timedelta(seconds=index)).save()


def test_a_page_of_candidates_reads_their_instances_and_runs_together_however_many_it_shows(catalog, service,
                                                                                            requests):
    queries = services.queries(catalog[0])
    # Given 3 candidates, each planned with a run
    _planned_candidates(service, 0, 3)
    # When the newest page of candidates is read (as the monitor's overview does)
    requests.clear()
    few = queries.newest_candidate_rows(50)
    few_requests = Counter(requests)
    # And again once 60 candidates are
    _planned_candidates(service, 3, 57)
    requests.clear()
    many = queries.newest_candidate_rows(50)
    # Then each page made the same requests: the candidates' page, their instances and their runs, one each
    assert Counter(requests) == few_requests == {("Query", "candidates"): 1, ("BatchGetItem", "candidates"): 1,
                                                 ("BatchGetItem", "instances"): 1, ("BatchGetItem", "runs"): 1}
    # And each row says what its own instance's run says
    assert len(few) == 3 and len(many) == 50
    assert all(row["run_ids"] == [f"run-{row['candidate_id']}"] and row["processing"] == "READY" for row in many)
