"""Datasets: the catalogued output of a successful run."""

from __future__ import annotations

import json

from pynamodb.attributes import JSONAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from obsflow import aws
from obsflow.embargo import EMBARGOED
from obsflow.statuses import ACTIVE, DATASET_STATUSES
from obsflow.tables.base import LISTED, bound_settings, get_or_none, newest_items, table, update_if


class DatasetsByCreated(GlobalSecondaryIndex):
    """Every dataset, newest first (``datasets list`` pages)."""

    class Meta:
        index_name = "by-created"
        projection = KeysOnlyProjection()

    listing = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class DatasetsByRecipeName(GlobalSecondaryIndex):
    class Meta:
        index_name = "by-recipe-name"
        projection = AllProjection()

    recipe_name = UnicodeAttribute(hash_key=True)  # the recipe's name; a version filters the results
    created_at = UTCDateTimeAttribute(range_key=True)


class DatasetsByRecipe(GlobalSecondaryIndex):
    class Meta:
        index_name = "by-recipe"
        projection = AllProjection()

    recipe = UnicodeAttribute(hash_key=True)  # name@version
    created_at = UTCDateTimeAttribute(range_key=True)


class DatasetsByStatus(GlobalSecondaryIndex):
    class Meta:
        index_name = "by-status"
        projection = AllProjection()

    status = UnicodeAttribute(hash_key=True)  # ACTIVE, DEPRECATED, ...
    created_at = UTCDateTimeAttribute(range_key=True)


class DatasetsByCodeVersion(GlobalSecondaryIndex):
    class Meta:
        index_name = "by-code-version"
        projection = AllProjection()

    code_version = UnicodeAttribute(hash_key=True)  # the obsflow release its tasks ran
    created_at = UTCDateTimeAttribute(range_key=True)


class DatasetsByInstance(GlobalSecondaryIndex):
    class Meta:
        index_name = "by-instance"
        projection = AllProjection()

    instance_id = UnicodeAttribute(hash_key=True)  # the recipe instance whose run made it
    created_at = UTCDateTimeAttribute(range_key=True)


class DatasetsByKind(GlobalSecondaryIndex):
    class Meta:
        index_name = "by-kind"
        projection = AllProjection()

    kind = UnicodeAttribute(hash_key=True)  # science, calibration, summary
    created_at = UTCDateTimeAttribute(range_key=True)


class DatasetsByProduct(GlobalSecondaryIndex):
    class Meta:
        index_name = "by-product"
        projection = AllProjection()

    product_id = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class DatasetsByCampaign(GlobalSecondaryIndex):
    class Meta:
        index_name = "by-campaign"
        projection = AllProjection()

    campaign = UnicodeAttribute(hash_key=True)  # the campaign whose run made it (none for first processing)
    created_at = UTCDateTimeAttribute(range_key=True)


class DatasetsUnderEmbargo(GlobalSecondaryIndex):
    """Sparse: only datasets still under embargo carry ``embargo``, so the release job and `obsflow datasets
    list --embargoed` read those alone, by release date."""

    class Meta:
        index_name = "under-embargo"
        projection = AllProjection()

    embargo = UnicodeAttribute(hash_key=True)  # embargo.EMBARGOED
    release_date = UnicodeAttribute(range_key=True)


