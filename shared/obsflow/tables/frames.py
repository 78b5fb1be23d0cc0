"""Frame inventory: one item per raw frame, keyed by its file id (ID___002)."""

from __future__ import annotations

from pynamodb.attributes import BooleanAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from obsflow.tables.base import get_or_none, table


class FramesByOp(GlobalSecondaryIndex):
    class Meta:
        index_name = "by-op"
        projection = AllProjection()

    op_id = UnicodeAttribute(hash_key=True)
    date_obs = UnicodeAttribute(range_key=True)


@table("frames")
class FrameItem(Model):
    class Meta:
        table_name = "obsflow-local-frames"

    file_id = UnicodeAttribute(hash_key=True)
    op_id = UnicodeAttribute()
    experiment_id = UnicodeAttribute()
    proposal_id = UnicodeAttribute()
    instrument = UnicodeAttribute()
    task_type = UnicodeAttribute()
    date_obs = UnicodeAttribute()
    bucket = UnicodeAttribute()
    key = UnicodeAttribute()
    version_id = UnicodeAttribute(null=True)
    etag = UnicodeAttribute(null=True)
    size = NumberAttribute()
    header_bytes = NumberAttribute()
    fried_parameter = NumberAttribute(null=True)
    ao_locked = BooleanAttribute(null=True)
    exposure_ms = NumberAttribute(null=True)  # the setup: exposure time (CAM__004), filter (WAVELNTH), camera
    filter = UnicodeAttribute(null=True)
    camera = UnicodeAttribute(null=True)
    received_at = UTCDateTimeAttribute()

    by_op = FramesByOp()


def get(file_id: str) -> FrameItem | None:
    return get_or_none(FrameItem, file_id)


def frames_of_op(op_id: str) -> list[FrameItem]:
    return list(FrameItem.by_op.query(op_id))


def all_frames() -> list[FrameItem]:
    """Operator listing only; the ingest path never scans."""
    return list(FrameItem.scan())
