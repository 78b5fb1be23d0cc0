"""The local stack's DynamoDB queries read only the page they answer, and answer exactly as moto does from the
whole table: after puts, updates that move an item between partitions or out of a sparse index, deletes,
transactions, and a restart from saved state."""

from __future__ import annotations

import random
import threading

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.backends import get_backend
from moto.core.base_backend import BackendDict
from moto.dynamodb.models.table import Table

from obsflow.local import moto_patches
from obsflow.local.moto_patches import dynamodb_queries
from obsflow.local.state import StateDirectory

KINDS = ["dark", "flat", "gain", "observe", "dark-2"]


def events_table(client) -> None:
    """A table with a sort key and four indexes: string keys, a number hash key alone, a number sort key, and a
    sparse one (few items have a flag)."""
    client.create_table(
        TableName="events", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t in
                              (("pk", "S"), ("sk", "S"), ("kind", "S"), ("size", "N"), ("score", "N"), ("flag", "S"))],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {"IndexName": name, "Projection": projection, "KeySchema": [
                {"AttributeName": attribute, "KeyType": key_type} for attribute, key_type in keys]}
            for name, keys, projection in (
                ("by-kind", (("kind", "HASH"), ("sk", "RANGE")), {"ProjectionType": "ALL"}),
                ("by-size", (("size", "HASH"),), {"ProjectionType": "KEYS_ONLY"}),
                ("by-score", (("kind", "HASH"), ("score", "RANGE")), {"ProjectionType": "INCLUDE",
                                                                      "NonKeyAttributes": ["note"]}),
                ("flagged", (("flag", "HASH"), ("kind", "RANGE")), {"ProjectionType": "ALL"}),
            )])


def runs_table(client) -> None:
    """A table keyed by its hash key alone (as obsflow's runs), with an index by status and queue key."""
    client.create_table(
        TableName="runs", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("run_id", "status", "queue_key")],
        KeySchema=[{"AttributeName": "run_id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[{"IndexName": "by-status", "Projection": {"ProjectionType": "ALL"}, "KeySchema": [
            {"AttributeName": "status", "KeyType": "HASH"}, {"AttributeName": "queue_key", "KeyType": "RANGE"}]}])


def random_event(rng: random.Random) -> dict:
    item = {"pk": {"S": f"p{rng.randrange(4)}"}, "sk": {"S": f"{rng.randrange(60):03d}"},
            "size": {"N": str(rng.randrange(3))}, "note": {"S": "x" * rng.randrange(40)}}
    if rng.random() < 0.8:
        item["kind"] = {"S": rng.choice(KINDS)}
    if rng.random() < 0.8:
        item["score"] = {"N": rng.choice(["1", "1.50", "2", "-3", "10"])}
    if rng.random() < 0.2:
        item["flag"] = {"S": rng.choice(["hot", "cold"])}
    return item


def random_run(rng: random.Random) -> dict:
    return {"run_id": {"S": f"run-{rng.randrange(80):03d}"}, "status": {"S": rng.choice(["READY", "RUNNING", "DONE"])},
            "queue_key": {"S": f"{rng.randrange(5)}#{rng.randrange(1000):04d}"}}


def event_key(rng: random.Random) -> dict:
    return {"pk": {"S": f"p{rng.randrange(4)}"}, "sk": {"S": f"{rng.randrange(60):03d}"}}


