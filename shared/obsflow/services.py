"""The one factory: settings bound to the stage's tables, and the services over their AWS adapters.

Lambda handlers, the CLI, the local stack and the demo build their services here, so
each is wired the same way everywhere; unit tests build them over fakes instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from obsflow import metering, tables
from obsflow.reads.catalogue import Catalogue
from obsflow.reads.provenance import Provenance
from obsflow.reads.queries import Queries
from obsflow.reads.store import DynamoReads
from obsflow.runs.platform import (
    BatchJobDefinitions,
    RegisteredRecipes,
    S3Documents,
    SnsNotifier,
    SsmSubmissionSwitch,
    StepFunctionsExecutions,
    SubprocessTaskRunner,
)
from obsflow.runs.service import RunService
from obsflow.runs.service_desk import JiraServiceDesk
from obsflow.runs.store import DynamoRunStore
from obsflow.settings import Settings, get_settings

if TYPE_CHECKING:
    from obsflow.comparison.versions import VersionComparison
    from obsflow.reads.costs import CostReport
    from obsflow.ingest.service import IngestService
    from obsflow.runs.campaigns import CampaignService
    from obsflow.runs.releases import ReleaseService

_bound: dict[str, Settings] = {}
_services: dict[str, tuple[Settings, object]] = {}


def _cached(kind: str, settings: Settings, build):
    """One service of each kind per settings object: built once per Lambda container."""
    if kind not in _services or _services[kind][0] is not settings:
        _services[kind] = (settings, build())
    return _services[kind][1]


def bound_settings(settings: Settings | None = None) -> Settings:
    """The process's settings (or ``settings``), with the table models bound to its stage (once)."""
    settings = settings or get_settings()
    if _bound.get("settings") is not settings:
        tables.bind(settings)
        _bound["settings"] = settings
    return settings


def run_service(settings: Settings | None = None) -> RunService:
    """The run service of the stage."""
    settings = bound_settings(settings)
    def service() -> RunService:
        work = S3Documents(settings)
        return RunService(DynamoRunStore(settings), work, StepFunctionsExecutions(settings), SnsNotifier(settings),
                          SsmSubmissionSwitch(settings), RegisteredRecipes(work), settings,
                          service_desk=lambda: JiraServiceDesk.from_settings(settings),
                          task_runner=SubprocessTaskRunner(settings), invocation_usage=metering.invocation_so_far)

    return _cached("runs", settings, service)


def campaign_service(settings: Settings | None = None) -> "CampaignService":
    """Campaigns and reprocessing plans of the stage, over its run service."""
    from obsflow.runs.campaigns import CampaignService

    return CampaignService(run_service(settings), provenance(settings), BatchJobDefinitions(bound_settings(settings)))


def catalogue(settings: Settings | None = None) -> Catalogue:
    """The processing catalogue of the stage, as its read model answers."""
    settings = bound_settings(settings)
    return _cached("catalogue", settings, lambda: Catalogue(DynamoReads(settings)))


def provenance(settings: Settings | None = None) -> Provenance:
    """The provenance queries of the stage."""
    settings = bound_settings(settings)
    return _cached("provenance", settings, lambda: Provenance(DynamoReads(settings)))


def queries(settings: Settings | None = None) -> Queries:
    """What an operator lists and shows of the stage's records."""
    settings = bound_settings(settings)
    return _cached("queries", settings, lambda: Queries(DynamoReads(settings)))


def costs(settings: Settings | None = None) -> "CostReport":
    """What the stage's runs cost, summed, and the figures of its recipes' runs."""
    from obsflow.reads.costs import CostReport

    settings = bound_settings(settings)
    return _cached("costs", settings, lambda: CostReport(DynamoReads(settings)))


def version_comparison(settings: Settings | None = None, cache_size: int = 0) -> "VersionComparison":
    """Two datasets of the stage compared (``cache_size``: per-frame results kept, for a page that asks again)."""
    from obsflow import aws
    from obsflow.comparison.store import StageVersionReads
    from obsflow.comparison.versions import VersionComparison

    settings = bound_settings(settings)
    return VersionComparison(StageVersionReads(aws.client(settings, "s3"), settings.header_read_bytes,
                                               settings.header_max_bytes), cache_size)


def release_service(settings: Settings | None = None) -> "ReleaseService":
    """The daily release job of the stage."""
    from obsflow.runs.releases import ReleaseService

    settings = bound_settings(settings)
    return ReleaseService(DynamoRunStore(settings), S3Documents(settings), settings)


def ingest_service(settings: Settings | None = None) -> "IngestService":
    # Imported here: the header parser (astropy, the SPEC-0122 validator) is the ingest Lambda's alone,
    # and would add ~0.3 s to the cold start of every other function.
    from obsflow.ingest.batch import build_service as build_ingest_service

    settings = bound_settings(settings)
    return _cached("ingest", settings, lambda: build_ingest_service(settings))
