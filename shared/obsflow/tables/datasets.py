"""Datasets: the catalogued output of a successful run."""

from __future__ import annotations

from pynamodb.attributes import JSONAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.models import Model

from obsflow.tables.base import table

ACTIVE, DEPRECATED = "ACTIVE", "DEPRECATED"


@table("datasets")
class DatasetItem(Model):
    class Meta:
        table_name = "obsflow-local-datasets"

    dataset_id = UnicodeAttribute(hash_key=True)
    run_id = UnicodeAttribute()
    proposal_id = UnicodeAttribute()
    candidate_id = UnicodeAttribute()
    recipe = UnicodeAttribute()
    status = UnicodeAttribute(default=ACTIVE)
    bucket = UnicodeAttribute()
    prefix = UnicodeAttribute()
    files = JSONAttribute()
    provenance = JSONAttribute()
    created_at = UTCDateTimeAttribute()


def get(dataset_id: str) -> DatasetItem | None:
    try:
        return DatasetItem.get(dataset_id, consistent_read=True)
    except DatasetItem.DoesNotExist:
        return None


def all_datasets() -> list[DatasetItem]:
    return sorted(DatasetItem.scan(), key=lambda d: d.created_at)
