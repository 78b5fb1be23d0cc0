"""The run service on in-memory fakes: planning, slots, priority, tickets, retry, redrive, backstop."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from obsflow.errors import NotFound, TransientError
from obsflow.recipes.model import RecipeError
from obsflow.reads.queries import Queries
from obsflow.runs import layout
from obsflow.runs.domain import Candidate, Dataset, FrameRef, OpProgress, Ticket
from obsflow.runs.platform import ShippedRecipes
from obsflow.runs.service import ManualRunFailed, NotAllowed, RunService
from obsflow.settings import Settings
from tests.unit.fakes import FakeDocuments, FakeExecutions, FakeNotifier, FakeReads, FakeRunStore, FakeSwitch

T0 = dt.datetime(2026, 11, 20, 22, 0, tzinfo=dt.timezone.utc)


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        self.now += dt.timedelta(seconds=1)
        return self.now


class FakeTaskRunner:
    def __init__(self, failing_task: str | None = None):
        self.ran, self.failing_task = [], failing_task

    def run(self, recipe, task, run_id, operator, note):
        self.ran.append(task)
        return (2, "", "boom: bad configuration") if task == self.failing_task else (0, f"{task} done", "")


def make_service(capacity=1, executions=None, runner=None, desk=None, **more_settings) -> RunService:
    settings = Settings(stage="unit", capacity_default=capacity, capacity_multi_core=capacity,
                        capacity_high_memory=capacity, **{"auto_redrives": 0, **more_settings})
    return RunService(FakeRunStore(), FakeDocuments(), executions or FakeExecutions(), FakeNotifier(), FakeSwitch(),
                      ShippedRecipes(), settings, service_desk=lambda: desk, task_runner=runner, clock=Clock())


def add_candidate(service: RunService, candidate_id: str, recipe="frame-census", priority=None, status="READY",
                  date_obs="2026-11-20T21:00:00", calibration: tuple[str, ...] | None = None, observe_frames=1,
                  proposal="pid_1_23") -> Candidate:
    """A candidate with its frames; ``calibration``: its dark and gain OPs (shared when given twice)."""
    calibration = calibration or (f"{candidate_id}_dark",)
    candidate = Candidate(candidate_id, proposal, "VBI", f"{candidate_id}_obs", list(calibration),
                          recipe=recipe, priority=priority, status=status)
    service.store.candidates[candidate_id] = candidate
    ops = [(candidate.observe_op, "observe", observe_frames)] + [(op, op.rsplit("_", 1)[-1], 1) for op in calibration]
    for op_id, task_type, count in ops:
        if op_id in service.store.ops:
            continue
        service.store.ops[op_id] = OpProgress(op_id, count, count, T0, task_type, proposal)
        for index in range(count):
            service.store.frames.append(FrameRef(f"{op_id}-f{index}", op_id, task_type, date_obs, "ingest",
                                                 f"raw/{op_id}/f{index}.fits", "v1", "etag", 2880, proposal))
    return candidate


def test_planning_twice_gives_one_instance_and_one_run_with_its_documents():
    # Given a READY candidate
    service = make_service()
    candidate = add_candidate(service, "c1")
    # When it is discovered and planned twice (readiness signalled twice, two submitters)
    inserted, again = service.discover(candidate), service.discover(candidate)
    first, second = service.submit(), service.submit()
    # Then one instance and one run exist, and the candidate is PLANNED naming the instance
    [instance_id] = inserted
    assert again == [] and list(service.store.instances) == [instance_id]
    assert len(first.planned) == 1 and second.planned == [] and list(service.store.runs) == first.planned
    assert service.store.candidates["c1"].status == "PLANNED" and service.store.candidates["c1"].instance_id == instance_id
    # And the run document and input dataset list every frame with its role and the parameters of the observation date
    work = service.documents.buckets["work"]
    dataset = work[layout.input_dataset_key(instance_id)]
    assert sorted((f["op_id"], f["role"]) for f in dataset["frames"]) == [("c1_dark", "calibration"), ("c1_obs", "observe")]
    assert dataset["parameters"] == {"saturation_level": 62000}
    document = work[layout.run_document_key(first.planned[0])]
    assert document["input_dataset"]["key"] == layout.input_dataset_key(instance_id)
    assert document["recipe_definition"]["name"] == "frame-census"


def test_a_candidate_without_an_applicable_recipe_is_held_with_the_reason():
    # Given a READY candidate naming a recipe that does not exist
    service = make_service()
    add_candidate(service, "c1", recipe="no-such-recipe")
    # When the submitter runs
    report = service.submit()
    # Then the candidate is HELD, says why, and no run exists
    assert report.held == ["c1"] and not service.store.runs
    assert "no recipe 'no-such-recipe'" in service.store.candidates["c1"].held_reason


def test_a_candidate_naming_another_proposal_than_its_frames_is_held_with_a_review_ticket():
    # Given a READY candidate naming pid_9_99, whose observe frames belong to pid_1_23 (their ID___013)
    service = make_service()
    candidate = add_candidate(service, "c1")
    candidate.proposal_id = "pid_9_99"
    # When the submitter runs (twice: readiness is signalled at least once)
    report, again = service.submit(), service.submit()
    # Then the candidate is HELD saying whose frames they are, nothing is planned, run or notified
    held = service.store.candidates["c1"]
    assert report.held == ["c1"] and held.status == "HELD"
    assert "names proposal pid_9_99" in held.held_reason and "belong to pid_1_23" in held.held_reason
    assert not service.store.instances and not service.store.runs and not service.notifier.pi
    # And one review ticket says what to do
    [ticket] = service.store.tickets.values()
    assert ticket.kind == "review:proposal" and ticket.candidate_id == "c1" and "new candidate id" in ticket.suggested_action
    assert again.held == []


def test_runs_start_by_priority_within_the_slots_and_the_rest_say_why_they_wait():
    # Given three READY candidates with priorities 1, 9 and 5 and one slot per resource class
    service = make_service(capacity=1)
    for name, priority in (("low", 1), ("high", 9), ("mid", 5)):
        add_candidate(service, name, priority=priority)
    # When the submitter runs
    report = service.submit()
    # Then the highest priority run started, and the pass read no further into the queue its slots had filled
    started = service.store.runs[report.started[0]]
    assert len(report.started) == 1 and started.candidate_id == "high" and started.status == "SUBMITTED"
    assert report.waiting == {} and service.store.queued_reads == 1
    # And the others, listed, say which slots are full: shown from the slots, not written to each run
    waiting = Queries(FakeReads(service.store)).run_rows("READY")
    assert [row["candidate_id"] for row in waiting] == ["mid", "low"]
    assert all(row["waiting_reason"].startswith("waiting for a run slot: default 1/1") for row in waiting)
    assert all(service.store.runs[row["run_id"]].waiting_reason is None for row in waiting)
    # When the first run finishes, the next by priority starts
    service.start_run(started.run_id, "arn:execution")
    service.finish_run(started.run_id)
    nxt = service.submit()
    assert [service.store.runs[r].candidate_id for r in nxt.started] == ["mid"]
    assert service.store.slots["default"] == set(nxt.started)


def _queued(service: RunService, count: int) -> list:
    """``count`` READY runs, queued while submission was paused."""
    for index in range(count):
        add_candidate(service, f"c{index:02d}")
    service.pause("fill the queue")
    service.submit()
    service.resume()
    service.store.queued_reads = 0
    return service.store.runs_with_status("READY")


def test_a_pass_that_fills_every_slot_reads_no_further_into_the_queue():
    # Given 40 READY runs queued and one slot per resource class, each slot taken by a run already going
    service = make_service(capacity=1)
    first = _queued(service, 40)[0]
    service.store.slots = {"default": {"going-1"}, "high-memory": {"going-2"}, "multi-core": {"going-3"}}
    # When a submitter pass runs
    report = service.submit()
    # Then it started nothing and read no READY run: none could start
    assert report.started == [] and service.store.queued_reads == 0
    # And with the slots it needs free, it starts the first in the queue and stops reading once they are full
    for resource_class in first.resource_classes:
        service.store.slots[resource_class] = set()
    service.store.queued_reads = 0
    assert service.submit().started == [first.run_id] and service.store.queued_reads == 1


def test_a_run_whose_slots_are_free_starts_past_a_queue_whose_slots_are_full_without_reading_it():
    # Given 30 queued runs needing the multi-core slot, which a run already going holds
    service = make_service(capacity=1)
    queued = _queued(service, 31)
    service.store.slots = {"multi-core": {"going-1"}}
    # And the last in the queue needs only a high-memory slot, which is free
    last = queued[-1]
    service.store.runs[last.run_id].resource_classes = ["high-memory"]
    # When a submitter pass runs
    report = service.submit()
    # Then that run started, the only READY run the pass read; no reason was written to the 30 others
    assert report.started == [last.run_id] and service.store.queued_reads == 1
    assert not any(run.waiting_reason for run in service.store.runs_with_status("READY"))
    # And each of them, listed, says the multi-core slot is full
    rows = Queries(FakeReads(service.store)).run_rows("READY")
    assert len(rows) == 30 and {row["waiting_reason"] for row in rows} == {"waiting for a run slot: multi-core 1/1 in use"}


def test_an_instance_waiting_for_an_upstream_is_read_again_only_when_the_upstream_moves():
    # Given a night's calibration, science and summary instances, planned once (science and summary wait)
    service = make_service(capacity=4)
    add_candidate(service, "c1", recipe=None, calibration=("night_dark", "night_gain"))
    service.submit()
    while service.store.due:
        service.submit()
    # When passes run and nothing moves
    reads = service.store.due_reads
    service.submit(), service.submit()
    # Then nothing is due: each pass read the (empty) due index alone
    assert service.store.due == {} and service.store.due_reads == reads + 2
    # When the calibration's run fails (its instance moves to ERROR), its users are due once, and say why they wait
    [calibration_run] = [r for r in service.store.runs.values() if r.recipe == "vbi-calibration"]
    service.start_run(calibration_run.run_id, "arn")
    service.fail_run(calibration_run.run_id, {"Error": "States.TaskFailed"})
    [science] = [i for i in service.store.instances.values() if i.recipe == "vbi-l1"]
    assert set(service.store.due) == {science.instance_id}
    service.submit()
    assert "vbi-calibration: ERROR" in service.store.instances[science.instance_id].state_reason


def test_an_execution_that_cannot_start_gives_its_slots_back_and_stays_ready():
    # Given a READY run and Step Functions unavailable
    service = make_service(executions=FakeExecutions(failing=True))
    add_candidate(service, "c1")
    # When the submitter tries to start it
    with pytest.raises(TransientError):
        service.submit()
    # Then the run is READY again and holds no slot, so the next call picks it up
    [run] = service.store.runs.values()
    assert run.status == "READY" and not any(service.store.slots.values())


def test_paused_submission_plans_but_starts_nothing_until_resumed():
    service = make_service()
    add_candidate(service, "c1")
    # Given submission is paused
    service.pause("maintenance")
    # When the submitter runs, the run is planned but not started
    report = service.submit()
    assert report.paused and report.planned and not report.started
    # When submission resumes, the submitter is nudged and starts it
    service.resume()
    assert service.notifier.nudges == ["resumed"] and service.submit().started == report.planned


def test_a_failure_opens_one_ticket_per_attempt_however_often_it_is_delivered():
    # Given a run that failed in a Batch job with exit code 2
    service = make_service()
    add_candidate(service, "c1")
    run_id = service.submit().started[0]
    service.start_run(run_id, "arn:execution")
    cause = json.dumps({"JobName": f"{run_id}-dark_level", "Status": "FAILED", "StatusReason": "Essential container exited",
                        "Container": {"ExitCode": 2, "LogStreamName": "default/x/1"}})
    error = {"Error": "States.TaskFailed", "Cause": cause}
    # When the failure is delivered twice
    first = service.open_ticket_for_failure(run_id, error, "arn:execution")
    again = service.open_ticket_for_failure(run_id, error, "arn:execution")
    service.fail_run(run_id, error)
    # Then one ticket, published once, names the task, exit code, kind and what to do
    assert first == {"ticket_id": f"TKT-{run_id}-1", "created": True} and again["created"] is False
    ticket = service.store.tickets[first["ticket_id"]]
    assert (ticket.failed_task, ticket.exit_code, ticket.kind) == ("dark_level", 2, "failure:configuration")
    assert ticket.log_excerpt == "last lines of default/x/1" and f"runs retry {run_id}" in ticket.suggested_action
    assert service.notifier.operators == [ticket.ticket_id]
    assert service.store.runs[run_id].status == "FAILED" and not any(service.store.slots.values())
    # And `runs show` gets the task's own last log lines and what to do
    failure = service.failure(run_id)
    assert failure["failed_task"] == "dark_level" and failure["task_log"] == ["last lines of default/x/1"]
    assert failure["suggested_action"] == ticket.suggested_action
    # When it is redriven, a redrive (the same configuration again) is refused with the command that helps
    with pytest.raises(NotAllowed, match=rf"failed on its configuration .*runs retry {run_id} --set"):
        service.redrive(run_id)


def test_a_redriven_failure_of_the_same_cause_adds_to_its_ticket_and_another_cause_gets_its_own():
    # Given a run whose Batch job failed with exit code 3 (infrastructure), and its ticket resolved
    service = make_service()
    add_candidate(service, "c1")
    run_id = service.submit().started[0]
    service.start_run(run_id, "arn:execution")

    def job_failed(task: str) -> dict:
        cause = json.dumps({"JobName": f"{run_id}-{task}", "Status": "FAILED", "Container": {"ExitCode": 3}})
        return {"Error": "States.TaskFailed", "Cause": cause}

    assert service.open_ticket_for_failure(run_id, job_failed("summary"), None)["ticket_id"] == f"TKT-{run_id}-1"
    service.fail_run(run_id, job_failed("summary"))
    service.resolve_ticket(f"TKT-{run_id}-1", "the outage is over", "ana")

    def redriven_and_failed(task: str) -> dict:
        service.redrive(run_id)
        service.submit()
        service.start_run(run_id, f"arn:execution-{len(service.executions.started)}")
        opened = service.open_ticket_for_failure(run_id, job_failed(task), None)
        service.fail_run(run_id, job_failed(task))
        return opened

    # When it is redriven and fails again of the same cause
    again = redriven_and_failed("summary")
    # Then no second ticket: the first is reopened, naming both attempts, and `runs show` finds it
    assert again == {"ticket_id": f"TKT-{run_id}-1", "created": False}
    ticket = service.store.tickets[f"TKT-{run_id}-1"]
    assert (ticket.attempts, ticket.status) == ([1, 2], "OPEN") and len(service.store.tickets) == 1
    assert service.failure(run_id)["ticket_id"] == f"TKT-{run_id}-1"
    assert service.notifier.operators == [f"TKT-{run_id}-1"]  # the operators were told once
    # When it is redriven again and fails of another cause, that attempt gets its own ticket
    other = redriven_and_failed("dark_level")
    assert other == {"ticket_id": f"TKT-{run_id}-3", "created": True}
    assert service.failure(run_id)["failed_task"] == "dark_level"
    assert service.executions.started == [run_id, f"{run_id}-redrive-1", f"{run_id}-redrive-2"]


def test_retry_makes_one_linked_run_and_refuses_values_outside_the_valid_ones():
    service = make_service()
    add_candidate(service, "c1")
    run_id = service.submit().started[0]
    service.start_run(run_id, "arn")
    service.fail_run(run_id, {"Error": "States.TaskFailed"})
    # When the operator retries twice with the same fix
    first = service.retry(run_id, {"saturation_level": "61000"})
    second = service.retry(run_id, {"saturation_level": "61000"})
    # Then one new READY run, linked, with the override applied
    assert first.run_id == second.run_id and first.retry_of == run_id and first.status == "READY"
    assert first.configuration["parameters"]["saturation_level"] == 61000
    # And a value outside the valid values, or a READY run, is refused
    with pytest.raises(RecipeError, match="above the maximum"):
        service.retry(run_id, {"saturation_level": "70000"})
    with pytest.raises(NotAllowed, match="is READY"):
        service.retry(first.run_id, {})


def test_catalog_records_the_dataset_and_a_new_version_waits_for_a_data_quality_decision():
    # Given a run whose task recorded one product
    service = make_service()
    add_candidate(service, "c1")
    run_id = service.submit().started[0]
    service.start_run(run_id, "arn")

    def record_outputs(run):
        key = layout.task_record_key(run, "summary")
        service.documents.buckets["work"][key] = {
            "task": "summary", "code_version": "0.1.0", "libraries": {}, "manual": False, "finished_at": "t",
            "outputs": [{"name": "census.json", "key": f"task-outputs/d-{run}/census.json", "sha256": "ab",
                         "size": 2, "tags": ["product"]}]}

    record_outputs(run_id)
    # When it is catalogued and finished
    result = service.catalog(run_id)
    service.finish_run(run_id)
    # Then the dataset holds the product under <proposal>/<dataset>/ with SHA256SUMS and provenance
    dataset = service.store.datasets[result["dataset_id"]]
    assert [f["name"] for f in dataset.files] == ["census.json"] and dataset.status == "ACTIVE"
    assert service.documents.buckets["data"][dataset.prefix + "SHA256SUMS"] == "ab  census.json\n"
    assert json.loads(result["message"])["dataset_id"] == dataset.dataset_id
    # When the succeeded run is reprocessed and catalogued
    again = service.retry(run_id, {"saturation_level": "61000"})
    service.submit()
    service.start_run(again.run_id, "arn-2")
    record_outputs(again.run_id)
    newer = service.catalog(again.run_id)["dataset_id"]
    # Then both versions stay ACTIVE and one review ticket asks for a decision
    assert {d.status for d in service.store.datasets.values()} == {"ACTIVE"}
    ticket = service.store.tickets[f"TKT-{newer}-decision"]
    assert ticket.kind == "review:decision" and f"--deprecate {dataset.dataset_id}" in ticket.suggested_action
    # And it links the comparison of the two, the older as A: the command and the monitor's page
    assert f"`obsflow datasets compare {dataset.dataset_id} {newer}`" in ticket.suggested_action
    assert ticket.links == {f"compare with {dataset.dataset_id}": f"/compare/{dataset.dataset_id}/{newer}"}
    # When data quality deprecates the old version (twice: the second changes nothing)
    for _ in range(2):
        service.decide(newer, "deprecate", "better flat field", "dq-scientist", dataset.dataset_id)
    # Then the old one is DEPRECATED, superseded by the new, with who and why; the ticket is resolved
    old = service.store.datasets[dataset.dataset_id]
    assert (old.status, old.superseded_by) == ("DEPRECATED", newer)
    assert [(d["decision"], d["by"], d["reason"]) for d in old.decisions] == [
        ("deprecate", "dq-scientist", "better flat field")]
    assert service.store.tickets[ticket.ticket_id].status == "RESOLVED"
    # And a dataset of another product, a missing reason or a deprecated "new" version is refused
    with pytest.raises(ValueError, match="needs a reason"):
        service.decide(newer, "keep-both", " ", "dq-scientist")
    with pytest.raises(NotAllowed, match="only an ACTIVE dataset"):
        service.decide(dataset.dataset_id, "deprecate", "oops", "dq", newer)
    # And keeping both after one replaced the other contradicts it: refused, saying which decision stands
    with pytest.raises(NotAllowed, match=f"already replaced {dataset.dataset_id} .*keeping both contradicts it"):
        service.decide(newer, "keep-both", "changed my mind", "dq-scientist")


def test_rejecting_the_newest_dataset_sends_its_consumers_back_to_the_previous_one():
    # Given an instance with two ACTIVE datasets, the newer one current
    service = make_service()
    add_candidate(service, "c1")
    first = service.submit().started[0]
    instance_id = service.store.runs[first].instance_id
    for run_id, at in ((first, 1), ("run-b", 2)):
        service.store.datasets[f"ds-{at}"] = Dataset(
            f"ds-{at}", run_id, "pid_1_23", "c1", "frame-census@1.0.0", "data", "p/", "prod-1", f"v{at}", 0, [], {},
            dt.datetime(2026, 11, 20, at, tzinfo=dt.timezone.utc), instance_id=instance_id)
    service.store.instances[instance_id].dataset_id = "ds-2"
    # When data quality rejects the newer one
    rejected = service.decide("ds-2", "reject", "striping in every frame", "dq")
    # Then it is REJECTED and the instance's current dataset is the older one again
    assert rejected.status == "REJECTED" and rejected.decisions[0]["by"] == "dq"
    assert service.store.instances[instance_id].dataset_id == "ds-1"




def test_a_manual_recipe_waits_with_one_ticket_and_a_failed_manual_task_fails_the_run():
    # Given a candidate of a recipe that is manual by definition
    service = make_service(runner=FakeTaskRunner(failing_task="observe_stats"))
    add_candidate(service, "c1", recipe="frame-census-manual")
    # When the submitter runs twice
    first, second = service.submit(), service.submit()
    # Then the run is MANUAL, not started, with one ticket
    [run_id] = first.manual
    assert not second.manual and not service.executions.started
    assert service.store.runs[run_id].status == "MANUAL"
    assert list(service.store.tickets) == [f"TKT-{run_id}-manual"]
    # When the operator executes it and a task fails, the run is FAILED with a configuration ticket
    with pytest.raises(ManualRunFailed, match="observe_stats failed \\(exit code 2\\)"):
        service.execute_manually(run_id, "checked by eye", "ana", echo=lambda _: None)
    assert service.store.runs[run_id].status == "FAILED"
    assert service.store.tickets[f"TKT-{run_id}-1"].kind == "failure:configuration"


def test_the_backstop_releases_only_old_incomplete_candidates_once_with_a_review_ticket():
    service = make_service()
    candidate = add_candidate(service, "late", status="WAITING")
    first_frame = T0 - dt.timedelta(days=20)
    service.store.ops = {candidate.observe_op: OpProgress(candidate.observe_op, 3, 3, first_frame),
                         "late_dark": OpProgress("late_dark", None, 2, first_frame)}
    add_candidate(service, "fresh", status="WAITING")
    service.store.ops["fresh_obs"] = OpProgress("fresh_obs", None, 1, T0)
    # When the backstop runs twice
    first, again = service.backstop(T0), service.backstop(T0)
    # Then only the old candidate is released, once, with what it lacked and one review ticket
    assert first.released == ["late"] and again.released == []
    assert service.store.candidates["late"].status == "READY"
    assert service.store.candidates["late"].ready_detail["missing"] == {"late_dark": "2 frame(s) received, no manifest yet"}
    [ticket] = service.store.tickets.values()
    assert ticket.kind == "backstop" and "13-day backstop" in ticket.summary and "no manifest yet" in ticket.summary
    assert service.store.candidates["fresh"].status == "WAITING"


class BrokenDesk:
    def create_request(self, ticket):
        raise OSError("connection refused")


def test_a_service_desk_outage_keeps_the_ticket_and_records_why():
    service = make_service(desk=BrokenDesk())
    ticket = Ticket("TKT-x-1", kind="failure:science", summary="x failed", created_at=T0)
    assert service.file_ticket(ticket) and not service.file_ticket(ticket)
    assert service.store.tickets["TKT-x-1"].external_error == "OSError: connection refused"
    assert service.notifier.operators == ["TKT-x-1"]


def test_an_operator_cancels_a_run_with_who_and_why_and_nothing_of_it_is_catalogued():
    # Given a running run and a queued one
    service = make_service(capacity=1)
    add_candidate(service, "c1")
    add_candidate(service, "c2")
    running = service.submit().started[0]
    service.start_run(running, "arn-1")
    [queued] = [r.run_id for r in service.store.runs.values() if r.status == "READY"]
    # When the running one is cancelled (twice: the second stops what may be left and changes nothing else)
    for _ in range(2):
        cancelled = service.cancel(running, "ana", "wrong calibration set")
    # Then it is CANCELLED with who and why, its execution and jobs were stopped, its slot is free
    assert cancelled.status == "CANCELLED" and cancelled.waiting_reason == "cancelled by ana: wrong calibration set"
    assert service.executions.stopped[0] == (running, "cancelled by ana: wrong calibration set")
    assert service.submit().started == [queued]
    # And its instance says so; a late failure opens no ticket and nothing is catalogued
    instance = service.store.instances[cancelled.instance_id]
    assert instance.state == "NEVER_EXECUTED" and "cancelled by ana" in instance.state_reason
    assert service.open_ticket_for_failure(running, {"Error": "States.TaskFailed"}, "arn-1")["created"] is False
    with pytest.raises(NotAllowed, match="was cancelled: nothing of it is catalogued"):
        service.catalog(running)
    assert service.finish_run(running) and service.store.runs[running].status == "CANCELLED"
    # And a reason is required, and a SUCCEEDED run cannot be cancelled
    with pytest.raises(ValueError, match="say why"):
        service.cancel(queued, "ana", " ")


def test_a_queued_runs_priority_changes_the_submitters_order_with_who_and_why():
    # Given three queued runs of equal priority, one slot
    service = make_service(capacity=1)
    for candidate_id in ("c1", "c2", "c3"):
        add_candidate(service, candidate_id, priority=10)
    service.pause()
    service.submit()
    queued = [r.run_id for r in service.store.runs_with_status("READY")]
    # When the last one is raised above the others
    raised = service.prioritize(queued[-1], 50, "ana", "the PI's deadline")
    # Then it starts first, and its history says who changed what and why
    assert raised.priority == 50 and raised.history[-1].detail == "priority 10 -> 50 by ana: the PI's deadline"
    service.resume()
    assert service.submit().started == [queued[-1]]
    # And only a queued run is re-prioritized, within 0-99
    with pytest.raises(NotAllowed, match="only a queued"):
        service.prioritize(queued[-1], 60, "ana", "again")
    with pytest.raises(ValueError, match="0-99"):
        service.prioritize(queued[0], 100, "ana", "too much")


def test_a_frame_marked_bad_is_left_out_of_every_input_dataset_planned_after_and_the_dataset_says_so():
    # Given a candidate of three observe frames, one found bad after ingest
    service = make_service()
    add_candidate(service, "c1", observe_frames=3)
    frames = sorted(f.file_id for f in service.store.frames_of_ops(["c1_obs"]))
    # When it is marked bad (twice: the second changes nothing) and the candidate is planned
    assert service.mark_bad_frames([frames[1]], "dq", "satellite trail") == 1
    assert service.mark_bad_frames([frames[1]], "dq", "satellite trail") == 0
    [run_id] = service.submit().planned
    # Then its input dataset leaves it out, and says so
    dataset = service.documents.buckets["work"][service.store.runs[run_id].input_dataset_key]
    assert frames[1] not in [f["file_id"] for f in dataset["frames"]]
    assert dataset["bad_frames_left_out"] == [frames[1]]
    # And an id that is no frame, or no reason, is refused
    with pytest.raises(NotFound, match="no frame in the inventory: nope"):
        service.mark_bad_frames(["nope"], "dq", "why")
    with pytest.raises(ValueError, match="say why"):
        service.mark_bad_frames([frames[0]], "dq", " ")


def test_a_frame_unmarked_is_used_again_by_what_is_planned_after_and_its_marks_are_kept():
    # Given a candidate planned while its dark was marked bad
    service = make_service()
    add_candidate(service, "c1", calibration=("shared_dark",))
    service.mark_bad_frames(["shared_dark-f0"], "dq", "shutter fault")
    [first] = service.submit().planned
    # When the mark is taken back (twice: the second finds nothing marked) and a candidate with the same dark is planned
    assert service.unmark_bad_frames(["shared_dark-f0"], "ana", "the fault was in the log, not the frame") == 1
    assert service.unmark_bad_frames(["shared_dark-f0"], "ana", "again") == 0
    add_candidate(service, "c2", calibration=("shared_dark",))
    planned_after = [r for r in service.submit().planned if r != first]
    # Then the run planned before left it out, the one planned after uses it again
    work = service.documents.buckets["work"]
    assert work[service.store.runs[first].input_dataset_key]["bad_frames_left_out"] == ["shared_dark-f0"]
    [after] = [work[service.store.runs[r].input_dataset_key] for r in planned_after]
    assert "shared_dark-f0" in [f["file_id"] for f in after["frames"]] and "bad_frames_left_out" not in after
    # And the mark is kept, withdrawn with who and why; marked again, the withdrawn mark stays on record
    statement = service.store.tags["bad-frame", "shared_dark-f0"]
    assert (statement["by"], statement["withdrawn"]["by"], statement["withdrawn"]["reason"]) == (
        "dq", "ana", "the fault was in the log, not the frame")
    assert service.mark_bad_frames(["shared_dark-f0"], "dq", "it is bad after all") == 1
    assert [e["reason"] for e in service.store.tags["bad-frame", "shared_dark-f0"]["earlier"]] == ["shutter fault"]
    with pytest.raises(ValueError, match="say why the frames are no longer bad"):
        service.unmark_bad_frames(["shared_dark-f0"], "ana", "")


def exit_failure(run_id: str, task: str, exit_code: int) -> dict:
    cause = json.dumps({"JobName": f"{run_id}-{task}", "Status": "FAILED", "Container": {"ExitCode": exit_code}})
    return {"Error": "States.TaskFailed", "Cause": cause}


def failed_once(service, run_id: str, exit_code: int) -> None:
    """The run's summary task fails as the state machine delivers it: ticket first, then FailRun."""
    service.open_ticket_for_failure(run_id, exit_failure(run_id, "summary", exit_code), None)
    service.fail_run(run_id, exit_failure(run_id, "summary", exit_code))


