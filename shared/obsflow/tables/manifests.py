"""Transfer manifests as received, for the record."""

from __future__ import annotations

from pynamodb.attributes import JSONAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.models import Model

from obsflow.tables.base import table


@table("manifests")
class ManifestItem(Model):
    class Meta:
        table_name = "obsflow-local-manifests"

    manifest_id = UnicodeAttribute(hash_key=True)
    key = UnicodeAttribute()
    version_id = UnicodeAttribute(null=True)
    document = JSONAttribute()
    received_at = UTCDateTimeAttribute()