def write_at_random(client, rng: random.Random, writes: int) -> None:
    """Puts, updates that move items between partitions and in and out of the sparse index, deletes,
    transactions (some cancelled), batches and an update that fails midway."""
    for _ in range(writes):
        roll = rng.random()
        try:
            if roll < 0.35:
                client.put_item(TableName="events", Item=random_event(rng))
            elif roll < 0.45:
                client.put_item(TableName="runs", Item=random_run(rng))
            elif roll < 0.55:
                client.update_item(TableName="events", Key=event_key(rng), UpdateExpression="SET kind = :k, flag = :f",
                                   ExpressionAttributeValues={":k": {"S": rng.choice(KINDS)}, ":f": {"S": "hot"}})
            elif roll < 0.62:
                client.update_item(TableName="events", Key=event_key(rng), UpdateExpression="REMOVE flag, kind")
            elif roll < 0.68:
                client.update_item(TableName="events", Key=event_key(rng), UpdateExpression="ADD size :one",
                                   ExpressionAttributeValues={":one": {"N": "1"}})
            elif roll < 0.72:
                client.update_item(TableName="runs", Key={"run_id": {"S": f"run-{rng.randrange(80):03d}"}},
                                   UpdateExpression="SET #s = :s", ExpressionAttributeNames={"#s": "status"},
                                   ExpressionAttributeValues={":s": {"S": rng.choice(["READY", "DONE"])}})
            elif roll < 0.80:
                client.delete_item(TableName="events", Key=event_key(rng))
            elif roll < 0.88:
                keys = {tuple(sorted((k, v["S"]) for k, v in event_key(rng).items())) for _ in range(3)}
                operations = [{"Put": {"TableName": "events", "Item": {**random_event(rng), **dict(
                    (k, {"S": v}) for k, v in key)}}} for key in keys]
                if rng.random() < 0.3:  # cancelled: nothing of it is written
                    operations.append({"ConditionCheck": {"TableName": "runs", "Key": {"run_id": {"S": "none"}},
                                                          "ConditionExpression": "attribute_exists(run_id)"}})
                client.transact_write_items(TransactItems=operations)
            elif roll < 0.94:
                client.batch_write_item(RequestItems={"events": [
                    {"PutRequest": {"Item": random_event(rng)}},
                    {"DeleteRequest": {"Key": event_key(rng)}}]})
            else:  # the second action fails after the first changed the item
                client.update_item(TableName="events", Key=event_key(rng), UpdateExpression="SET kind = :k, size = note + :k",
                                   ExpressionAttributeValues={":k": {"S": rng.choice(KINDS)}})
        except ClientError:
            pass


def paged(client, **asked) -> list[dict]:
    """Every page of a query: its items, counts and where it ended."""
    pages = []
    while True:
        page = client.query(**asked)
        pages.append({k: page.get(k) for k in ("Items", "Count", "ScannedCount", "LastEvaluatedKey")})
        if "LastEvaluatedKey" not in page or len(pages) > 200:
            return pages
        asked = {**asked, "ExclusiveStartKey": page["LastEvaluatedKey"]}


def random_queries(rng: random.Random, count: int) -> list[dict]:
    conditions = [("", {}), (" AND #r = :a", {":a": 0}), (" AND #r < :a", {":a": 0}), (" AND #r <= :a", {":a": 0}),
                  (" AND #r > :a", {":a": 0}), (" AND #r >= :a", {":a": 0}),
                  (" AND #r BETWEEN :a AND :b", {":a": 0, ":b": 1}), (" AND begins_with(#r, :a)", {":a": 0})]
    shapes = [  # (table, index, hash attribute and its values, sort attribute and its values)
        ("events", None, "pk", [{"S": f"p{n}"} for n in range(5)], "sk", [{"S": v} for v in ("010", "03", "031", "05")]),
        ("events", "by-kind", "kind", [{"S": k} for k in KINDS + ["none"]], "sk", [{"S": v} for v in ("00", "020", "04")]),
        ("events", "by-size", "size", [{"N": str(n)} for n in range(5)], None, []),
        ("events", "by-score", "kind", [{"S": k} for k in KINDS], "score", [{"N": v} for v in ("1.5", "-3", "2", "0")]),
        ("events", "flagged", "flag", [{"S": f} for f in ("hot", "cold", "warm")], "kind", [{"S": k} for k in ("da", "flat", "g")]),
        ("runs", None, "run_id", [{"S": f"run-{n:03d}"} for n in range(0, 80, 7)], None, []),
        ("runs", "by-status", "status", [{"S": s} for s in ("READY", "RUNNING", "DONE")], "queue_key",
         [{"S": v} for v in ("1", "2#0500", "3#")]),
    ]
    queries = []
    for _ in range(count):
        table, index, hash_name, hash_values, sort_name, sort_values = rng.choice(shapes)
        text, placeholders = rng.choice(conditions) if sort_name else conditions[0]
        if "begins_with" in text and sort_values[0].get("N"):
            text, placeholders = conditions[3]
        values = {":h": rng.choice(hash_values), **{p: rng.choice(sort_values) for p in placeholders}}
        names = {"#h": hash_name, **({"#r": sort_name} if placeholders else {})}
        asked = {"TableName": table, "KeyConditionExpression": "#h = :h" + text,
                 "ExpressionAttributeNames": names, "ExpressionAttributeValues": values,
                 "ScanIndexForward": rng.random() < 0.5}
        if index:
            asked["IndexName"] = index
        if rng.random() < 0.7:
            asked["Limit"] = rng.choice([1, 3, 7])
        if table == "events" and rng.random() < 0.3:
            asked["FilterExpression"] = "note > :n"
            asked["ExpressionAttributeValues"][":n"] = {"S": "x" * 15}
        if table == "events" and index in (None, "by-kind") and rng.random() < 0.3:
            asked["ProjectionExpression"] = "pk, sk, note"
        queries.append(asked)
    return queries


