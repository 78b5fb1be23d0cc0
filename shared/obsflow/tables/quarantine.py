"""Quarantined objects: every input that could not be accepted, with the reason why.

Keyed by bucket/key and version, so a re-delivered notification rewrites the same
record and a corrected upload (a new version) gets its own.
"""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.models import Model

from obsflow.tables.base import table

NO_VERSION = "null"


@table("quarantine")
class QuarantineItem(Model):
    class Meta:
        table_name = "obsflow-local-quarantine"

    object_id = UnicodeAttribute(hash_key=True)  # "<bucket>/<key>"
    version_id = UnicodeAttribute(range_key=True)
    bucket = UnicodeAttribute()
    key = UnicodeAttribute()
    code = UnicodeAttribute()
    reason = UnicodeAttribute()
    size = NumberAttribute(null=True)
    etag = UnicodeAttribute(null=True)
    quarantined_at = UTCDateTimeAttribute()


def all_quarantined() -> list[QuarantineItem]:
    """Operator listing only; the ingest path never scans."""
    return sorted(QuarantineItem.scan(), key=lambda q: q.quarantined_at)
