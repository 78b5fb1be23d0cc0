"""Campaigns: named groups of recipe runs (reprocessing, developer, commissioning, ...)."""

from __future__ import annotations

from pynamodb.attributes import BooleanAttribute, JSONAttribute, ListAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.models import Model

from obsflow.tables.base import get_or_none, table


@table("campaigns")
class CampaignItem(Model):
    class Meta:
        table_name = "obsflow-local-campaigns"

    name = UnicodeAttribute(hash_key=True)
    campaign_type = UnicodeAttribute()
    definer = UnicodeAttribute()
    reason = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    status = UnicodeAttribute()
    status_reason = UnicodeAttribute(null=True)
    plan_id = UnicodeAttribute(null=True)
    recipe = UnicodeAttribute(null=True)
    overrides = JSONAttribute(null=True)
    selection = JSONAttribute(null=True)
    instance_ids = ListAttribute(of=UnicodeAttribute, default=list)
    max_concurrent = NumberAttribute(default=2)
    pause_after_failures = NumberAttribute(default=3)
    priority = NumberAttribute(default=0)
    history = JSONAttribute(null=True)
    task_image = UnicodeAttribute(null=True)
    calibration = UnicodeAttribute(null=True)
    retention_days = NumberAttribute(null=True)
    keep_intermediates = BooleanAttribute(default=False)
    rerun_from_task = UnicodeAttribute(null=True)
    job_definitions = JSONAttribute(null=True)
    schedule = UnicodeAttribute(null=True)
    next_occurrence_at = UTCDateTimeAttribute(null=True)
    occurrences = JSONAttribute(null=True)
    occurrence_count = NumberAttribute(default=0)  # len(occurrences), for the condition that records the next
    documents = JSONAttribute(null=True)  # name, version, key, size, sha256, content_type, note, by, at
    approval = JSONAttribute(null=True)  # a large campaign's: needed because, approved by, at, as, why


def has_occurrences(count: int):
    """The condition that a campaign has recorded ``count`` occurrences."""
    if count == 0:
        return CampaignItem.occurrence_count.does_not_exist() | (CampaignItem.occurrence_count == 0)
    return CampaignItem.occurrence_count == count


def get(name: str) -> CampaignItem | None:
    return get_or_none(CampaignItem, name)


def all_campaigns() -> list[CampaignItem]:
    """Every campaign, oldest first (a data center runs tens, not millions: a Scan is fine)."""
    return sorted(CampaignItem.scan(), key=lambda c: c.created_at)
