"""Certified master calibrations on fakes: QC gates, the certification state machine, science waiting for a
certified calibration and released by one, and the association's score."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from pydantic import ValidationError

from obsflow.recipes import registry
from obsflow.recipes.model import QcGate, Recipe
from obsflow.runs.association import association_score, describe
from obsflow.runs.context import NotAllowed
from obsflow.runs.domain import Dataset, FrameRef, OpProgress
from obsflow_tasks.vbi import calibration
from tests.unit.test_catalogue import MASTERS, SHARED, complete, instance_by_recipe
from tests.unit.test_run_service import T0, add_candidate, make_service


# -- gates -----------------------------------------------------------------------------------------------
def test_a_gate_passes_within_its_bounds_and_says_why_it_fails_otherwise():
    # Given a gate of at most 1 % bad pixels
    gate = QcGate(metric="bad_pixel_fraction", max=0.01, description="few bad pixels")
    # When judged against measured values, Then each result records the value and why it failed
    assert gate.evaluate({"bad_pixel_fraction": 0.002})["passed"] is True
    failed = gate.evaluate({"bad_pixel_fraction": 0.03})
    assert failed["passed"] is False and failed["failure"] == "bad_pixel_fraction 0.03 > 0.01"
    assert gate.evaluate({})["failure"] == "bad_pixel_fraction not measured"
    assert gate.evaluate({"bad_pixel_fraction": float("nan")})["passed"] is False


@pytest.mark.parametrize("gate", [{"metric": "x"}, {"metric": "x", "max": float("nan")},
                                  {"metric": "x", "min": 2, "max": 1}, {"metric": "x y", "max": 1},
                                  {"metric": "x", "max": 1, "unknown": 2}])
def test_a_gate_without_bounds_with_a_non_finite_or_crossed_bound_or_unknown_field_is_refused(gate):
    with pytest.raises(ValidationError):
        QcGate(**gate)


def test_gates_belong_to_calibration_recipes_once_per_metric():
    # Given the shipped calibration recipe's definition
    definition = registry.get("vbi-calibration").model_dump()
    gate = {"metric": "gain_spread", "max": 1.0}
    # When a metric is gated twice, or a science recipe declares gates, Then the definition is refused
    with pytest.raises(ValidationError, match="gated twice: gain_spread"):
        Recipe.model_validate({**definition, "qc_gates": [gate, gate]})
    with pytest.raises(ValidationError, match="only a calibration recipe"):
        Recipe.model_validate({**definition, "kind": "science"})


def test_discovery_selects_the_gated_calibration_recipe_and_the_first_version_stays_registered():
    assert registry.get("vbi-calibration").version == "1.1.0"
    assert [g.metric for g in registry.get("vbi-calibration").qc_gates] == ["bad_pixel_fraction", "gain_spread"]
    assert registry.get("vbi-calibration", "1.0.0").qc_gates == ()


# -- the QC values ---------------------------------------------------------------------------------------
def test_the_calibration_qc_values_are_the_darks_level_and_noise_the_gain_spread_and_the_bad_fraction():
    # Given a seeded dark per exposure time, a gain with known spread and a mask with 3 bad pixels of 100
    rng = np.random.default_rng(1)
    darks = {4.0: 100 + rng.normal(0, 5, (200, 200)), 10.5: np.full((10, 10), 250.0)}
    gain, bad = np.ones((10, 10)), np.zeros((10, 10), bool)
    gain[0, :5], bad[1, :3] = 1.2, True
    # When measured
    values = calibration.calibration_quality(darks, gain, bad)
    # Then each value is as constructed
    assert values["dark_median_4ms"] == pytest.approx(100, abs=0.2) and values["dark_noise_4ms"] == pytest.approx(5, rel=0.05)
    assert values["dark_median_10p5ms"] == 250.0 and values["dark_noise_10p5ms"] == 0.0
    assert values["bad_pixel_fraction"] == 0.03 and values["dark_exposures"] == 2.0
    assert values["gain_spread"] == pytest.approx(np.std(np.r_[np.full(5, 1.2), np.ones(92)]))


# -- certification and science waiting for it ------------------------------------------------------------
def two_candidates_and_their_calibration_run(service):
    for name in ("c1", "c2"):
        add_candidate(service, name, recipe=None, calibration=SHARED)
    [cal_run] = service.submit().started
    return cal_run


def test_a_calibration_whose_gates_pass_is_certified_when_catalogued_and_science_is_planned_with_a_score():
    # Given a calibration run whose QC values pass every gate
    service = make_service(capacity=4)
    cal_run = two_candidates_and_their_calibration_run(service)
    # When it is catalogued
    masters = complete(service, cal_run, MASTERS, quality={"bad_pixel_fraction": 0.002, "gain_spread": 0.1})
    # Then it is CERTIFIED by cataloguing, each gate with its value recorded, and no ticket asks anyone
    dataset = service.store.datasets[masters]
    assert dataset.certification == "CERTIFIED"
    assert [(g["metric"], g["value"], g["passed"]) for g in dataset.certification_gates] == [
        ("bad_pixel_fraction", 0.002, True), ("gain_spread", 0.1, True)]
    assert dataset.certification_history[-1]["move"] == "pass_gates"
    assert not [t for t in service.store.tickets.values() if t.kind == "review:certification"]
    # And both science instances are planned, each input dataset recording the association's score
    planned = service.submit().planned
    assert len(planned) == 2
    document = service.documents.buckets["work"][service.store.runs[planned[0]].input_dataset_key]
    [upstream] = document["upstream"]
    assert upstream["association"]["hours"] == 0.0 and upstream["association"]["score"] == 1.0


def test_a_failed_gate_holds_the_science_with_the_reason_until_data_quality_certifies_it():
    # Given a calibration catalogued with 3 % bad pixels (the gate allows 1 %)
    service = make_service(capacity=4)
    cal_run = two_candidates_and_their_calibration_run(service)
    created = []
    record = service.store.create_dataset
    service.store.create_dataset = lambda dataset: created.append(dataset.certification_gates) or record(dataset)
    masters = complete(service, cal_run, MASTERS, quality={"bad_pixel_fraction": 0.03, "gain_spread": 0.1})
    # Then the calibration is recorded with its judged gates: nobody ever reads it without them
    assert [[(g["metric"], g["passed"]) for g in gates] for gates in created] == [
        [("bad_pixel_fraction", False), ("gain_spread", True)]]
    # When the submitter runs
    assert service.submit().planned == []
    # Then the calibration is UNCERTIFIED, a review ticket names the gate and the command
    assert service.store.datasets[masters].certification == "UNCERTIFIED"
    [ticket] = [t for t in service.store.tickets.values() if t.kind == "review:certification"]
    assert "gate bad_pixel_fraction 0.03 > 0.01" in ticket.summary
    assert f"obsflow calibrations certify {masters} --reason TEXT" in ticket.suggested_action
    # And each science instance waits, saying for which calibration, which gate and what to do
    for science in instance_by_recipe(service, "vbi-l1"):
        assert science.state == "WAITING"
        assert science.state_reason == (f"waiting for calibration {masters} to be certified (gate bad_pixel_fraction "
                                        f"0.03 > 0.01; obsflow calibrations certify {masters} --reason TEXT)")
    # When data quality certifies it
    certified = service.certify(masters, "dana", "dust on the flats, checked by eye: harmless")
    # Then who, when and why are kept, the ticket is resolved, the submitter is nudged
    assert certified.certification == "CERTIFIED"
    assert {k: certified.certification_history[-1][k] for k in ("move", "from", "by", "reason")} == {
        "move": "certify", "from": "UNCERTIFIED", "by": "dana", "reason": "dust on the flats, checked by eye: harmless"}
    assert service.store.tickets[ticket.ticket_id].status == "RESOLVED"
    assert service.notifier.nudges[-1] == f"calibration {masters} certified"
    # And the next pass plans both science instances on it
    assert len(service.submit().planned) == 2
    # And certifying again moves nothing twice
    assert len(service.certify(masters, "dana", "again").certification_history) == 1


def test_a_rejected_calibration_keeps_the_science_waiting_with_the_reason_and_a_ticket():
    # Given a calibration that failed its gate
    service = make_service(capacity=4)
    cal_run = two_candidates_and_their_calibration_run(service)
    masters = complete(service, cal_run, MASTERS, quality={"bad_pixel_fraction": 0.2, "gain_spread": 0.1})
    # When data quality rejects it and the submitter runs
    rejected = service.reject_calibration(masters, "dana", "a light leak")
    assert service.submit().planned == []
    # Then it is REJECTED, and each science instance waits saying so, with a ticket each
    assert rejected.certification == "REJECTED"
    for science in instance_by_recipe(service, "vbi-l1"):
        assert science.state == "WAITING" and f"calibration {masters} was rejected by dana (a light leak)" in science.state_reason
        ticket = service.store.tickets[f"TKT-{science.instance_id}-rejected-{masters}"]
        assert ticket.kind == "review:certification" and "make the calibration again" in ticket.suggested_action
    # And only a move of the table is allowed: rejecting again changes nothing, a science dataset is refused
    assert service.reject_calibration(masters, "dana", "still").certification_history == rejected.certification_history
    with pytest.raises(ValueError, match="--reason"):
        service.certify(masters, "dana", " ")


def test_only_a_master_calibration_is_certified():
    service = make_service()
    add_candidate(service, "c1")
    dataset = complete(service, service.submit().started[0])
    with pytest.raises(NotAllowed, match="not a master calibration"):
        service.certify(dataset, "dana", "why not")


def test_a_calibration_of_a_recipe_without_gates_waits_for_a_person():
    # Given a calibration dataset of vbi-calibration 1.0.0 (no gates)
    service = make_service()
    dataset = Dataset("ds-old", "run-x", "pid_1_23", "c1", "vbi-calibration@1.0.0", "data", "p/", "prod", "k", 0, [],
                      {}, T0, kind="calibration", certification="UNCERTIFIED")
    # When it is recorded and judged
    service.store.create_dataset(dataset)
    service.certification.after_catalog(dataset, registry.get("vbi-calibration", "1.0.0"), {"bad_pixel_fraction": 0.0})
    # Then it is UNCERTIFIED and the ticket says a person certifies it
    assert service.store.datasets["ds-old"].certification == "UNCERTIFIED"
    [ticket] = service.store.tickets.values()
    assert "has no QC gates" in ticket.summary


# -- the association's score -----------------------------------------------------------------------------
def frame(task_type: str, when: str, exposure=4.0, filt="430.52 nm", camera="VBI-BLUE-CAM-1") -> FrameRef:
    return FrameRef(f"{task_type}-{when}", "op", task_type, when, "b", "k", None, None, 1, "p", "VBI",
                    exposure, filt, camera)


def test_the_association_score_is_the_setup_matched_discounted_by_the_time_between():
    science = [frame("observe", "2026-11-20T20:00:00"), frame("observe", "2026-11-20T22:00:00")]
    same_time = [frame("dark", "2026-11-20T21:00:00"), frame("gain", "2026-11-20T21:00:00")]
    a_day_away = [frame("dark", "2026-11-21T21:00:00"), frame("gain", "2026-11-21T21:00:00")]
    other_exposure = [frame("dark", "2026-11-20T21:00:00", exposure=8.0), frame("gain", "2026-11-20T21:00:00", exposure=8.0)]
    # Then the same setup at the same time scores 1, a day away 0.5
    assert association_score(science, same_time)["score"] == 1.0
    assert association_score(science, a_day_away) | {"setup": None} == {
        "hours": 24.0, "setup": None, "setup_match": 1.0, "score": 0.5}
    # And a dark of another exposure time matches two thirds of the setup, and says what differs
    other = association_score(science, other_exposure)
    assert other["setup_match"] == 0.667 and other["setup"]["exposure_ms"]["match"] is False
    assert describe(other) == ("score 0.667: 0 h apart, setup 2/3 matched (filter, camera); differs: exposure_ms "
                               "[4.0] vs [8.0]")
    # And frames that do not say their setup are not held against it
    unknown = association_score([frame("observe", "2026-11-20T21:00:00", None, None, None)], same_time)
    assert unknown["setup_match"] is None and unknown["score"] == 1.0
    assert dt.timedelta(hours=unknown["hours"]) == dt.timedelta(0)


# -- calibration programs' sets shared across proposals ----------------------------------------------------
def program_calibration_ops(service, proposal: str, ops=("prog_dark", "prog_gain")) -> tuple[str, ...]:
    """Calibration OPs of ``proposal`` taken on 2026-11-20 with one setup (their frames say it)."""
    for op in ops:
        task_type = op.rsplit("_", 1)[-1]
        service.store.ops[op] = OpProgress(op, 1, 1, T0, task_type, proposal)
        service.store.frames.append(FrameRef(
            f"{op}-f0", op, task_type, "2026-11-20T17:00:00", "ingest", f"raw/{op}/f0.fits", "v1", "etag", 2880,
            proposal, "VBI", 4.0, "430.52 nm", "VBI-BLUE-CAM-1"))
    return ops


def test_a_calibration_programs_set_is_shared_across_proposals_and_a_proprietary_one_never_is():
    # Given calibration OPs of the observatory calibration program pid_cal, named by two proposals' candidates
    service = make_service(capacity=4, calibration_programs=("pid_cal",))
    ops = program_calibration_ops(service, "pid_cal")
    add_candidate(service, "a1", recipe=None, calibration=ops, proposal="pid_1_23")
    add_candidate(service, "b1", recipe=None, calibration=ops, proposal="pid_2_7")
    # When the submitter runs
    [cal_run] = service.submit().started
    # Then one calibration instance, the program's, of the night and setup, serves both proposals' science
    [shared] = instance_by_recipe(service, "vbi-calibration")
    assert shared.proposal_id == "pid_cal" and shared.candidate_ids == {"a1", "b1"}
    assert shared.reference == "2026-11-20/pid_cal"
    masters = complete(service, cal_run, MASTERS)
    assert service.store.datasets[masters].prefix.startswith("calibrations/pid_cal/")
    planned = service.submit().planned
    assert sorted(service.store.runs[r].proposal_id for r in planned) == ["pid_1_23", "pid_2_7"]

    # Given the same OPs owned by a proposal that is no calibration program
    service = make_service(capacity=4)
    ops = program_calibration_ops(service, "pid_9_9")
    add_candidate(service, "a1", recipe=None, calibration=ops, proposal="pid_1_23")
    add_candidate(service, "b1", recipe=None, calibration=ops, proposal="pid_2_7")
    service.submit()
    # Then each proposal gets its own calibration instance
    assert sorted(i.proposal_id for i in instance_by_recipe(service, "vbi-calibration")) == ["pid_1_23", "pid_2_7"]


def test_the_monitors_dataset_page_shows_the_certification_and_each_associations_score():
    from obsflow.monitor import views

    # Given a calibration's detail with a failed gate and a certification by hand, and a science dataset's
    calibration = {"dataset_id": "ds-cal", "certification": "CERTIFIED", "certification_gates": [
        {"metric": "bad_pixel_fraction", "min": None, "max": 0.01, "value": 0.03, "passed": False,
         "failure": "bad_pixel_fraction 0.03 > 0.01"}],
        "certification_history": [{"move": "certify", "to": "CERTIFIED", "by": "dana", "at": "t", "reason": "ok"}]}
    association = association_score([frame("observe", "2026-11-20T21:00:00")], [frame("dark", "2026-11-20T20:00:00")])
    science = {"dataset_id": "ds-sci", "calibrations": [{"dataset_id": "ds-cal", "recipe": "vbi-calibration@1.1.0",
                                                         "association": association}]}
    # When their pages are drawn, Then the gate, its result and who certified it show, and the score
    page = views.dataset_page(calibration, None)
    assert "FAILED: bad_pixel_fraction 0.03 &gt; 0.01" in page and "dana" in page
    assert "score 0.96: 1 h apart, setup 3/3 matched" in views.dataset_page(science, None)
