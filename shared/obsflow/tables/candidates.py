"""Processing candidates: an observe OP and the OPs that calibrate it.

A candidate is WAITING until every OP is complete (or the backstop passes), then
READY, exactly once: the transition is a conditional write.
"""

from __future__ import annotations

from pynamodb.attributes import (
    JSONAttribute,
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from obsflow.statuses import CANDIDATE_STATUSES as STATUSES  # noqa: F401 (the table's statuses)
from obsflow.statuses import HELD, PLANNED, READY, WAITING  # noqa: F401
from obsflow.tables.base import LISTED, get_or_none, newest_items, table, update_if
from obsflow.tables.conflicts import ConflictEvent


class CandidatesByStatus(GlobalSecondaryIndex):
    class Meta:
        index_name = "by-status"
        projection = AllProjection()

    status = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class CandidatesByCreated(GlobalSecondaryIndex):
    """Every candidate, newest first (the monitor's newest)."""

    class Meta:
        index_name = "by-created"
        projection = KeysOnlyProjection()

    listing = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class CandidatesPendingReview(GlobalSecondaryIndex):
    """Sparse: only candidates with a conflict that awaits its review ticket carry ``review``."""

    class Meta:
        index_name = "pending-review"
        projection = AllProjection()

    review = UnicodeAttribute(hash_key=True)


@table("candidates")
class CandidateItem(Model):
    class Meta:
        table_name = "obsflow-local-candidates"

    candidate_id = UnicodeAttribute(hash_key=True)
    proposal_id = UnicodeAttribute()
    instrument = UnicodeAttribute()
    observe_op = UnicodeAttribute()
    calibration_ops = ListAttribute(of=UnicodeAttribute, default=list)
    recipe = UnicodeAttribute(null=True)
    priority = NumberAttribute(null=True)
    key = UnicodeAttribute()
    version_id = UnicodeAttribute(null=True)
    status = UnicodeAttribute(default=WAITING)
    created_at = UTCDateTimeAttribute()
    ready_at = UTCDateTimeAttribute(null=True)
    ready_reason = UnicodeAttribute(null=True)
    ready_detail = JSONAttribute(null=True)
    instance_id = UnicodeAttribute(null=True)  # its science instance (the one its status follows)
    instance_ids = ListAttribute(of=UnicodeAttribute, null=True)  # every instance discovery gave it
    held_reason = UnicodeAttribute(null=True)
    events = ListAttribute(of=ConflictEvent, null=True)  # conflicts (tables.conflicts)
    review = UnicodeAttribute(null=True)  # PENDING while conflicts await their review ticket
    reviewed_events = NumberAttribute(null=True)  # how many of the events a review ticket covers

    listing = UnicodeAttribute(default=LISTED)

    by_status = CandidatesByStatus()
    pending_review = CandidatesPendingReview()
    by_created = CandidatesByCreated()

    @property
    def op_ids(self) -> list[str]:
        return [self.observe_op, *self.calibration_ops]


def get(candidate_id: str) -> CandidateItem | None:
    return get_or_none(CandidateItem, candidate_id)


def with_status(status: str) -> list[CandidateItem]:
    return list(CandidateItem.by_status.query(status))


def all_candidates() -> list[CandidateItem]:
    return sorted(
        (item for status in STATUSES for item in with_status(status)),
        key=lambda c: c.created_at,
    )


def newest(limit: int) -> list[CandidateItem]:
    """The ``limit`` newest candidates (ids from the listing index, then the candidates)."""
    return newest_items(CandidateItem, limit, None)[0]


def mark_ready(candidate_id: str, reason: str, detail: dict, at) -> bool:
    """WAITING -> READY exactly once; False if another writer got there first."""
    return update_if(
        CandidateItem(candidate_id),
        [CandidateItem.status.set(READY), CandidateItem.ready_at.set(at), CandidateItem.ready_reason.set(reason),
         CandidateItem.ready_detail.set(detail)],
        CandidateItem.status == WAITING,
    )


def mark_planned(candidate_id: str, instance_id: str, instance_ids: list[str]) -> bool:
    """READY -> PLANNED, naming its recipe instances."""
    return update_if(
        CandidateItem(candidate_id),
        [CandidateItem.status.set(PLANNED), CandidateItem.instance_id.set(instance_id),
         CandidateItem.instance_ids.set(instance_ids)],
        CandidateItem.status == READY,
    )


def hold(candidate_id: str, reason: str) -> bool:
    """READY -> HELD: no run can be planned, a person has to decide."""
    return update_if(
        CandidateItem(candidate_id),
        [CandidateItem.status.set(HELD), CandidateItem.held_reason.set(reason)],
        CandidateItem.status == READY,
    )


PENDING = "PENDING"


def pending_review() -> list[CandidateItem]:
    return list(CandidateItem.pending_review.query(PENDING))


def mark_reviewed(candidate_id: str, events: int) -> bool:
    """The review ticket covers the first ``events`` events: unless another came meanwhile, none is pending."""
    return update_if(CandidateItem(candidate_id),
                     [CandidateItem.review.remove(), CandidateItem.reviewed_events.set(events)],
                     CandidateItem.events[events].does_not_exist())