@table("datasets")
class DatasetItem(Model):
    class Meta:
        table_name = "obsflow-local-datasets"

    dataset_id = UnicodeAttribute(hash_key=True)
    run_id = UnicodeAttribute()
    proposal_id = UnicodeAttribute()
    candidate_id = UnicodeAttribute()
    recipe = UnicodeAttribute()
    status = UnicodeAttribute(default=ACTIVE)
    bucket = UnicodeAttribute()
    prefix = UnicodeAttribute()
    product_id = UnicodeAttribute()
    version_key = UnicodeAttribute()
    frame_count = NumberAttribute(default=0)
    # Files and provenance grow with the frames: inline while small, else in S3 (``spill``), so an item stays
    # far below DynamoDB's 400 KB whatever the frame count. Read them as ``files`` and ``provenance``.
    files_inline = JSONAttribute(attr_name="files", null=True)
    provenance_inline = JSONAttribute(attr_name="provenance", null=True)
    spilled = UnicodeAttribute(null=True)  # "bucket/key" of {"files", "provenance"} when they are in S3
    listing = UnicodeAttribute(default=LISTED)
    created_at = UTCDateTimeAttribute()
    superseded_by = UnicodeAttribute(null=True)
    kind = UnicodeAttribute(default="science")
    instance_id = UnicodeAttribute(null=True)
    reference = UnicodeAttribute(null=True)
    recipe_name = UnicodeAttribute(null=True)
    code_version = UnicodeAttribute(null=True)
    decisions = JSONAttribute(null=True)
    superseded_inputs = JSONAttribute(null=True)  # inputs deprecated or rejected since (runs.cataloguing)
    cost = JSONAttribute(null=True)
    campaign = UnicodeAttribute(null=True)
    expires_at = UTCDateTimeAttribute(null=True)
    release_date = UnicodeAttribute(null=True)  # ISO date: public from then (obsflow.embargo)
    release_basis = JSONAttribute(null=True)  # proposal id -> latest observation date among its inputs
    embargo = UnicodeAttribute(null=True)  # EMBARGOED until released
    released_at = UTCDateTimeAttribute(null=True)
    qc = JSONAttribute(null=True)  # metric -> value, recorded when catalogued (obsflow.qc); absent: not yet indexed
    qc_notes = JSONAttribute(null=True)  # metric -> why its value is not recorded (NaN, out of range)
    certification = UnicodeAttribute(null=True)  # a master calibration's: UNCERTIFIED, CERTIFIED, REJECTED
    certification_gates = JSONAttribute(null=True)  # its recipe's QC gates as judged when catalogued
    certification_history = JSONAttribute(null=True)  # each move: who, when, why

    @property
    def files(self) -> list[dict]:
        return self._spilled_record()["files"] if self.spilled else (self.files_inline or [])

    @property
    def provenance(self) -> dict:
        return self._spilled_record()["provenance"] if self.spilled else (self.provenance_inline or {})

    def _spilled_record(self) -> dict:
        if getattr(self, "_record", None) is None:
            bucket, key = self.spilled.split("/", 1)
            body = aws.client(bound_settings(), "s3").get_object(Bucket=bucket, Key=key)["Body"].read()
            self._record = json.loads(body)
        return self._record

    by_product = DatasetsByProduct()
    by_kind = DatasetsByKind()
    by_recipe_name = DatasetsByRecipeName()
    by_recipe = DatasetsByRecipe()
    by_status = DatasetsByStatus()
    by_code_version = DatasetsByCodeVersion()
    by_instance = DatasetsByInstance()
    by_campaign = DatasetsByCampaign()
    under_embargo = DatasetsUnderEmbargo()
    by_created = DatasetsByCreated()


SPILL_BYTES = 64 * 1024
RECORDS_PREFIX = "catalogue/datasets/"  # in the work bucket


def new_item(dataset_id: str, files: list[dict], provenance: dict, **attributes) -> DatasetItem:
    """A dataset's item: its files and provenance inline, or (above SPILL_BYTES of JSON) written to the work
    bucket under ``catalogue/datasets/`` and named by the item."""
    record = json.dumps({"files": files, "provenance": provenance}, default=str)
    if len(record) <= SPILL_BYTES:
        return DatasetItem(dataset_id, files_inline=files, provenance_inline=provenance, **attributes)
    settings = bound_settings()
    bucket, key = settings.bucket_name("work"), f"{RECORDS_PREFIX}{dataset_id}.json"
    aws.client(settings, "s3").put_object(Bucket=bucket, Key=key, Body=record.encode(), ContentType="application/json")
    return DatasetItem(dataset_id, spilled=f"{bucket}/{key}", **attributes)


def get(dataset_id: str) -> DatasetItem | None:
    return get_or_none(DatasetItem, dataset_id)


