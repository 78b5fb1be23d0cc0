"""Proposals as their documents last said: the PI, and when the proposal's data become public.

The document modified last in S3 is the one in force (``modified_at``), whatever order notifications
arrive in; each revision is an event in the proposal's history.
"""

from __future__ import annotations

from pynamodb.attributes import ListAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.models import Model

from obsflow.embargo import Proposal
from obsflow.tables.base import get_or_none, table
from obsflow.tables.conflicts import ConflictEvent


@table("proposals")
class ProposalItem(Model):
    class Meta:
        table_name = "obsflow-local-proposals"

    proposal_id = UnicodeAttribute(hash_key=True)
    pi_name = UnicodeAttribute()
    pi_email = UnicodeAttribute()
    release_date = UnicodeAttribute(null=True)  # ISO date
    embargo_days = NumberAttribute(null=True)
    key = UnicodeAttribute()
    version_id = UnicodeAttribute(null=True)
    modified_at = UTCDateTimeAttribute()  # the document's S3 LastModified
    received_at = UTCDateTimeAttribute()
    events = ListAttribute(of=ConflictEvent, null=True)  # revisions (tables.conflicts)


def proposal_of(item: ProposalItem) -> Proposal:
    return Proposal(item.proposal_id, item.pi_name, item.pi_email, item.release_date,
                    None if item.embargo_days is None else int(item.embargo_days))


def get_item(proposal_id: str) -> ProposalItem | None:
    return get_or_none(ProposalItem, proposal_id)


def get_many(proposal_ids) -> dict[str, Proposal]:
    """The proposals with a document among ``proposal_ids``."""
    return {item.proposal_id: proposal_of(item)
            for item in ProposalItem.batch_get(sorted(set(proposal_ids)), consistent_read=True)}


def all_proposals() -> list[ProposalItem]:
    """Operator listing only."""
    return sorted(ProposalItem.scan(), key=lambda p: p.proposal_id)
