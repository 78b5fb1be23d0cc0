"""The processing catalogue on fakes: discovery rules, shared master calibrations, dependency waiting,
derived instance states, re-execution when an input changes, and shortest estimated work first."""

from __future__ import annotations

import pytest

from obsflow.runs import layout
from obsflow.runs.domain import Instance, Run, derive_instance_state
from tests.unit.fakes import fake_provenance
from tests.unit.test_run_service import T0, add_candidate, make_service

SHARED = ("night_dark", "night_gain")


def instance_by_recipe(service, recipe: str) -> list[Instance]:
    return sorted((service.store.instance(i) for i, inst in service.store.instances.items() if inst.recipe == recipe),
                  key=lambda i: i.created_at)


def complete(service, run_id: str, outputs=(("product.json", ("product",)),), duration_s=2.0, quality=None) -> str:
    """Run ``run_id`` to success as the state machine would: started, one task record, catalogued, finished.
    An output tagged ``quality`` holds ``quality`` (by default what the work bucket holds, else QC values every shipped
    gate passes)."""
    run = service.store.runs[run_id]
    service.start_run(run_id, f"arn:{run_id}")
    task = service.recipes.get(run.recipe, run.version).tasks[-1].name
    written = [{"name": name, "key": f"task-outputs/d-{run_id}-{task}/{name}", "sha256": name, "size": 100,
                "tags": list(tags)} for name, tags in outputs]
    for output in written:  # a quality JSON the caller wrote already stays
        if "quality" in output["tags"] and (quality is not None or output["key"] not in service.documents.buckets["work"]):
            service.documents.buckets["work"][output["key"]] = dict(PASSING_QC if quality is None else quality)
    service.documents.buckets["work"][layout.task_record_key(run_id, task)] = {
        "task": task, "code_version": "0.1.0", "libraries": {}, "manual": False, "finished_at": "t",
        "duration_s": duration_s, "outputs": written,
    }
    dataset_id = service.catalog(run_id)["dataset_id"]
    service.finish_run(run_id)
    return dataset_id


PASSING_QC = {"dark_median_6ms": 100.0, "dark_noise_6ms": 2.0, "gain_spread": 0.08, "bad_pixel_fraction": 0.002}
MASTERS = (("dark_6ms.fits", ("product", "dark")), ("gain.fits", ("product", "gain")),
           ("bad_pixels.fits", ("product", "bad-pixels")), ("calibration_quality.json", ("product", "quality")))


def test_two_candidates_of_a_night_share_one_calibration_then_two_science_runs_then_one_summary():
    # Given two READY VBI candidates of one night and proposal with the same calibration OPs (no recipe named)
    service = make_service(capacity=4)
    for name in ("c1", "c2"):
        add_candidate(service, name, recipe=None, calibration=SHARED)
    # When the submitter runs
    report = service.submit()
    # Then discovery inserted one calibration, two science and one night-summary instance, each once
    [calibration] = instance_by_recipe(service, "vbi-calibration")
    science = instance_by_recipe(service, "vbi-l1")
    [summary] = instance_by_recipe(service, "vbi-night-summary")
    assert len(report.discovered) == 4 and len(science) == 2
    assert calibration.candidate_ids == {"c1", "c2"} and summary.reference == "2026-11-20/pid_1_23"
    assert sorted((i.role, i.ref) for i in calibration.inputs) == [("dark", "night_dark"), ("gain", "night_gain")]
    assert all(("calibration", calibration.instance_id) in [(i.role, i.ref) for i in s.inputs] for s in science)
    assert sorted(i.ref for i in summary.inputs) == sorted(s.instance_id for s in science)
    # And every edge is indexed both ways: who uses the shared dark OP, who uses the calibration instance
    assert service.store.users_of("op:night_dark") == [calibration.instance_id]
    assert service.store.users_of(f"instance:{calibration.instance_id}") == sorted(s.instance_id for s in science)
    # And only the calibration runs; the others wait, and say for what
    [cal_run] = report.started
    assert service.store.runs[cal_run].instance_id == calibration.instance_id
    for waiting in science:
        assert waiting.state == "WAITING" and calibration.instance_id in waiting.state_reason
    assert service.store.instances[summary.instance_id].state == "WAITING"
    assert service.store.candidates["c1"].instance_id == science[0].instance_id

    # When the calibration succeeds, the two science instances are planned on its dataset
    masters = complete(service, cal_run, MASTERS)
    assert service.store.datasets[masters].kind == "calibration"
    assert service.store.datasets[masters].prefix.startswith("calibrations/pid_1_23/")
    assert service.notifier.pi == []  # a calibration is not news for the PI
    second = service.submit()
    assert len(second.planned) == 2 and len(second.started) == 2
    document = service.documents.buckets["work"][service.store.runs[second.planned[0]].input_dataset_key]
    [upstream] = document["upstream"]
    assert upstream["dataset_id"] == masters and {f["name"] for f in upstream["files"]} == {n for n, _ in MASTERS}
    assert [f["role"] for f in document["frames"]] == ["observe"]
    assert service.store.instances[summary.instance_id].state == "WAITING"

    # When both science runs succeed, the summary is planned once over both science datasets
    datasets = sorted(complete(service, run_id) for run_id in second.started)
    third = service.submit()
    [summary_run] = third.planned
    summary_input = service.documents.buckets["work"][service.store.runs[summary_run].input_dataset_key]
    assert sorted(u["dataset_id"] for u in summary_input["upstream"]) == datasets and summary_input["frames"] == []
    complete(service, summary_run)
    assert {i.state for i in service.store.instances.values()} == {"SUCCEEDED"}
    assert service.submit().planned == []


