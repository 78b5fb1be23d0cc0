"""Observing programs as-run: expected frames (manifests) against received frames (ingest).

``rev`` grows with every change to an OP, so a writer that read an OP can make its
write conditional on nothing having changed since (optimistic concurrency).
``candidate_ids`` lists the candidates that contain the OP, so a change to the OP
finds the candidates to re-evaluate with the same consistent key lookup.
"""

from __future__ import annotations

from pynamodb.attributes import ListAttribute, NumberAttribute, UnicodeAttribute, UnicodeSetAttribute, UTCDateTimeAttribute
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from obsflow.tables.base import LISTED, newest_items, table
from obsflow.tables.conflicts import ConflictEvent


class OpsByFirstFrame(GlobalSecondaryIndex):
    """Every OP that has frames, the newest first frame first (the monitor's OPs filling up)."""

    class Meta:
        index_name = "by-first-frame"
        projection = KeysOnlyProjection()

    listing = UnicodeAttribute(hash_key=True)
    first_frame_at = UTCDateTimeAttribute(range_key=True)


@table("observing-programs")
class ObservingProgramItem(Model):
    class Meta:
        table_name = "obsflow-local-observing-programs"

    op_id = UnicodeAttribute(hash_key=True)
    expected = NumberAttribute(null=True)
    received = NumberAttribute(default=0)
    rev = NumberAttribute(default=0)
    candidate_ids = UnicodeSetAttribute(null=True)
    manifest_ids = UnicodeSetAttribute(null=True)
    first_frame_at = UTCDateTimeAttribute(null=True)
    instrument = UnicodeAttribute(null=True)
    proposal_id = UnicodeAttribute(null=True)
    task_type = UnicodeAttribute(null=True)
    events = ListAttribute(of=ConflictEvent, null=True)  # conflicts (tables.conflicts)
    late_frames = NumberAttribute(null=True)  # frames that arrived after a candidate of the OP was released
    listing = UnicodeAttribute(null=True)  # set with first_frame_at: in the index from its first frame

    by_first_frame = OpsByFirstFrame()


def get_many(op_ids) -> dict[str, ObservingProgramItem]:
    """Consistent reads of the OPs that exist among ``op_ids``."""
    return {
        item.op_id: item
        for item in ObservingProgramItem.batch_get(sorted(set(op_ids)), consistent_read=True)
    }


def all_ops() -> list[ObservingProgramItem]:
    """Operator listing only; the ingest path never scans."""
    return sorted(ObservingProgramItem.scan(), key=lambda op: op.op_id)


def newest(limit: int) -> list[ObservingProgramItem]:
    """The ``limit`` OPs whose first frame came last (ids from the index, then the OPs)."""
    return newest_items(ObservingProgramItem, limit, None, index=ObservingProgramItem.by_first_frame)[0]
