"""QC values by metric: one item per dataset and metric, indexed by (metric, value) for range queries.

A value DynamoDB cannot hold (NaN, infinite, out of its number range) is an item with a ``note`` and no ``value``:
the index is sparse, so it is never selected. Beside them, under ``CATALOGUE`` (no dataset id has that form): an
item per metric that some dataset has recorded (which metrics exist, in one query), and ``INDEXED_FROM``, the
creation time of the oldest dataset whose QC values are indexed (the catalog step moves it back, the reindex
moves it before every dataset), so a query knows whether older datasets would be missing.
"""

from __future__ import annotations

import datetime as dt

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from obsflow.qc import QcFilter
from obsflow.tables.base import get_or_none, table, update_if

CATALOGUE = "(catalogue)"
INDEXED_FROM = "(indexed-from)"


class QcValuesByMetric(GlobalSecondaryIndex):
    class Meta:
        index_name = "by-metric"
        projection = KeysOnlyProjection()

    metric = UnicodeAttribute(hash_key=True)
    value = NumberAttribute(range_key=True)


@table("qc-values")
class QcValueItem(Model):
    class Meta:
        table_name = "obsflow-local-qc-values"

    dataset_id = UnicodeAttribute(hash_key=True)
    metric = UnicodeAttribute(range_key=True)
    value = NumberAttribute(null=True)  # absent when DynamoDB cannot hold it (``note`` says why)
    note = UnicodeAttribute(null=True)
    recorded_at = UTCDateTimeAttribute(null=True)
    at = UTCDateTimeAttribute(null=True)  # INDEXED_FROM's time

    by_metric = QcValuesByMetric()


def record(dataset_id: str, values: dict[str, float], notes: dict[str, str], at: dt.datetime) -> None:
    """The dataset's values and notes replace what it had (a metric no longer reported keeps a note and no value,
    which leaves the index: obsflow never deletes items); the metrics are named under CATALOGUE. Writing the same
    again changes nothing."""
    for old in QcValueItem.query(dataset_id, attributes_to_get=["dataset_id", "metric"]):
        if old.metric not in values and old.metric not in notes:
            old.update(actions=[QcValueItem.value.remove(),
                                QcValueItem.note.set("no longer in its quality metrics: recorded as absent")])
    for name, value in values.items():
        QcValueItem(dataset_id, name, value=value, recorded_at=at).save()
    for name, note in notes.items():
        QcValueItem(dataset_id, name, note=note, recorded_at=at).save()
    for name in values:
        QcValueItem(CATALOGUE, name).save()


def indexed_from(at: dt.datetime) -> None:
    """Datasets created from ``at`` on have their QC values indexed: move INDEXED_FROM back to ``at`` (never on)."""
    update_if(QcValueItem(CATALOGUE, INDEXED_FROM), [QcValueItem.at.set(at)],
              QcValueItem.at.does_not_exist() | (QcValueItem.at > at))


def indexed_since() -> dt.datetime | None:
    item = get_or_none(QcValueItem, CATALOGUE, INDEXED_FROM)
    return item.at if item else None


def metrics() -> list[str]:
    """The metrics some dataset has recorded."""
    return sorted(i.metric for i in QcValueItem.query(CATALOGUE) if i.metric != INDEXED_FROM)


def dataset_ids(qc_filter: QcFilter) -> set[str]:
    """The datasets whose value of the filter's metric passes it: one keys-only index query."""
    return {i.dataset_id for i in QcValueItem.by_metric.query(qc_filter.metric, qc_filter.compare(QcValueItem.value))}
