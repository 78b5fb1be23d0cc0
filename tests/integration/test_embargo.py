"""Embargo on moto: proposal documents through ingest, their revision rule in DynamoDB, products' object tags
and the datasets still under embargo listed from their index."""

from __future__ import annotations

import datetime as dt
import json

import boto3

from obsflow import tables
from obsflow.embargo import EMBARGOED
from obsflow.ingest.documents import ProposalDocument
from obsflow.ingest.store import DynamoIngestStore
from obsflow.reads.provenance import Provenance
from obsflow.reads.store import DynamoReads
from obsflow.runs.domain import Dataset
from obsflow.runs.platform import S3Documents
from obsflow.runs.store import DynamoRunStore
from obsflow.tables import conflicts, proposals

DAY = dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)


def document(**fields) -> dict:
    return {"proposal_id": "pid_1_23", "pi": {"name": "A. Astronomer", "email": "pi@example.org"}, **fields}


def test_a_proposal_document_uploaded_to_the_ingest_bucket_is_recorded_and_a_broken_one_quarantined(stack):
    # When the summit uploads a proposal document, and one that is not JSON
    stack.put("proposals/pid_1_23.json", json.dumps(document(embargo_days=90)).encode())
    stack.put("proposals/pid_2_1.json", b"{not json")
    stack.drain()
    # Then the first is the proposal's, the second kept in quarantine with its reason
    assert proposals.get_many(["pid_1_23", "pid_2_1"])["pid_1_23"].embargo_days == 90
    quarantined = {q.key: q.code for q in tables.quarantine.all_quarantined()}
    assert quarantined == {"proposals/pid_2_1.json": "malformed-json"}


def test_the_document_written_last_is_in_force_and_each_revision_is_in_the_history(catalog):
    settings, _ = catalog
    store = DynamoIngestStore(settings)
    first = ProposalDocument.model_validate(document(embargo_days=365))
    revised = ProposalDocument.model_validate(document(release_date="2027-03-01"))
    key = "proposals/pid_1_23.json"
    # Given the first document, then its revision written a day later
    assert store.record_proposal(first, key, "v1", DAY, DAY) == []
    assert store.record_proposal(revised, key, "v2", DAY + dt.timedelta(days=1), DAY) == [
        "release_date from None to 2027-03-01", "embargo_days from 365 to None"]
    # When the first is delivered again, late (at-least-once delivery, in any order)
    assert store.record_proposal(first, key, "v1", DAY, DAY + dt.timedelta(days=2)) is None
    # Then the revision stays in force, and the history holds the one revision
    assert proposals.get_many(["pid_1_23"])["pid_1_23"].release_date == "2027-03-01"
    item = proposals.get_item("pid_1_23")
    assert [(e["kind"], e["detail"]) for e in conflicts.history(item)] == [
        ("revised", "proposals/pid_1_23.json (version v2) changed release_date from None to 2027-03-01; "
                    "embargo_days from 365 to None")]
    # And the revision delivered again changes nothing and records nothing
    assert store.record_proposal(revised, key, "v2", DAY + dt.timedelta(days=1), DAY) == []
    assert len(conflicts.history(proposals.get_item("pid_1_23"))) == 1


def test_products_are_written_with_their_tags_and_re_tagged_by_prefix(catalog):
    settings, s3 = catalog
    documents = S3Documents(settings)
    tags = {"proposal_id": "pid_1_23", "release_date": "2027-11-20", "embargoed": "true"}
    documents.put_json("work", "task-outputs/r/a.json", {"a": 1})
    # When a product is copied, and documents written, with embargo tags
    documents.copy("work", "task-outputs/r/a.json", "data", "pid_1_23/ds-1/a.json", tags)
    documents.put_text("data", "pid_1_23/ds-1/SHA256SUMS", "ab  a.json\n", tags)
    documents.put_json("data", "pid_1_23/ds-1/provenance.json", {}, tags)
    documents.put_json("data", "pid_1_23/ds-10/provenance.json", {}, tags)  # another dataset, sharing the prefix text

    def tagged(key):
        bucket = settings.bucket_name("data")
        return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}

    # Then each object carries them from its first byte
    assert all(tagged(f"pid_1_23/ds-1/{name}") == tags for name in ("a.json", "SHA256SUMS", "provenance.json"))
    # And re-tagging a dataset's prefix changes its objects only
    assert documents.tag_prefix("data", "pid_1_23/ds-1/", {**tags, "embargoed": "false"}) == 3
    assert tagged("pid_1_23/ds-1/a.json")["embargoed"] == "false"
    assert tagged("pid_1_23/ds-10/provenance.json")["embargoed"] == "true"


