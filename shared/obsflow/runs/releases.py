"""The daily release job: datasets whose embargo has ended become readable by the archive's public role.

Every dataset still under embargo is dated again from its release basis and the proposal documents in
force (one that came, or changed, after the dataset was catalogued moves its date either way). One that
is due is re-tagged ``embargoed=false`` object by object, then marked released: a job stopped half-way
leaves the dataset under embargo, and the next run tags it again (tagging is idempotent). A released
dataset stays released: a proposal revised later to a later date changes nothing for it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from obsflow import embargo
from obsflow.observability import logger
from obsflow.runs.domain import Dataset
from obsflow.runs.ports import Documents, RunStore
from obsflow.settings import Settings


@dataclass
class ReleaseReport:
    released: list[str] = field(default_factory=list)
    redated: list[dict] = field(default_factory=list)  # dataset_id, was, now
    under_embargo: int = 0  # after this run
    objects_tagged: int = 0


class ReleaseService:
    def __init__(self, store: RunStore, documents: Documents, settings: Settings):
        self.store, self.documents, self.settings = store, documents, settings

    def release(self, now: dt.datetime) -> ReleaseReport:
        report, today = ReleaseReport(), now.date()
        embargoed = self.store.datasets_under_embargo()
        proposals = self.store.proposals({p for d in embargoed for p in d.release_basis})
        for dataset in embargoed:
            release = embargo.release_of(dataset.release_basis, proposals, self.settings.default_embargo_days)
            if not embargo.is_embargoed(release, today):
                # The objects first: a dataset is marked released only once every object says so.
                self._tag(dataset, release, today, report, embargo=None, released_at=now)
                report.released.append(dataset.dataset_id)
                logger.info("dataset released", extra={"dataset_id": dataset.dataset_id,
                                                       "release_date": release.isoformat()})
                continue
            report.under_embargo += 1
            if release.isoformat() != dataset.release_date:
                self._tag(dataset, release, today, report)
                report.redated.append({"dataset_id": dataset.dataset_id, "was": dataset.release_date,
                                       "now": release.isoformat()})
        logger.info("release job", extra={"released": report.released, "redated": report.redated,
                                          "under_embargo": report.under_embargo})
        return report

    def _tag(self, dataset: Dataset, release: dt.date, today: dt.date, report: ReleaseReport, **changes) -> None:
        report.objects_tagged += self.documents.tag_prefix("data", dataset.prefix,
                                                           embargo.tags(dataset.proposal_id, release, today))
        self.store.update_dataset(dataset.dataset_id, release_date=release.isoformat(), **changes)
