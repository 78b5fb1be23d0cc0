"""QC values on DynamoDB (moto): recorded per dataset and metric, queried per metric by value range."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from obsflow.qc import parse_filter, parse_filters
from obsflow.reads.provenance import Provenance
from obsflow.reads.store import DynamoReads
from obsflow.runs.domain import Dataset
from obsflow.runs.store import DynamoRunStore
from obsflow.tables import qc_values
from obsflow.tables.datasets import DatasetItem

T0 = dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)


@pytest.fixture
def store(catalog):
    return DynamoRunStore(catalog[0])


@pytest.fixture
def provenance(catalog):
    return Provenance(DynamoReads(catalog[0]))


def dataset(number: int, created_at: dt.datetime = T0) -> Dataset:
    dataset_id = f"ds-{number:04d}"
    return Dataset(dataset_id, run_id=f"run-{number}", proposal_id="pid_1_23", candidate_id="c1",
                   recipe="frame-census@1.0.0", bucket="data", prefix=f"pid_1_23/{dataset_id}/", product_id=f"p{number}",
                   version_key="v1", frame_count=0, files=[], provenance={}, created_at=created_at + dt.timedelta(
                       minutes=number), recipe_name="frame-census")


@pytest.fixture
def recorded(store):
    """Given 60 datasets with a contrast of 0.01 x (number % 10) (ties: six of each), a warning count, and one whose
    contrast is NaN (noted, not recorded)."""
    for number in range(60):
        made = dataset(number)
        store.create_dataset(made)
        store.record_qc(made.dataset_id, {"rms_contrast": round(0.01 * (number % 10), 2), "warnings": float(number % 2)},
                        {}, made.created_at)
    odd = dataset(60)
    store.create_dataset(odd)
    store.record_qc(odd.dataset_id, {"warnings": 0.0}, {"rms_contrast": "not a finite number (nan): recorded as absent"},
                    odd.created_at)
    return store


def ids(*numbers) -> list[str]:
    return sorted(f"ds-{n:04d}" for n in numbers)


@pytest.mark.parametrize("text,numbers", [
    ("qc.rms_contrast<0.02", [n for n in range(60) if n % 10 < 2]),
    ("qc.rms_contrast<=0.02", [n for n in range(60) if n % 10 <= 2]),
    ("qc.rms_contrast>0.07", [n for n in range(60) if n % 10 > 7]),
    ("qc.rms_contrast>=0.07", [n for n in range(60) if n % 10 >= 7]),
    ("qc.rms_contrast=0.05", [n for n in range(60) if n % 10 == 5]),
])
def test_each_operator_is_one_range_query_on_the_metric_s_index(recorded, text, numbers, provenance):
    # When the datasets are asked by one QC filter, Then exactly those whose value passes come back (NaN never)
    assert sorted(provenance.dataset_ids(parse_filters([text]))) == ids(*numbers)


def test_qc_filters_and_together_and_with_the_catalogue_filters_and_listings_show_the_values(recorded, provenance):
    # When two QC filters and a recipe filter are given
    chosen = sorted(provenance.dataset_ids(parse_filters(["qc.rms_contrast<0.02", "qc.warnings=1"]), recipe="frame-census"))
    # Then they intersect
    assert chosen == ids(*(n for n in range(60) if n % 10 < 2 and n % 2 == 1))
    # And a listing's rows carry each dataset's QC values
    rows = provenance.dataset_rows(qc=(parse_filter("qc.rms_contrast<0.01"),))
    assert [r["dataset_id"] for r in rows] == ids(0, 10, 20, 30, 40, 50)
    assert rows[0]["qc"] == {"rms_contrast": 0.0, "warnings": 0.0}
    # And the NaN one carries its note on its item, not a value
    assert DatasetItem.get("ds-0060").qc_notes == {"rms_contrast": "not a finite number (nan): recorded as absent"}


def test_recording_again_writes_the_same_and_drops_a_metric_no_longer_reported(recorded, provenance):
    before = {(i.dataset_id, i.metric): i.attribute_values for i in qc_values.QcValueItem.query("ds-0003")}
    # When the same values are recorded again (a re-delivered catalog event), Then nothing changes
    recorded.record_qc("ds-0003", {"rms_contrast": 0.03, "warnings": 1.0}, {}, dataset(3).created_at)
    assert {(i.dataset_id, i.metric): i.attribute_values for i in qc_values.QcValueItem.query("ds-0003")} == before
    # When it is recorded without warnings, Then its warnings value is gone from the index (noted, not deleted)
    recorded.record_qc("ds-0003", {"rms_contrast": 0.03}, {}, dataset(3).created_at)
    assert "ds-0003" not in provenance.dataset_ids(parse_filters(["qc.warnings>=0"]))


def test_an_unknown_metric_is_refused_naming_the_recorded_ones(recorded, provenance):
    with pytest.raises(ValueError, match="no dataset has QC value seeing; QC values recorded: rms_contrast, warnings"):
        provenance.dataset_ids(parse_filters(["qc.seeing<1"]))


def test_datasets_catalogued_before_qc_values_were_recorded_are_named_until_reindexed(recorded, provenance):
    # Given a dataset catalogued before QC values were recorded (earlier than every indexed one, no qc)
    old = dataset(61, created_at=T0 - dt.timedelta(days=30))
    recorded.create_dataset(old)
    # When a QC filter is asked, Then it is refused, saying what to run
    with pytest.raises(ValueError, match="obsflow datasets reindex-qc"):
        provenance.dataset_ids(parse_filters(["qc.rms_contrast<0.01"]))
    # When it is reindexed (what `obsflow datasets reindex-qc` does for each dataset without QC values)
    assert [d.dataset_id for d in recorded.datasets_without_qc()] == ["ds-0061"]
    recorded.record_qc(old.dataset_id, {"rms_contrast": 0.0}, {}, old.created_at)
    recorded.all_qc_indexed(dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc))
    # Then it is selected with the others, and nothing is left to reindex
    assert "ds-0061" in provenance.dataset_ids(parse_filters(["qc.rms_contrast<0.01"]))
    assert recorded.datasets_without_qc() == []


def test_a_fresh_catalogue_s_first_dataset_starts_the_index(store, provenance):
    # Given an empty catalogue, When its first dataset is recorded, Then a QC filter is answered (no gap)
    first = dataset(1)
    store.create_dataset(first)
    store.record_qc(first.dataset_id, {"rms_contrast": 0.5}, {}, first.created_at)
    assert sorted(provenance.dataset_ids(parse_filters(["qc.rms_contrast>0"]))) == ["ds-0001"]
    # And a later dataset recorded first does not hide an earlier one's index (the start only moves back)
    earlier = dataclasses.replace(dataset(0), created_at=T0 - dt.timedelta(hours=1))
    store.create_dataset(earlier)
    store.record_qc(earlier.dataset_id, {"rms_contrast": 0.1}, {}, earlier.created_at)
    assert sorted(provenance.dataset_ids(parse_filters(["qc.rms_contrast>0"]))) == ["ds-0000", "ds-0001"]