def test_a_failing_calibration_gives_one_ticket_dependents_say_why_they_wait_and_a_retry_lets_them_proceed():
    service = make_service(capacity=4)
    for name in ("c1", "c2"):
        add_candidate(service, name, recipe=None, calibration=SHARED)
    [cal_run] = service.submit().started
    # When the calibration run fails (delivered twice)
    service.start_run(cal_run, "arn")
    error = {"Error": "States.TaskFailed", "Cause": '{"JobName": "%s-dark", "Container": {"ExitCode": 1}}' % cal_run}
    for _ in range(2):
        service.open_ticket_for_failure(cal_run, error, "arn")
    service.fail_run(cal_run, error)
    service.submit()
    # Then one ticket, the calibration is in ERROR and each science instance waits naming it and its state
    assert len(service.store.tickets) == 1
    [calibration] = instance_by_recipe(service, "vbi-calibration")
    assert calibration.state == "ERROR"
    for science in instance_by_recipe(service, "vbi-l1"):
        assert science.state == "WAITING" and f"{calibration.instance_id} (vbi-calibration: ERROR" in science.state_reason
    # When the operator retries the calibration and it succeeds, the science instances are planned
    retried = service.retry(cal_run, {"bad_pixel_high": "1.8"})
    [started] = service.submit().started
    assert started == retried.run_id
    complete(service, retried.run_id, MASTERS)
    assert len(service.submit().planned) == 2


