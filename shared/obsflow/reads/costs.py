"""What runs cost, summed: by the UTC day they ended or by proposal, and the figures of each recipe's runs that the
capacity model (``obsflow.capacity``) is built from.

A run's cost is recorded when it ends (``runs.costs``): the runs that SUCCEEDED or FAILED are read, one index query
per status. A cancelled run records none.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from obsflow.capacity import RecipeFigures, recipe_figures
from obsflow.reads.ports import OperatorReads
from obsflow.runs.costs import summed
from obsflow.statuses import FAILED, SUCCEEDED

GROUPS = ("day", "proposal")


class CostReport:
    def __init__(self, reads: OperatorReads):
        self.reads = reads

    def _ended(self, statuses=(SUCCEEDED, FAILED)) -> list[dict]:
        return [record for status in statuses for record in self.reads.run_records(status) if record.get("cost")]

    def summed_by(self, by: str, since: dt.date | None = None) -> list[dict]:
        """One row per day (the UTC day the runs ended) or proposal: its runs' costs added up, oldest day or
        proposal first."""
        if by not in GROUPS:
            raise ValueError(f"costs are summed by {' or '.join(GROUPS)}, not {by!r}")
        groups: dict[str, list[dict]] = defaultdict(list)
        for record in self._ended():
            ended = record.get("finished_at") or record["created_at"]
            if since is not None and ended.date() < since:
                continue
            groups[ended.date().isoformat() if by == "day" else record["proposal_id"]].append(record["cost"])
        return [{by: key, **summed(costs)} for key, costs in sorted(groups.items())]

    def recipe_figures(self) -> dict[str, RecipeFigures]:
        """Each recipe's figures, from its runs that succeeded (``capacity.recipe_figures``), saying so."""
        by_recipe: dict[str, list[dict]] = defaultdict(list)
        for record in self._ended((SUCCEEDED,)):
            by_recipe[record["recipe"]].append(record)
        figures = {}
        for name, records in sorted(by_recipe.items()):
            latest = max(records, key=lambda r: r["created_at"])
            recipe = self.reads.recipe_version(name, latest["version"])
            ended = sorted(r.get("finished_at") or r["created_at"] for r in records)
            source = (f"measured: the runs of {name} on this stage (those that reused nothing, if any), from "
                      f"{ended[0]:%Y-%m-%d} to {ended[-1]:%Y-%m-%d}")
            found = recipe_figures(recipe, [(r.get("configuration") or {}, r["cost"]) for r in records], source)
            if found is not None:
                figures[name] = found.model_copy(update={"source": f"{source}, {found.runs} run(s)"})
        return figures