def as_moto_answers(client, queries: list[dict]) -> list:
    """Each query's pages from the patched local stack (every one from its index, none left to moto), and from
    moto's own query over the whole table."""
    left_to_moto = []
    page_of = dynamodb_queries._page_of

    def counted(table, asked):
        page = page_of(table, asked)
        left_to_moto.extend([asked] if page is None else [])
        return page

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dynamodb_queries, "_page_of", counted)
        patched = [paged(client, **q) for q in queries]
    assert left_to_moto == []
    with pytest.MonkeyPatch.context() as restore:
        restore.setattr(Table, "query", Table.query.__wrapped__)
        unpatched = [paged(client, **q) for q in queries]
    return patched, unpatched


@pytest.fixture
def tables():
    moto_patches.apply()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        events_table(client)
        runs_table(client)
        yield client


def test_queries_answer_as_moto_does_from_the_whole_table_across_writes_and_a_restart(tables, tmp_path):
    client, rng = tables, random.Random(26)
    queries = random_queries(rng, 120)
    # Given tables written at random, and queried once, so that every index is made and then kept up to date
    write_at_random(client, rng, 150)
    patched, unpatched = as_moto_answers(client, queries)
    assert patched == unpatched
    # When more is written, moving items between partitions, into and out of the sparse index, and deleting them
    write_at_random(client, rng, 400)
    # Then every query (key conditions, both directions, every page, filters, projections) answers as moto does
    patched, unpatched = as_moto_answers(client, queries)
    assert patched == unpatched
    assert sum(len(page["Items"]) for pages in patched for page in pages) > 500  # the queries found things
    # When the state is saved and restored (as `local serve` restarts) and written again
    StateDirectory(tmp_path / "state").save()
    BackendDict.reset()
    StateDirectory(tmp_path / "state").restore()
    for answers in (as_moto_answers(client, queries),
                    (write_at_random(client, rng, 200), as_moto_answers(client, queries))[1]):
        # Then the restored tables answer as moto does, before and after more writes
        assert answers[0] == answers[1]


def test_an_index_query_reads_only_its_page_however_large_the_table(tables, monkeypatch):
    client = tables
    # Given 2,000 runs in 40 statuses, 50 each
    for n in range(2000):
        client.put_item(TableName="runs", Item={"run_id": {"S": f"run-{n:05d}"}, "status": {"S": f"S{n % 40:02d}"},
                                                "queue_key": {"S": f"{n:05d}"}})
    considered: list[int] = []
    all_items = Table.all_items

    def counted(self):
        items = all_items(self)
        considered.append(len(items))
        return items

    monkeypatch.setattr(Table, "all_items", counted)
    asked = {"TableName": "runs", "IndexName": "by-status", "KeyConditionExpression": "#s = :s AND queue_key > :q",
             "ExpressionAttributeNames": {"#s": "status"},
             "ExpressionAttributeValues": {":s": {"S": "S07"}, ":q": {"S": "00500"}}, "Limit": 5}
    # When a status is queried a page of 5 at a time, past its first 13 runs
    client.query(**asked)  # the index is made from the table at its first query
    table = get_backend("dynamodb")["123456789012"]["us-east-1"].tables["runs"]
    considered.clear()
    before = dynamodb_queries.visits(table)
    first = client.query(**asked)
    second = client.query(**asked, ExclusiveStartKey=first["LastEvaluatedKey"])
    # Then each page is the right one
    assert [i["run_id"]["S"] for i in first["Items"] + second["Items"]] == [
        f"run-{n:05d}" for n in range(527, 2000, 40)][:10]
    # And moto considered only the items of the page and the one after it, never the table or the partition
    assert considered == [6, 6]
    assert dynamodb_queries.visits(table) - before == 12
    # And a table query reads one partition's page the same way
    considered.clear()
    client.query(TableName="runs", KeyConditionExpression="run_id = :r", ExpressionAttributeValues={":r": {"S": "run-01234"}})
    assert considered == [1]


