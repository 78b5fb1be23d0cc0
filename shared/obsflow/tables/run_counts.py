"""How many runs entered each status, by the hour: the monitor counts a day's runs in one query, whatever the
history holds.

Each count is added in the same transaction as the status it counts (``tables.runs``): a run's creation and each
of its moves. A move repeated by a re-delivered event is refused by its condition, and so counts nothing; the
counts are the runs' histories, by the hour of each entry and its status.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from obsflow.tables.base import table

TABLE = "run-counts"
# The one partition of the counts: a run's moves are a few a second at the most (a partition takes 1,000 writes a
# second), and a day of them is one query of at most 25 hours times the statuses.
COUNTED = "RUNS"
_HOUR = "%Y-%m-%dT%H"


@table(TABLE)
class RunCountItem(Model):
    class Meta:
        table_name = "obsflow-local-run-counts"

    counted = UnicodeAttribute(hash_key=True)
    hour_status = UnicodeAttribute(range_key=True)  # "2026-12-06T17 SUCCEEDED": the hour (UTC) a status was entered
    runs = NumberAttribute(default=0)


def _key(at: dt.datetime, status: str) -> str:
    return f"{at.astimezone(dt.timezone.utc).strftime(_HOUR)} {status}"


def _counted(entered: Iterable[tuple[dt.datetime, str]]) -> Counter[str]:
    return Counter(_key(at, status) for at, status in entered)


def hour_of(at: dt.datetime) -> dt.datetime:
    """The start of ``at``'s hour (UTC): where the counts of a time begin."""
    return at.astimezone(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)


def count(transaction: TransactWrite, entered: Iterable[tuple[dt.datetime, str]]) -> None:
    """Add runs entering statuses, (time, status) each, to the transaction that records them: one update a count
    (a transaction may not name an item twice)."""
    for key, runs in _counted(entered).items():
        transaction.update(RunCountItem(COUNTED, key), actions=[RunCountItem.runs.add(runs)])


def entered_since(at: dt.datetime) -> dict[str, int]:
    """How many runs entered each status from the start of ``at``'s hour on (one query)."""
    entered: Counter[str] = Counter()
    for item in RunCountItem.query(COUNTED, RunCountItem.hour_status >= hour_of(at).strftime(_HOUR)):
        entered[item.hour_status.split(" ", 1)[1]] += int(item.runs)
    return dict(entered)


def write_counts(entered: Iterable[tuple[dt.datetime, str]]) -> int:
    """Write the counts of these (time, status) entries as they are, each count whole (a fill: writing them again
    changes nothing); how many counts."""
    counts = _counted(entered)
    with RunCountItem.batch_write() as batch:
        for key, runs in counts.items():
            batch.save(RunCountItem(COUNTED, key, runs=runs))
    return len(counts)
