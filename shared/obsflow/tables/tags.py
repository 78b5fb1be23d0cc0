"""Tags: human statements about frames, OPs, candidates or datasets (who, when, why) that select campaign inputs.

A statement can be withdrawn (who, when, why): it then no longer selects, but is kept, so the record shows that
it was made and taken back. Stated again later, the withdrawn statement moves into ``earlier``."""

from __future__ import annotations

from pynamodb.attributes import JSONAttribute, UnicodeAttribute, UTCDateTimeAttribute
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
    withdrawn_by = UnicodeAttribute(null=True)
    withdrawn_at = UTCDateTimeAttribute(null=True)
    withdrawn_reason = UnicodeAttribute(null=True)
    earlier = JSONAttribute(null=True)  # statements made and withdrawn before this one, oldest first

    def statement(self) -> dict:
        """This statement as a row (times in ISO 8601, as ``earlier`` keeps them)."""
        return {"tag": self.tag, "target_id": self.target_id, "tagged_by": self.tagged_by,
                "tagged_at": self.tagged_at.isoformat(), "reason": self.reason, "withdrawn_by": self.withdrawn_by,
                "withdrawn_at": self.withdrawn_at.isoformat() if self.withdrawn_at else None,
                "withdrawn_reason": self.withdrawn_reason}


def tagged(tag: str) -> list[TagItem]:
    """The statements of ``tag`` in force (not withdrawn)."""
    return list(TagItem.query(tag, filter_condition=TagItem.withdrawn_at.does_not_exist()))


def all_tags() -> list[TagItem]:
    """Every tag statement in force (tags are few and human-made: a Scan is fine)."""
    return sorted(TagItem.scan(TagItem.withdrawn_at.does_not_exist()), key=lambda t: (t.tag, t.tagged_at, t.target_id))


def history(tag: str) -> list[dict]:
    """Every statement of ``tag`` ever made, withdrawn or in force, per id oldest first."""
    return [row for item in TagItem.query(tag) for row in [*(item.earlier or []), item.statement()]]