def test_a_page_of_a_projected_index_holds_as_many_entries_as_dynamodb_reads_from_it(tables):
    client = tables
    # Given ten events of one kind, each with 300 KB that no index but the table's holds
    for n in range(10):
        client.put_item(TableName="events", Item={"pk": {"S": "p0"}, "sk": {"S": f"{n:03d}"}, "kind": {"S": "dark"},
                                                  "size": {"N": "1"}, "score": {"N": str(n)}, "note": {"S": "ok"},
                                                  "blob": {"S": "x" * 300_000}})
    # When they are queried by an index that projects some attributes (INCLUDE), and by one that projects keys
    by_score = client.query(TableName="events", IndexName="by-score", KeyConditionExpression="kind = :k",
                            ExpressionAttributeValues={":k": {"S": "dark"}})
    by_size = client.query(TableName="events", IndexName="by-size", KeyConditionExpression="size = :s",
                           ExpressionAttributeValues={":s": {"N": "1"}})
    # Then each answers in one page, as DynamoDB sizes an index's page by its entries (moto pages whole items: 3
    # a page), with what the index projects
    assert (by_score["Count"], "LastEvaluatedKey" in by_score) == (10, False)
    assert set(by_score["Items"][0]) == {"pk", "sk", "kind", "score", "note"}
    assert (by_size["Count"], "LastEvaluatedKey" in by_size) == (10, False)
    assert set(by_size["Items"][0]) == {"pk", "sk", "size"}
    # And the table's own query pages them whole, as DynamoDB and moto do
    whole = client.query(TableName="events", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "p0"}})
    assert (whole["Count"], "LastEvaluatedKey" in whole) == (3, True)


@pytest.mark.parametrize("read", ["query", "scan"])
def test_an_update_that_removes_an_index_key_waits_for_a_read_of_that_index_to_end(tables, monkeypatch, read):
    client = tables
    # Given flagged events in the sparse index, and an update that takes one out of it, made by another request
    for n in range(5):
        client.put_item(TableName="events", Item={"pk": {"S": "p0"}, "sk": {"S": f"{n:03d}"}, "flag": {"S": "due"},
                                                  "kind": {"S": "dark"}})
    unflag = threading.Thread(target=client.update_item, kwargs={
        "TableName": "events", "Key": {"pk": {"S": "p0"}, "sk": {"S": "002"}}, "UpdateExpression": "REMOVE flag"})
    sorted_items = Table.sorted_items

    def sorted_meanwhile(self, *args, **kwargs):  # the update arrives while moto sorts the query's page
        if not unflag.is_alive() and unflag.ident is None:
            unflag.start()
            unflag.join(0.5)
        return sorted_items(self, *args, **kwargs)

    monkeypatch.setattr(Table, "sorted_items", sorted_meanwhile)
    # When the index is queried, or scanned
    if read == "query":
        answer = client.query(TableName="events", IndexName="flagged", KeyConditionExpression="flag = :f",
                              ExpressionAttributeValues={":f": {"S": "due"}})
    else:
        answer = client.scan(TableName="events", IndexName="flagged")
    unflag.join(5)
    # Then the read answers from the index as it was, and the update is made after it
    assert [item["sk"]["S"] for item in answer["Items"]] == ["000", "001", "002", "003", "004"]
    assert "flag" not in client.get_item(TableName="events", Key={"pk": {"S": "p0"}, "sk": {"S": "002"}})["Item"]
