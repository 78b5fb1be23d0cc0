"""What each run used, kept beside its task records, and its cost recorded when it ends.

Every Lambda invocation that works for a run and every Batch job of it writes one usage entry
(``layout.usage_key``; ``obsflow.usage`` and the task runtime write them): its seconds, its configured memory or
resource class, and the AWS requests it made (``obsflow.metering``). A retried or re-delivered invocation and a
redriven job are entries of their own: each was billed. The handler that ends the run (FinishRun, FailRun) adds
its own usage so far and records the cost (``runs.costs``) on the run and its dataset (``runs.lifecycle``).
"""

from __future__ import annotations

import json

from obsflow.runs import costs, layout
from obsflow.runs.cataloguing import Cataloguing
from obsflow.runs.context import Part
from obsflow.runs.domain import Run
from obsflow.runs.reuse import AT_START


class Accounting(Part):
    def __init__(self, ctx, cataloguing: Cataloguing):
        super().__init__(ctx)
        self.cataloguing = cataloguing

    def record_usage(self, run_ids: list[str], entry: dict) -> None:
        """Keep ``entry`` with each run, each run's share an equal part (a submitter pass works for several). The
        entry counts its own records' writes."""
        run_ids = sorted(set(run_ids))
        if not run_ids:
            return
        entry = {**entry, "s3_put_requests": entry.get("s3_put_requests", 0) + len(run_ids),
                 "s3_bytes_written": entry.get("s3_bytes_written", 0) + len(run_ids) * len(json.dumps(entry))}
        for run_id in run_ids:
            self.documents.put_json("work", layout.usage_key(run_id, entry["source"]),
                                    {**entry, "share": round(1 / len(run_ids), 6)})

    def usage_of(self, run: Run) -> list[dict]:
        """Every usage entry recorded for the run, and the invocation's in progress (so far)."""
        keys = sorted(self.documents.keys("work", layout.usage_prefix(run.run_id)))
        entries = self.documents.get_json_many("work", keys)
        live = self.ctx.invocation_usage()
        return [*entries, live] if live else entries

    def cost_of(self, run: Run, succeeded: bool, input_dataset: dict | None = None) -> dict:
        recipe = self.recipes.get(run.recipe, run.version)
        campaign = self.store.campaign(run.campaign) if run.campaign else None
        if input_dataset is None:
            input_dataset = self.documents.get_json("work", run.input_dataset_key) if run.input_dataset_key else {}
        records = self.cataloguing.task_records(run)
        frames = input_dataset.get("frames", [])
        return costs.run_cost(
            self.usage_of(run), recipe, self.settings.prices, succeeded,
            notify_pi=not (campaign is not None and campaign.developer),
            reused_at_start=frozenset(r["task"] for r in records if r.get(AT_START)),
            tasks_reused=sum("reused_from" in r for r in records), frames=len(frames),
            input_bytes=sum(f.get("size") or 0 for f in frames), output_bytes=run.output_bytes or 0,
            modelled_pull_s=self.settings.modelled_pull_s)