def test_a_new_version_of_an_input_changes_nothing_downstream_until_data_quality_decides_then_a_ticket_plans_it():
    from obsflow.runs.campaigns import CampaignService

    # Given the whole graph of one candidate succeeded
    service = make_service(capacity=4)
    add_candidate(service, "c1", recipe=None, calibration=SHARED)
    complete(service, service.submit().started[0], MASTERS)
    science_run = service.submit().started[0]
    old_science = complete(service, science_run)
    summary_dataset = complete(service, service.submit().started[0])
    [summary] = instance_by_recipe(service, "vbi-night-summary")
    # When the science run is retried with another value and its new dataset catalogued
    again = service.retry(science_run, {"movie_fps": "4"})
    service.submit()
    new_science = complete(service, again.run_id)
    # Then the summary stays as it was (nothing re-runs before data quality has decided), and a decision is asked for
    assert service.store.instance(summary.instance_id).state == "SUCCEEDED" and service.submit().planned == []
    assert service.store.ticket(layout.decision_ticket_id(new_science)).kind == "review:decision"
    # When data quality deprecates the old science dataset in favour of the new one (twice: a repeated decision)
    for _ in range(2):
        service.decide(new_science, "deprecate", "4 fps reads better", "dq", old_id=old_science)
    # Then the summary made from it is marked as built on a superseded input, and one review ticket gives the plan
    marked = service.store.datasets[summary_dataset]
    assert [(s["dataset_id"], s["status"], s["replaced_by"], s["by"]) for s in marked.superseded_inputs] == [
        (old_science, "DEPRECATED", new_science, "dq")]
    [ticket] = [t for t in service.store.tickets.values() if t.kind == "review:superseded"]
    assert summary_dataset in ticket.summary and "obsflow reprocess start plan-" in ticket.suggested_action
    plan_id = ticket.suggested_action.split("reprocess start ")[1].split()[0]
    assert service.submit().planned == []  # still nothing runs by itself
    # When the plan is started, Then the summary's copy is made from the new science dataset, in one more instance
    CampaignService(service, fake_provenance(service)).start_plan(plan_id, "summary-4fps", "dq", "the summary on the kept version")
    [rerun] = service.submit().started
    document = service.documents.buckets["work"][service.store.runs[rerun].input_dataset_key]
    assert [u["dataset_id"] for u in document["upstream"]] == [new_science]
    complete(service, rerun)
    assert len(instance_by_recipe(service, "vbi-night-summary")) == 2


def test_a_later_candidate_of_the_same_night_adds_an_input_to_the_summary_and_queues_it_again():
    service = make_service(capacity=4)
    add_candidate(service, "c1", recipe=None, calibration=SHARED)
    complete(service, service.submit().started[0], MASTERS)
    complete(service, service.submit().started[0])
    complete(service, service.submit().started[0])
    [summary] = instance_by_recipe(service, "vbi-night-summary")
    # When a second candidate of the same night becomes READY
    add_candidate(service, "c2", recipe=None, calibration=SHARED)
    report = service.submit()
    # Then it gets its own science instance on the shared calibration, and the one summary has a new input
    assert [service.store.instances[i].recipe for i in report.discovered] == ["vbi-l1"]
    summary = service.store.instance(summary.instance_id)
    assert summary.state == "QUEUED_FOR_REEXECUTION" and "new input(s): science instance:" in summary.state_reason
    assert len(summary.upstream_ids()) == 2 and len(instance_by_recipe(service, "vbi-night-summary")) == 1


def test_the_submitter_starts_the_shortest_estimated_work_first_within_a_priority():
    # Given two READY candidates of one priority, one with 50 observe frames and one with 2
    service = make_service(capacity=1)
    add_candidate(service, "big", observe_frames=50, priority=5)
    add_candidate(service, "small", observe_frames=2, priority=5)
    # When the submitter runs with one slot
    report = service.submit()
    # Then the smaller estimated workload starts first; each run carries its estimate
    assert [service.store.runs[r].candidate_id for r in report.started] == ["small"]
    estimates = {r.candidate_id: r.estimated_cpu_s for r in service.store.runs.values()}
    assert estimates["small"] < estimates["big"]


def test_estimates_come_from_the_recipe_until_runs_have_been_measured():
    service = make_service(capacity=4)
    add_candidate(service, "first", observe_frames=4)
    [run_id] = service.submit().started
    first = service.store.instances[service.store.runs[run_id].instance_id]
    recipe = service.recipes.get("frame-census")
    assert first.estimated_cpu_s == recipe.estimates.workload(5)[0]
    # When that run succeeds having taken 2 s on a default task (1 vCPU) for its 5 input frames
    complete(service, run_id, duration_s=2.0)
    assert service.store.measurements["frame-census@1.0.0"] == {"runs": 1, "frames": 5, "cpu_seconds": 2.0,
                                                               "output_bytes": 100}
    # Then the next instance's estimate scales the measurement: 10 inputs -> 4 CPU-seconds, 200 bytes
    add_candidate(service, "second", observe_frames=9)
    [planned] = service.submit().planned
    assert service.store.instances[service.store.runs[planned].instance_id].estimated_cpu_s == pytest.approx(4.0)
    assert service.store.instances[service.store.runs[planned].instance_id].estimated_bytes == 200


