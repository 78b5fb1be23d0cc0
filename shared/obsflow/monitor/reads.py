"""What the monitor shows, read from a stage through the CLI's read models (nothing is written)."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter

from obsflow import aws, catalogue, provenance, queries, services
from obsflow.errors import NotFound
from obsflow.recipes.model import Recipe
from obsflow.settings import Settings
from obsflow.tables import recipes, tickets

LISTED = 50  # the newest rows of each kind on the overview; the CLI lists them all


def _newest(rows: list[dict], key: str = "created_at") -> list[dict]:
    return sorted(rows, key=lambda r: str(r.get(key) or ""), reverse=True)[:LISTED]


def _waiting_reason(candidate: dict) -> str:
    if candidate["status"] != "WAITING":
        return candidate.get("held_reason") or candidate.get("ready_reason") or ""
    detail = queries.candidate_detail(candidate["candidate_id"])
    lacking = [f"{op['op_id']}: {op['received']} of {op['expected'] or '?'} frames"
               for op in detail["ops"] if not op["complete"]]
    return "waiting for " + "; ".join(lacking) if lacking else "complete, to be released at the next check"


class StageReads:
    def __init__(self, settings: Settings):
        self.settings = services.bound_settings(settings)
        self.runs = services.run_service(self.settings)
        self.sfn = aws.client(self.settings, "stepfunctions")
        self.s3 = aws.client(self.settings, "s3")

    def overview(self) -> dict:
        run_rows = queries.run_rows()
        candidates = _newest(queries.candidate_rows())
        for candidate in candidates:
            candidate["why"] = _waiting_reason(candidate)
        return {
            "run_counts": dict(sorted(Counter(r["status"] for r in run_rows).items())),
            "ops": sorted(queries.op_rows(), key=lambda o: (o["complete"], o["op_id"]))[:LISTED],
            "candidates": candidates,
            "runs": _newest(run_rows),
            "tickets": _newest([t.attribute_values for t in tickets.all_tickets()]),
            "datasets": _newest(provenance.dataset_rows()),
            "instances": _newest(catalogue.instance_rows()),
            "campaigns": _newest([{**dataclasses.asdict(c), "instances": len(c.instance_ids)}
                                  for c in services.campaign_service(self.settings).store.all_campaigns()]),
        }

    def run(self, run_id: str) -> tuple[dict, Recipe]:
        detail = queries.ended_run_detail(run_id, self.sfn, self.runs)
        for task in detail["tasks"]:
            started, ended = task.get("started"), task.get("ended")
            task["duration_s"] = round((ended - started).total_seconds(), 1) if started and ended else None
        recipe = Recipe.model_validate(recipes.RecipeItem.get(detail["recipe"], detail["version"]).definition)
        return detail, recipe

    def dataset(self, dataset_id: str) -> tuple[dict, dict | None]:
        detail = queries.dataset_detail(dataset_id)
        names = {f["name"] for f in detail.get("files", [])}
        if "quality_metrics.json" not in names:
            return detail, None
        try:
            body = self.s3.get_object(Bucket=detail["bucket"], Key=detail["prefix"] + "quality_metrics.json")["Body"]
        except self.s3.exceptions.NoSuchKey as exc:
            raise NotFound(f"dataset {dataset_id} lists quality_metrics.json but S3 has none at {detail['prefix']}") from exc
        return detail, json.loads(body.read())
