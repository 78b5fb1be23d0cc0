"""The daily release job: datasets whose embargo has ended become readable by the archive's public role.

Every dataset still under embargo is dated again from its release basis and the proposal documents in
force (one that came, or changed, after the dataset was catalogued moves its date either way). One that
is due is re-tagged ``embargoed=false`` object by object, then marked released: a job stopped half-way, or
a dataset whose tagging failed, stays under embargo, and the next run tags it again (tagging is
idempotent); the other datasets go on. A released dataset stays released: a proposal revised later to a
later date changes nothing for it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from obsflow import embargo
from obsflow.errors import TransientError
from obsflow.observability import logger
from obsflow.runs.domain import Dataset
from obsflow.runs.ports import Documents, RunStore
from obsflow.settings import Settings


@dataclass
class ReleaseReport:
    released: list[str] = field(default_factory=list)
    redated: list[dict] = field(default_factory=list)  # dataset_id, was, now
    under_embargo: int = 0  # after this run
    failed: list[dict] = field(default_factory=list)  # dataset_id, error: still under embargo, tried again next run
    objects_tagged: int = 0
    dry_run: bool = False  # as of a time still to come, without an override: what it would do, nothing done


@dataclass(frozen=True)
class EarlyRelease:
    """Who releases datasets before their release date (a job run as of a time still to come), and why."""

    by: str
    reason: str

    def __post_init__(self):
        if not self.by.strip() or not self.reason.strip():
            raise ValueError("an early release names who releases and why")


class ReleaseService:
    def __init__(self, store: RunStore, documents: Documents, settings: Settings,
                 clock=lambda: dt.datetime.now(dt.timezone.utc)):
        self.store, self.documents, self.settings, self.clock = store, documents, settings, clock

    def release(self, now: dt.datetime, early: EarlyRelease | None = None) -> ReleaseReport:
        """The job as of ``now``. A ``now`` on a later day than the real one is a dry run, unless ``early`` says
        who releases early and why: each dataset so released records it, and its release time is the real one."""
        report = ReleaseReport(dry_run=now.date() > self.clock().date() and early is None)
        embargoed = self.store.datasets_under_embargo()
        proposals = self.store.proposals({p for d in embargoed for p in d.release_basis})
        for dataset in embargoed:
            try:
                self._release_or_redate(dataset, proposals, now, report, early)
            except TransientError as exc:  # this dataset stays under embargo until a later run; the others go on
                report.failed.append({"dataset_id": dataset.dataset_id, "error": str(exc)})
                logger.error("dataset not released", extra={"dataset_id": dataset.dataset_id, "error": str(exc)})
        logger.info("release job", extra={"released": report.released, "redated": report.redated,
                                          "under_embargo": report.under_embargo, "failed": report.failed,
                                          "dry_run": report.dry_run, "early": early.__dict__ if early else None})
        return report

    def _release_or_redate(self, dataset: Dataset, proposals: dict, now: dt.datetime, report: ReleaseReport,
                           early: EarlyRelease | None) -> None:
        today, real = now.date(), self.clock()
        release = embargo.release_of(dataset.release_basis, proposals, self.settings.default_embargo_days)
        if not embargo.is_embargoed(release, today):
            if report.dry_run:
                report.released.append(dataset.dataset_id)
                return
            decisions = dataset.decisions
            if embargo.is_embargoed(release, real.date()):  # before its date: only by an explicit, recorded override
                decisions = [*decisions, {"decision": "release-early", "by": early.by, "at": real.isoformat(),
                                          "reason": early.reason, "as_of": now.isoformat(),
                                          "release_date": release.isoformat()}]
            # The objects first: a dataset is marked released only once every object says so.
            self._tag(dataset, release, today, report, embargo=None, released_at=real, decisions=decisions)
            report.released.append(dataset.dataset_id)
            logger.info("dataset released", extra={"dataset_id": dataset.dataset_id, "release_date": release.isoformat()})
            return
        report.under_embargo += 1
        if release.isoformat() != dataset.release_date:
            if not report.dry_run:
                self._tag(dataset, release, today, report)
            report.redated.append({"dataset_id": dataset.dataset_id, "was": dataset.release_date,
                                   "now": release.isoformat()})

    def _tag(self, dataset: Dataset, release: dt.date, today: dt.date, report: ReleaseReport, **changes) -> None:
        report.objects_tagged += self.documents.tag_prefix("data", dataset.prefix,
                                                           embargo.tags(dataset.proposal_id, release, today))
        self.store.update_dataset(dataset.dataset_id, release_date=release.isoformat(), **changes)
