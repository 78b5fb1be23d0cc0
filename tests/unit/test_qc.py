"""QC values on fakes: recorded when a dataset is catalogued, and filters that select by them (datasets, plans,
campaigns); filters that are no filter are refused saying the syntax."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import pytest

from obsflow.qc import SYNTAX, QcFilter, parse_filter, qc_values, recordable
from obsflow.runs.campaigns import CampaignService
from obsflow.runs.reprocessing import Change
from tests.unit.fakes import fake_provenance
from tests.unit.test_catalogue import complete
from tests.unit.test_run_service import add_candidate, make_service

NAN = float("nan")


def complete_with_metrics(service, run_id: str, metrics: dict) -> str:
    """Run ``run_id`` to success with a quality-metrics JSON among its products; its dataset id."""
    run = service.store.runs[run_id]
    task = service.recipes.get(run.recipe, run.version).tasks[-1].name
    service.documents.buckets["work"][f"task-outputs/d-{run_id}-{task}/census.json"] = metrics
    return complete(service, run_id, outputs=(("census.json", ("product", "quality")),))


@pytest.fixture
def census():
    """Given three frame-census datasets whose quality metrics differ: c_good, c_poor, and c_nan (its dark level NaN)."""
    service = make_service(capacity=4)
    metrics = {"c_good": {"dark_level": 100.0, "saturated_fraction_max": 0.0, "frames": [{"mean": 1.0}, {"mean": 3.0}]},
               "c_poor": {"dark_level": 140.0, "saturated_fraction_max": 0.2, "warnings": ["light level low"]},
               "c_nan": {"dark_level": NAN, "saturated_fraction_max": 0.01}}
    for name in metrics:
        add_candidate(service, name)
    report = service.submit()
    made = {}
    for run_id in report.started:
        name = service.store.runs[run_id].candidate_id
        made[name] = complete_with_metrics(service, run_id, metrics[name])
    return service, made


# -- parsing ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [
    ("qc.rms_contrast<0.05", QcFilter("rms_contrast", "<", 0.05)),
    ("qc.rms_contrast<=0.05", QcFilter("rms_contrast", "<=", 0.05)),
    ("qc.dark_level>1e2", QcFilter("dark_level", ">", 100.0)),
    ("qc.dark_level>=-3", QcFilter("dark_level", ">=", -3.0)),
    ("qc.warnings=0", QcFilter("warnings", "=", 0.0)),
    (" qc.median_light_level < .5 ", QcFilter("median_light_level", "<", 0.5)),
])
def test_a_qc_filter_reads_metric_operator_and_number(text, expected):
    # When a filter is read, Then it has the metric, the operator and the value, and reads back the same
    assert parse_filter(text) == expected
    assert parse_filter(str(parse_filter(text))) == expected


@pytest.mark.parametrize("text,said", [
    ("qc.x<nan", "not a number"),
    ("qc.x<NaN", "not a number"),
    ("qc.x<inf", "not a number"),
    ("qc.x<1e999", "finite number"),  # a literal that overflows to infinity
    ("qc.x>1e200", "finite number"),  # finite, but beyond what DynamoDB keeps
    ("qc.x>1e-200", "finite number"),
    ("qc.../x<1", "no metric name"),
    ("qc.a.b<1", "no metric name"),
    ("qc.<1", "no metric name"),
    ("qc.rmś<1", "no metric name"),  # a letter outside ASCII
    ("qc.x<١", "not a number"),  # an Arabic-Indic digit, which float() would take
    ("qc.x＜1", "is not a QC filter"),  # a full-width less-than
    ("qc.x<1 OR 1=1", "not a number"),
    ("qc.x<1;x", "not a number"),
    ("qc.x=<1", "not a number"),
    ("qc.x<\x001", "not a number"),
    ("qc.x", "is not a QC filter"),
    ("rms_contrast<0.05", "is not a QC filter"),
    ("status=ACTIVE", "is not a QC filter"),
    ("qc.x<" + "1" * 300, "longer than"),
])
def test_what_is_no_qc_filter_is_refused_saying_the_syntax(text, said):
    # When something that is no QC filter is read, Then it is refused saying what is wrong, with the syntax
    with pytest.raises(ValueError, match=said) as refused:
        parse_filter(text)
    assert SYNTAX in str(refused.value) or "finite number" in said
    assert "\x00" not in str(refused.value)


def test_values_that_cannot_be_kept_as_numbers_are_noted_never_recorded():
    # Given QC values, some NaN, infinite, beyond DynamoDB's range or under a name no filter can name
    values = {"ok": 0.5, "zero": 0.0, "nan": NAN, "inf": math.inf, "huge": 1e200, "tiny": 1e-140, "bad name": 1.0}
    # When they are made recordable
    kept, notes = recordable(values)
    # Then only the usable ones are kept, and each other has a note saying why
    assert kept == {"ok": 0.5, "zero": 0.0}
    assert set(notes) == {"nan", "inf", "huge", "tiny", "bad name"}
    assert "not a finite number" in notes["nan"] and "range" in notes["huge"]


def test_qc_values_are_top_level_numbers_medians_over_frames_and_warnings():
    metrics = {"dark_level": 100, "flag": True, "frames": [{"mean": 1.0, "date": "x"}, {"mean": 3.0}, "junk"],
               "warnings": ["a", "b"], "qc": [{"name": "x", "value": 1}]}
    assert qc_values(metrics) == {"dark_level": 100.0, "median_mean": 2.0, "warnings": 2.0}


# -- recorded when catalogued ---------------------------------------------------------------------------
def test_a_catalogued_dataset_records_its_qc_values_and_notes_what_cannot_be_recorded(census):
    service, made = census
    # Then each dataset carries its QC values; the NaN one is absent with a note
    assert service.store.datasets[made["c_good"]].qc == {"dark_level": 100.0, "saturated_fraction_max": 0.0,
                                                         "median_mean": 2.0}
    nan = service.store.datasets[made["c_nan"]]
    assert nan.qc == {"saturated_fraction_max": 0.01} and "not a finite number" in nan.qc_notes["dark_level"]
    # And a re-delivered catalog event records the same
    before = dataclasses.asdict(service.store.datasets[made["c_good"]])
    service.catalog(service.store.datasets[made["c_good"]].run_id)
    assert dataclasses.asdict(service.store.datasets[made["c_good"]]) == before


def test_datasets_are_selected_by_their_qc_values_and_nan_is_never_selected(census):
    service, made = census
    provenance = fake_provenance(service)
    # When datasets are selected by QC filters (ANDed)
    assert provenance.dataset_ids((parse_filter("qc.dark_level<120"),)) == {made["c_good"]}
    assert provenance.dataset_ids((parse_filter("qc.dark_level>=0"),)) == {made["c_good"], made["c_poor"]}
    assert provenance.dataset_ids((parse_filter("qc.saturated_fraction_max<0.1"), parse_filter("qc.dark_level>50")),
                                  status="ACTIVE") == {made["c_good"]}
    # And a metric no dataset has is refused, naming those recorded
    with pytest.raises(ValueError, match="no dataset has QC value rms_contrast; QC values recorded: dark_level, "
                                         "median_mean, saturated_fraction_max, warnings"):
        provenance.dataset_ids((parse_filter("qc.rms_contrast<0.05"),))


def test_a_plan_is_narrowed_to_the_affected_datasets_that_pass_its_qc_filters(census):
    service, made = census
    planner = CampaignService(service, fake_provenance(service)).planner
    # Given a change that affects all three datasets
    change = Change(datasets=tuple(made.values()))
    assert len(planner.plan(change, "dq", save=False)["items"]) == 3
    # When the plan also asks for a saturated fraction below 5 %
    plan = planner.plan(dataclasses.replace(change, qc=("qc.saturated_fraction_max<0.05",)), "dq")
    # Then it lists only the datasets that pass, and says so in its change
    assert sorted(i["dataset_id"] for i in plan["items"]) == sorted([made["c_good"], made["c_nan"]])
    assert list(plan["change"]["qc"]) == ["qc.saturated_fraction_max<0.05"]


def test_a_campaign_selects_the_datasets_whose_qc_values_pass_its_filters(census):
    service, made = census
    campaigns = CampaignService(service, fake_provenance(service))
    # When a campaign selects the ACTIVE frame-census datasets with a dark level below 120
    campaign = campaigns.create("low-dark", "reprocessing", "dq", "again", recipe="frame-census@1.0.0",
                                selection={"query": {"recipe": "frame-census"}, "qc": ["qc.dark_level<120"]})
    # Then its preview, and its instances once started, copy the one dataset that passes
    assert len(campaigns.preview(campaign)["instances"]) == 1
    [copy_id] = campaigns.start("low-dark", "dq").instance_ids
    assert service.store.instances[copy_id].inputs == \
        service.store.instances[service.store.datasets[made["c_good"]].instance_id].inputs
    # And an unknown metric is refused when the campaign is defined
    with pytest.raises(ValueError, match="no dataset has QC value seeing"):
        campaigns.create("bad-qc", "reprocessing", "dq", "x", recipe="frame-census@1.0.0",
                         selection={"qc": ["qc.seeing<1"]})


def test_datasets_catalogued_before_qc_values_were_recorded_are_reindexed_before_any_qc_filter(census):
    service, made = census
    # Given a dataset catalogued before QC values were recorded (no qc on it)
    old = dataclasses.replace(service.store.datasets[made["c_good"]], dataset_id="ds-old", qc=None, qc_notes={},
                              created_at=service.store.datasets[made["c_good"]].created_at - dt.timedelta(days=30))
    service.store.datasets["ds-old"] = old
    provenance = fake_provenance(service)
    # When a QC filter is asked, Then it is refused, saying what to run (nothing is silently left out)
    with pytest.raises(ValueError, match="obsflow datasets reindex-qc"):
        provenance.dataset_ids((parse_filter("qc.dark_level<120"),))
    # When the reindex runs, Then the old dataset has its values and is selected
    assert service.reindex_qc() == {"reindexed": ["ds-old"]}
    assert service.store.datasets["ds-old"].qc["dark_level"] == 100.0
    assert provenance.dataset_ids((parse_filter("qc.dark_level<120"),)) == {"ds-old", made["c_good"]}
    # And running it again finds nothing more to do
    assert service.reindex_qc() == {"reindexed": []}
