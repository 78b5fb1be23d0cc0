"""Embargo (proprietary access): when the data of a proposal become public, and the S3 object tags that say so.

A frame's release date comes from its proposal's document (``proposals/<proposal_id>.json``): its
release_date, else its DATE-OBS plus the proposal's embargo_days, else plus the configured default.
A dataset's release date is the latest of its inputs'. It is kept as a *release basis*, the latest
observation date of each proposal among its frames (those of upstream datasets included), so a proposal
document that arrives or changes after the dataset was catalogued re-dates it (the daily release job).
Pure functions: no I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

EMBARGOED = "EMBARGOED"  # a dataset's ``embargo`` while it is under embargo (a sparse index lists them)
# The object tags of a catalogued product; the data bucket's policy reads them.
TAG_PROPOSAL, TAG_RELEASE, TAG_EMBARGOED = "proposal_id", "release_date", "embargoed"


@dataclass(frozen=True)
class Proposal:
    """What a proposal document says: its PI and when its data become public."""

    proposal_id: str
    pi_name: str = ""
    pi_email: str = ""
    release_date: str | None = None  # ISO date
    embargo_days: int | None = None

    @property
    def rule(self) -> str:
        if self.release_date:
            return f"public from {self.release_date}"
        return f"public {self.embargo_days} days after observation"


def release_date(proposal: Proposal | None, observed: dt.date, default_days: int) -> dt.date:
    """When data of ``proposal`` observed on ``observed`` become public."""
    if proposal is not None and proposal.release_date:
        return dt.date.fromisoformat(proposal.release_date)
    days = proposal.embargo_days if proposal is not None and proposal.embargo_days is not None else default_days
    return observed + dt.timedelta(days=days)


def basis(proposal_id: str, observed_on: str, frames: Iterable[tuple[str, str]],
          upstream: Iterable[dict]) -> dict[str, str]:
    """Proposal id -> latest observation date (YYYY-MM-DD) among a dataset's inputs: its own proposal on its
    observation date, its frames (proposal id, DATE-OBS) and the bases of its upstream datasets."""
    latest = {proposal_id: observed_on[:10]}
    pairs = [*((p or proposal_id, date_obs[:10]) for p, date_obs in frames),
             *(pair for other in upstream for pair in other.items())]
    for proposal, day in pairs:
        latest[proposal] = max(latest.get(proposal, day), day)
    return latest


def release_of(release_basis: dict[str, str], proposals: dict[str, Proposal], default_days: int) -> dt.date:
    """A dataset's release date: the latest of its inputs' (release dates grow with observation dates)."""
    return max(release_date(proposals.get(proposal), dt.date.fromisoformat(day), default_days)
               for proposal, day in release_basis.items())


def is_embargoed(release: dt.date, today: dt.date) -> bool:
    """Public on its release date itself."""
    return release > today


def tags(proposal_id: str, release: dt.date, today: dt.date) -> dict[str, str]:
    return {TAG_PROPOSAL: proposal_id, TAG_RELEASE: release.isoformat(),
            TAG_EMBARGOED: "true" if is_embargoed(release, today) else "false"}

