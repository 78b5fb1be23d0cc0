"""Tags: human statements about frames, OPs, candidates or datasets (who, when, why) that select campaign inputs."""

from __future__ import annotations

from pynamodb.attributes import UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.models import Model

from obsflow.tables.base import table


@table("tags")
class TagItem(Model):
    class Meta:
        table_name = "obsflow-local-tags"

    tag = UnicodeAttribute(hash_key=True)
    target_id = UnicodeAttribute(range_key=True)  # a frame, OP, candidate or dataset id
    tagged_by = UnicodeAttribute()
    tagged_at = UTCDateTimeAttribute()
    reason = UnicodeAttribute()


def tagged(tag: str) -> list[TagItem]:
    return list(TagItem.query(tag))


def all_tags() -> list[TagItem]:
    """Every tag statement (tags are few and human-made: a Scan is fine)."""
    return sorted(TagItem.scan(), key=lambda t: (t.tag, t.tagged_at, t.target_id))
