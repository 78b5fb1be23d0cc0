"""Service-desk tickets: one per failed run (its dedup key), or per manual review."""

from __future__ import annotations

from pynamodb.attributes import JSONAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from obsflow.statuses import OPEN, RESOLVED  # noqa: F401
from obsflow.tables.base import get_or_none, table


class TicketsByStatus(GlobalSecondaryIndex):
    class Meta:
        index_name = "by-status"
        projection = AllProjection()

    status = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


@table("tickets")
class TicketItem(Model):
    class Meta:
        table_name = "obsflow-local-tickets"

    ticket_id = UnicodeAttribute(hash_key=True)
    kind = UnicodeAttribute()
    status = UnicodeAttribute(default=OPEN)
    summary = UnicodeAttribute()
    run_id = UnicodeAttribute(null=True)
    candidate_id = UnicodeAttribute(null=True)
    proposal_id = UnicodeAttribute(null=True)
    recipe = UnicodeAttribute(null=True)
    failed_task = UnicodeAttribute(null=True)
    error_type = UnicodeAttribute(null=True)
    error_message = UnicodeAttribute(null=True)
    exit_code = NumberAttribute(null=True)
    log_excerpt = UnicodeAttribute(null=True)
    links = JSONAttribute(null=True)
    suggested_action = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    resolved_at = UTCDateTimeAttribute(null=True)
    resolution = UnicodeAttribute(null=True)
    resolved_by = UnicodeAttribute(null=True)
    external_key = UnicodeAttribute(null=True)  # the service desk's key (Jira), when posted
    external_error = UnicodeAttribute(null=True)
    attempts = JSONAttribute(null=True)  # the run's attempts that failed of this cause (a redrive may repeat it)

    by_status = TicketsByStatus()


def get(ticket_id: str) -> TicketItem | None:
    return get_or_none(TicketItem, ticket_id)


def all_tickets() -> list[TicketItem]:
    return sorted((t for status in (OPEN, RESOLVED) for t in with_status(status)), key=lambda t: t.created_at)


def with_status(status: str) -> list[TicketItem]:
    return list(TicketItem.by_status.query(status))


def newest(limit: int) -> list[TicketItem]:
    """The ``limit`` newest tickets: the newest of each status, merged."""
    found = [t for status in (OPEN, RESOLVED) for t in TicketItem.by_status.query(status, scan_index_forward=False,
                                                                                   limit=limit)]
    return sorted(found, key=lambda t: t.created_at, reverse=True)[:limit]
