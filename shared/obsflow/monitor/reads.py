"""What the monitor shows, read from a stage through the CLI's read models (nothing is written)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json

from botocore.exceptions import ClientError, HTTPClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as NoConnection

from obsflow import aws, services
from obsflow.statuses import WAITING
from obsflow.errors import NotFound, ObsflowError, TransientError
from obsflow.reads.pages import Page
from obsflow.reads.queries import Queries
from obsflow.recipes.model import Recipe
from obsflow.runs.campaigns import approval_note
from obsflow.settings import Settings
from obsflow.tables import recipes, run_counts, tickets

LISTED = 50  # the rows of a page: the overview shows the newest of each kind, /runs/ (...) the rest, a page each
RUN_COUNTS_OVER = dt.timedelta(hours=24)  # the overview counts the runs' moves from the start of the hour this long ago
COMPARED_FRAMES_KEPT = 4096  # per-frame results of /compare kept: a page refreshing reads only records and metrics
# What "nothing answers" looks like from botocore: no connection (a stopped local stack, no network), or no
# credentials, or credentials AWS does not take. Anything else is a fault of its own and is reported as one.
_NO_ANSWER = (NoConnection, HTTPClientError, NoCredentialsError)
_CREDENTIALS_REFUSED = {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException"}


class StageNotAnswering(ObsflowError):
    """The stage cannot be read at all: its endpoint does not answer, or AWS does not take the credentials."""


def _nothing_answers(exc: BaseException | None) -> bool:
    while exc is not None:  # pynamodb keeps botocore's error as its cause
        if isinstance(exc, _NO_ANSWER):
            return True
        if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in _CREDENTIALS_REFUSED:
            return True
        exc = getattr(exc, "cause", None) or exc.__cause__
    return False


def _not_answering_message(settings: Settings) -> str:
    if settings.endpoint_url:
        return (f"the stack is not answering at {settings.endpoint_url}: start it with `obsflow local serve` "
                "(or check AWS credentials)")
    return (f"stage '{settings.stage}' is not answering in AWS region {settings.region}: check AWS credentials "
            "(a local stack? start it with `obsflow local serve`)")


def _reads_the_stage(read):
    """A read that raises StageNotAnswering when nothing answers, so the page can say so instead of a traceback."""

    @functools.wraps(read)
    def reading(self: "StageReads", *args):
        try:
            return read(self, *args)
        except (*aws.AWS_ERRORS, TransientError) as exc:
            if not _nothing_answers(exc):
                raise
            raise StageNotAnswering(_not_answering_message(self.settings)) from exc

    return reading


def _newest(rows: list[dict], key: str = "created_at") -> list[dict]:
    return sorted(rows, key=lambda r: str(r.get(key) or ""), reverse=True)[:LISTED]


def _waiting_reason(queries: Queries, candidate: dict) -> str:
    if candidate["status"] != WAITING:
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
        self.versions = services.version_comparison(self.settings, cache_size=COMPARED_FRAMES_KEPT)
        self.queries = services.queries(self.settings)

    @_reads_the_stage
    def overview(self) -> dict:
        queries, now = self.queries, dt.datetime.now(dt.timezone.utc)
        candidates = queries.newest_candidate_rows(LISTED)
        for candidate in candidates:
            candidate["why"] = _waiting_reason(queries, candidate)
        runs, datasets, instances = (self.listing(kind) for kind in ("runs", "datasets", "catalogue"))
        return {  # each the newest page of its kind: what the page costs does not grow with the history
            "run_counts": queries.runs_entered_since(now - RUN_COUNTS_OVER),
            "run_counts_since": run_counts.hour_of(now - RUN_COUNTS_OVER),
            "ops": sorted(queries.newest_op_rows(LISTED), key=lambda o: o["complete"]),
            "candidates": candidates,
            "runs": runs.rows, "more_runs": runs.next,
            "tickets": [t.attribute_values for t in tickets.newest(LISTED)],
            "datasets": datasets.rows, "more_datasets": datasets.next,
            "instances": instances.rows, "more_instances": instances.next,
            "windows": queries.window_rows(self.settings.processing_windows(), dt.datetime.now(dt.timezone.utc)),
            "campaigns": _newest([{**dataclasses.asdict(c), "instances": len(c.instance_ids),
                                   "approval_note": approval_note(c)}
                                  for c in services.campaign_service(self.settings).store.all_campaigns()]),
        }

    @_reads_the_stage
    def listing(self, kind: str, next_token: str | None = None) -> Page:
        """A page of runs, datasets or the catalogue's instances, newest first (``next_token``: the page after the
        one that gave it)."""
        read = {"runs": self.queries.run_page, "datasets": services.provenance(self.settings).dataset_page,
                "catalogue": services.catalogue(self.settings).instance_page}[kind]
        try:
            return read(limit=LISTED, next_token=next_token)
        except ValueError as exc:  # a token of another listing, or none
            raise NotFound(f"{exc}: start from /{kind}/") from exc

    @_reads_the_stage
    def run(self, run_id: str) -> tuple[dict, Recipe]:
        detail = self.queries.ended_run_detail(run_id, self.sfn, self.runs)
        for task in detail["tasks"]:
            started, ended = task.get("started"), task.get("ended")
            task["duration_s"] = round((ended - started).total_seconds(), 1) if started and ended else None
        recipe = Recipe.model_validate(recipes.RecipeItem.get(detail["recipe"], detail["version"]).definition)
        return detail, recipe

    @_reads_the_stage
    def campaign(self, name: str) -> dict:
        return services.campaign_service(self.settings).detail(name)

    @_reads_the_stage
    def campaign_document(self, name: str, number: int) -> tuple[dict, bytes]:
        return services.campaign_service(self.settings).document(name, number)

    @_reads_the_stage
    def dataset(self, dataset_id: str) -> tuple[dict, dict | None]:
        detail = self.queries.dataset_detail(dataset_id)
        names = {f["name"] for f in detail.get("files", [])}
        if "quality_metrics.json" not in names:
            return detail, None
        try:
            body = self.s3.get_object(Bucket=detail["bucket"], Key=detail["prefix"] + "quality_metrics.json")["Body"]
        except self.s3.exceptions.NoSuchKey as exc:
            raise NotFound(f"dataset {dataset_id} lists quality_metrics.json but S3 has none at {detail['prefix']}") from exc
        return detail, json.loads(body.read())

    @_reads_the_stage
    def compare(self, a_id: str, b_id: str) -> dict:
        """Two datasets compared (ids already checked): provenance, QC values, per-frame pixel statistics."""
        return self.versions.compare(*self.versions.records(a_id, b_id))