@pytest.mark.parametrize("statuses, expected", [
    ([], "NEVER_EXECUTED"),
    (["READY"], "QUEUED"),
    (["RUNNING"], "RUNNING"),
    (["SUCCEEDED"], "SUCCEEDED"),
    (["FAILED"], "ERROR"),
    (["SUCCEEDED", "READY"], "QUEUED_FOR_REEXECUTION"),
    (["FAILED", "READY"], "QUEUED"),
    (["SUCCEEDED", "FAILED"], "SUCCEEDED"),  # a failed re-execution keeps the earlier success visible
    (["SKIPPED"], "NEVER_EXECUTED"),
    (["SUCCEEDED", "CANCELLED"], "SUCCEEDED"),
])
def test_the_instance_state_is_derived_from_its_runs(statuses, expected):
    instance = Instance("ri-1", "c1", "p", "r", "1.0.0", "2026-11-20", T0)
    runs = [Run(f"run-{i}", "ri-1", "c1", "p", "r", "1.0.0", 0, ["default"], {}, T0.replace(minute=i), status=s)
            for i, s in enumerate(statuses)]
    assert derive_instance_state(instance, runs)[0] == expected
    assert derive_instance_state(instance, [], "waiting for ri-0") == ("WAITING", "waiting for ri-0")


def test_a_stale_listing_from_another_submitter_plans_no_second_run():
    # Given an instance listed by one submitter before another planned it
    service = make_service(capacity=4)
    add_candidate(service, "c1")
    service.discover(service.store.candidate("c1"))
    [stale] = service.store.instances_with_state("NEVER_EXECUTED")
    first = service.plan_instance(stale)
    # When the first submitter plans it from its stale listing
    second = service.plan_instance(stale)
    # Then there is still one run
    assert first and second is None and len(service.store.runs) == 1


def test_an_instance_of_chosen_frames_lists_them_with_their_roles_and_each_frame_is_indexed():
    from obsflow.errors import NotFound
    from obsflow.runs.domain import InstanceInput

    # Given an instance whose inputs are two chosen frames (an ID set), not whole OPs
    service = make_service(capacity=4)
    add_candidate(service, "c1", observe_frames=3)
    inputs = [InstanceInput("observe", "frame", "c1_obs-f0"), InstanceInput("observe", "frame", "c1_obs-f2"),
              InstanceInput("dark", "frame", "c1_dark-f0")]
    service.store.create_instance(Instance("ri-ids", "c1", "pid_1_23", "frame-census", "1.0.0", "2026-11-20", T0,
                                           inputs=inputs, reference="2026-11-20/pid_1_23"))
    # When it is planned
    run_id = service.plan_instance(service.store.instance("ri-ids"))
    # Then its input dataset holds exactly those frames, and each frame finds the instance that uses it
    document = service.documents.buckets["work"][service.store.runs[run_id].input_dataset_key]
    assert sorted((f["file_id"], f["role"]) for f in document["frames"]) == [
        ("c1_dark-f0", "dark"), ("c1_obs-f0", "observe"), ("c1_obs-f2", "observe")]
    assert service.store.users_of("frame:c1_obs-f2") == ["ri-ids"] and service.store.users_of("frame:c1_obs-f1") == []
    # And a frame that is not in the inventory is named, not skipped
    service.store.create_instance(Instance("ri-bad", "c1", "pid_1_23", "frame-census", "1.0.0", "2026-11-20", T0,
                                           inputs=[InstanceInput("observe", "frame", "nope")]))
    with pytest.raises(NotFound, match="not in the inventory: nope"):
        service.plan_instance(service.store.instance("ri-bad"))


def test_a_failed_run_records_when_its_instance_was_processed():
    service = make_service(capacity=4)
    add_candidate(service, "c1")
    [run_id] = service.submit().started
    service.start_run(run_id, "arn")
    service.fail_run(run_id, {"Error": "States.TaskFailed"})
    instance = service.store.instances[service.store.runs[run_id].instance_id]
    assert instance.state == "ERROR" and instance.date_processed == service.store.runs[run_id].finished_at