def test_datasets_under_embargo_are_listed_from_their_sparse_index_soonest_release_first(catalog):
    store = DynamoRunStore(catalog[0])
    for number, (release, status) in enumerate([("2027-11-20", EMBARGOED), ("2026-11-01", None),
                                                ("2027-01-05", EMBARGOED)]):
        store.create_dataset(Dataset(
            f"ds-{number}", run_id=f"run-{number}", proposal_id="pid_1_23", candidate_id="c", recipe="r@1",
            bucket="b", prefix=f"pid_1_23/ds-{number}/", product_id="p", version_key="v", frame_count=0, files=[],
            provenance={}, created_at=DAY + dt.timedelta(minutes=number), kind="science", recipe_name="r",
            release_date=release, release_basis={"pid_1_23": "2026-11-20"}, embargo=status))
    assert [d.dataset_id for d in store.datasets_under_embargo()] == ["ds-2", "ds-0"]
    # And `datasets list --embargoed` (alone, or with another filter) shows them with their release dates
    provenance = Provenance(DynamoReads(catalog[0]))
    rows = provenance.dataset_rows(embargo=EMBARGOED)
    assert [(r["dataset_id"], r["release_date"]) for r in rows] == [("ds-2", "2027-01-05"), ("ds-0", "2027-11-20")]
    assert {r["dataset_id"] for r in provenance.dataset_rows(recipe="r", embargo=EMBARGOED)} == {"ds-0", "ds-2"}
    # And a released dataset leaves the index
    store.update_dataset("ds-2", embargo=None, released_at=DAY)
    assert [d.dataset_id for d in store.datasets_under_embargo()] == ["ds-0"]


def test_a_table_kept_from_an_earlier_version_gets_the_indexes_declared_since(catalog):
    # Given the datasets table as an earlier obsflow made it, without the under-embargo index, holding a dataset
    settings, _ = catalog
    dynamodb = boto3.client("dynamodb", region_name=settings.region)
    name = settings.table_name("datasets")
    dynamodb.delete_table(TableName=name)
    schema = tables.datasets.DatasetItem._get_schema()
    older = [i for i in schema["global_secondary_indexes"] if i["index_name"] != "under-embargo"]
    dynamodb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST", KeySchema=schema["key_schema"],
        AttributeDefinitions=[d for d in schema["attribute_definitions"] if d["AttributeName"] not in ("embargo", "release_date")],
        GlobalSecondaryIndexes=[{"IndexName": i["index_name"], "KeySchema": i["key_schema"],
                                 "Projection": i["projection"]} for i in older])
    tables.datasets.DatasetItem(
        "ds-old", run_id="r", proposal_id="p", candidate_id="c", recipe="r@1", bucket="b", prefix="p/ds-old/",
        product_id="p", version_key="v", created_at=DAY, release_date="2027-01-01", embargo=EMBARGOED).save()
    # When the local stack starts on it (creating what is missing)
    tables.create_tables()
    # Then the index exists and lists what the table holds
    indexes = {i["IndexName"] for i in dynamodb.describe_table(TableName=name)["Table"]["GlobalSecondaryIndexes"]}
    assert "under-embargo" in indexes
    assert [d.dataset_id for d in tables.datasets.under_embargo()] == ["ds-old"]
    assert tables.base.add_missing_indexes(tables.datasets.DatasetItem) == []