def test_a_failure_of_infrastructure_is_redriven_by_itself_and_errs_only_once_it_persists():
    # Given a stage that redrives a failure of infrastructure once by itself, and a running run
    service = make_service(capacity=4, auto_redrives=1)
    add_candidate(service, "c1")
    [run_id] = service.submit().started
    service.start_run(run_id, "arn:execution")
    # When its summary task is killed (exit code 3: infrastructure)
    failed_once(service, run_id, 3)
    # Then it is READY again (redrive 1), its instance queued, not ERROR, and its ticket resolved saying why
    run = service.store.runs[run_id]
    assert (run.status, run.redrives) == ("READY", 1)
    assert service.store.instances[run.instance_id].state == "QUEUED"
    ticket = service.store.tickets[f"TKT-{run_id}-1"]
    assert (ticket.status, ticket.resolved_by) == ("RESOLVED", "obsflow") and "1 of 1" in ticket.resolution
    # When it is started again and fails of the same cause
    assert service.submit().started == [run_id]
    service.start_run(run_id, "arn:execution-2")
    failed_once(service, run_id, 3)
    # Then the failure is expected to persist: FAILED, its instance ERROR, its one ticket reopened for a person
    assert service.store.runs[run_id].status == "FAILED"
    assert service.store.instances[run.instance_id].state == "ERROR"
    ticket = service.store.tickets[f"TKT-{run_id}-1"]
    assert (ticket.status, ticket.attempts) == ("OPEN", [1, 2]) and len(service.store.tickets) == 1