def move_certification(dataset_id: str, to: str, allowed_from: tuple[str, ...], history: list[dict]) -> bool:
    """Move a master calibration's certification to ``to``, with its history (the earlier moves and this one), if
    it is in one of ``allowed_from``; False if it was not."""
    return update_if(DatasetItem(dataset_id), [DatasetItem.certification.set(to),
                                               DatasetItem.certification_history.set(history)],
                     DatasetItem.certification.is_in(*allowed_from))


def of_recipe_name(name: str) -> list[DatasetItem]:
    return list(DatasetItem.by_recipe_name.query(name))


def with_status(status: str) -> list[DatasetItem]:
    return list(DatasetItem.by_status.query(status))


def of_code_version(version: str) -> list[DatasetItem]:
    return list(DatasetItem.by_code_version.query(version))


# What a listing shows: the large JSON attributes (files, provenance, decisions, cost) stay behind,
# so a listing of thousands of datasets reads and transfers a fraction of each item.
LISTED_ATTRIBUTES = ("dataset_id", "kind", "proposal_id", "product_id", "version_key", "status", "frame_count",
                     "recipe", "code_version", "campaign", "created_at", "run_id", "instance_id", "bucket", "prefix",
                     "release_date", "embargo", "qc")


def listed_where(index: str, value: str) -> list[DatasetItem]:
    """The listed attributes of the datasets whose index attribute has the value (one index query), oldest first."""
    return list(getattr(DatasetItem, index).query(value, attributes_to_get=list(LISTED_ATTRIBUTES)))


def ids_where(index: str, value: str) -> set[str]:
    """The ids of the datasets whose index attribute has the value: one keys-only index query."""
    return {d.dataset_id for d in getattr(DatasetItem, index).query(value, attributes_to_get=["dataset_id"])}


def listed(dataset_ids: set[str]) -> list[DatasetItem]:
    """The datasets' listed attributes (batched key reads), oldest first."""
    items = DatasetItem.batch_get(sorted(dataset_ids), attributes_to_get=list(LISTED_ATTRIBUTES))
    return sorted(items, key=lambda d: d.created_at)


def listed_all() -> list[DatasetItem]:
    return sorted(DatasetItem.scan(attributes_to_get=list(LISTED_ATTRIBUTES)), key=lambda d: d.created_at)


def listed_page(limit: int, start: dict | None) -> tuple[list[DatasetItem], dict | None]:
    """A page of every dataset's listed attributes, newest first (ids from the listing index, then the items)."""
    return newest_items(DatasetItem, limit, start, attributes_to_get=list(LISTED_ATTRIBUTES))


def without_qc() -> list[DatasetItem]:
    """The datasets whose QC values were never recorded (catalogued before they were): a scan, for the one-off
    reindex."""
    return list(DatasetItem.scan(DatasetItem.qc.does_not_exist()))


def any_created_before(at) -> bool:
    """Whether a dataset was created before ``at``: a one-item query per status."""
    return any(next(iter(DatasetItem.by_status.query(status, DatasetItem.created_at < at, limit=1,
                                                       attributes_to_get=["dataset_id"])), None) is not None
               for status in DATASET_STATUSES)


def any_dataset() -> bool:
    return next(iter(DatasetItem.scan(limit=1, attributes_to_get=["dataset_id"])), None) is not None


def under_embargo() -> list[DatasetItem]:
    """The datasets still under embargo, soonest release first."""
    return list(DatasetItem.under_embargo.query(EMBARGOED))


def of_instance(instance_id: str) -> list[DatasetItem]:
    return list(DatasetItem.by_instance.query(instance_id))


def of_campaign(campaign: str) -> list[DatasetItem]:
    return list(DatasetItem.by_campaign.query(campaign))


def of_kind(kind: str) -> list[DatasetItem]:
    return list(DatasetItem.by_kind.query(kind))


def of_product(product_id: str) -> list[DatasetItem]:
    return list(DatasetItem.by_product.query(product_id))