def test_a_failure_of_configuration_is_never_redriven_by_itself():
    # Given the same stage, When a run fails on its configuration (exit code 2)
    service = make_service(capacity=4, auto_redrives=1)
    add_candidate(service, "c1")
    [run_id] = service.submit().started
    service.start_run(run_id, "arn:execution")
    failed_once(service, run_id, 2)
    # Then it stays FAILED, its instance ERROR at once: the same run would meet the same failure
    run = service.store.runs[run_id]
    assert (run.status, run.redrives) == ("FAILED", 0)
    assert service.store.instances[run.instance_id].state == "ERROR"


class Ticking:
    """Seconds elapsed: one more each time it is read."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_a_pass_stops_at_its_time_budget_and_nudges_the_next_which_goes_on_where_it_stopped():
    # Given 8 READY candidates, and a submitter pass budget of 6 s on a clock that ticks a second each reading
    service = make_service(capacity=20, submit_pass_budget_s=6)
    service.elapsed = Ticking()
    service.pause("the backlog is planned first")
    for index in range(8):
        add_candidate(service, f"c{index}")
    # When one pass runs
    first = service.submit()
    # Then it discovered some of the candidates in half its budget, planned what it found, and stopped
    assert 0 < len(first.discovered) < 8 and first.cut_short == ["discovery"] and len(first.planned) == len(first.discovered)
    still_ready = [c for c in service.store.candidates.values() if c.status == "READY"]
    assert len(still_ready) == 8 - len(first.discovered)
    # And it nudged the next pass, saying why
    assert service.notifier.nudges == ["the last pass reached its 6 s budget in discovery"]
    # When passes run until one is not cut short
    passes = [first]
    while passes[-1].cut_short:
        passes.append(service.submit())
        assert len(passes) < 40
    # Then every candidate was discovered and every instance planned once, none twice
    assert sorted(c for p in passes for c in p.discovered) == sorted(service.store.instances)
    assert all(c.status != "READY" for c in service.store.candidates.values())
    planned = [r for p in passes for r in p.planned]
    assert len(planned) == len(set(planned)) == len(service.store.runs) == 8
    assert not service.store.instances_due_for_planning()


def test_a_pass_with_nothing_to_discover_gives_planning_the_whole_budget_and_stops_there_too():
    # Given 8 candidates already discovered (their instances marked due), and a pass budget of 6 s on a ticking clock
    service = make_service(capacity=20, submit_pass_budget_s=6)
    service.pause("the backlog is planned first")
    for index in range(8):
        service.discover(add_candidate(service, f"c{index}"))
    service.elapsed = Ticking()
    # When one pass runs
    report = service.submit()
    # Then it planned some instances past half its budget, left the rest marked due, and nudged the next pass
    assert report.cut_short == ["planning"] and 0 < len(report.planned) < 8
    assert len(list(service.store.instances_due_for_planning())) == 8 - len(report.planned)
    assert service.notifier.nudges == ["the last pass reached its 6 s budget in planning"]
