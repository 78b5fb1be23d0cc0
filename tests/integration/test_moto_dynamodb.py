"""The local runtime's DynamoDB fixes keep DynamoDB's semantics: all-or-nothing transactions; queries that
read only the queried partition yet answer as before (order, key conditions, filters, pages, projections)."""

from __future__ import annotations

import sys

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core.serialize import BaseJSONSerializer

from obsflow.local import moto_patches


@pytest.fixture
def dynamodb():
    moto_patches.apply()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
        client.put_item(TableName="t", Item={"pk": {"S": "a"}, "n": {"N": "1"}})
        yield client


def put(pk, condition=None):
    op = {"TableName": "t", "Item": {"pk": {"S": pk}}}
    if condition:
        op["ConditionExpression"] = condition
    return {"Put": op}


def test_a_failed_condition_cancels_every_write_and_names_the_item(dynamodb):
    # Given a transaction whose second write's condition fails
    with pytest.raises(ClientError) as error:
        dynamodb.transact_write_items(TransactItems=[
            put("b"),
            put("a", "attribute_not_exists(pk)"),
            put("c"),
        ])
    # Then it is cancelled with per-item reasons and nothing was written
    assert error.value.response["Error"]["Code"] == "TransactionCanceledException"
    codes = [reason["Code"] for reason in error.value.response["CancellationReasons"]]
    assert codes == ["None", "ConditionalCheckFailed", "None"]
    assert "Item" not in dynamodb.get_item(TableName="t", Key={"pk": {"S": "b"}})
    assert "Item" not in dynamodb.get_item(TableName="t", Key={"pk": {"S": "c"}})


def test_a_successful_transaction_applies_every_write(dynamodb):
    dynamodb.transact_write_items(TransactItems=[
        put("b", "attribute_not_exists(pk)"),
        {"Update": {"TableName": "t", "Key": {"pk": {"S": "a"}}, "UpdateExpression": "ADD n :one",
                    "ConditionExpression": "n = :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}},
    ])
    assert dynamodb.get_item(TableName="t", Key={"pk": {"S": "a"}})["Item"]["n"] == {"N": "2"}
    assert "Item" in dynamodb.get_item(TableName="t", Key={"pk": {"S": "b"}})


def test_a_write_that_fails_midway_undoes_the_writes_before_it(dynamodb):
    # Given a transaction whose conditions hold but whose last write cannot be applied
    # (adding a string to a number fails only when the update runs)
    with pytest.raises(ClientError):
        dynamodb.transact_write_items(TransactItems=[
            put("b"),
            {"Update": {"TableName": "t", "Key": {"pk": {"S": "a"}}, "UpdateExpression": "SET n = n + :s",
                        "ExpressionAttributeValues": {":s": {"S": "x"}}}},
        ])
    # Then the earlier write was rolled back and the item is as it was
    assert "Item" not in dynamodb.get_item(TableName="t", Key={"pk": {"S": "b"}})
    assert dynamodb.get_item(TableName="t", Key={"pk": {"S": "a"}})["Item"]["n"] == {"N": "1"}


def test_two_operations_on_one_item_are_refused(dynamodb):
    with pytest.raises(ClientError, match="multiple operations|same item|ValidationException"):
        dynamodb.transact_write_items(TransactItems=[put("z"), put("z")])


@pytest.fixture
def events():
    """A table of 3 partitions x 30 events with a string-keyed index (by kind) and a number-keyed one (by size)."""
    moto_patches.apply()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="events", BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": t}
                                  for n, t in (("pk", "S"), ("sk", "S"), ("kind", "S"), ("size", "N"))],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[
                {"IndexName": "by-kind", "Projection": {"ProjectionType": "ALL"},
                 "KeySchema": [{"AttributeName": "kind", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]},
                {"IndexName": "by-size", "Projection": {"ProjectionType": "ALL"},
                 "KeySchema": [{"AttributeName": "size", "KeyType": "HASH"}]},
            ])
        for p in ("a", "b", "c"):
            for n in range(30):
                item = {"pk": {"S": p}, "sk": {"S": f"{n:03d}"}, "size": {"N": str(n % 3)}, "note": {"S": "x" * n}}
                if n % 4:  # a quarter of the items have no kind: the by-kind index leaves them out
                    item["kind"] = {"S": "dark" if n % 2 else "flat"}
                client.put_item(TableName="events", Item=item)
        yield client


def query_all(client, **asked) -> list[tuple[str, str]]:
    pages = client.get_paginator("query").paginate(TableName="events", **asked)
    return [(i.get("pk", {}).get("S"), i["sk"]["S"]) for page in pages for i in page["Items"]]


def test_a_table_query_reads_its_partition_with_conditions_order_and_pages(events):
    # When partition b is queried backwards from sk 020, two items a page
    found = query_all(events, KeyConditionExpression="pk = :p AND sk <= :s", ScanIndexForward=False,
                      ExpressionAttributeValues={":p": {"S": "b"}, ":s": {"S": "020"}}, PaginationConfig={"PageSize": 2})
    # Then it gets exactly that partition's items, in descending order, across every page
    assert found == [("b", f"{n:03d}") for n in range(20, -1, -1)]
    # And a partition that does not exist answers empty
    assert query_all(events, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "zz"}}) == []


def test_an_index_query_answers_from_the_items_with_its_key_only(events):
    # When the string-keyed index is queried with a range condition, a filter and a projection
    found = events.query(TableName="events", IndexName="by-kind", KeyConditionExpression="kind = :k AND sk > :s",
                         FilterExpression="size(note) > :n", ProjectionExpression="pk, sk",
                         ExpressionAttributeValues={":k": {"S": "dark"}, ":s": {"S": "010"}, ":n": {"N": "20"}})
    # Then it has exactly the dark events after 010 with long notes, in every partition, ordered by the index key
    expected = sorted(((p, f"{n:03d}") for p in "abc" for n in range(11, 30) if n % 4 and n % 2 and n > 20),
                      key=lambda k: (k[1], k[0]))
    assert [(i["pk"]["S"], i["sk"]["S"]) for i in found["Items"]] == expected
    assert all(set(i) == {"pk", "sk"} for i in found["Items"])
    # And an index with a number key (left to moto itself) answers the same way
    by_size = query_all(events, IndexName="by-size", KeyConditionExpression="size = :n",
                        ExpressionAttributeValues={":n": {"N": "2"}})
    assert sorted(by_size) == sorted((p, f"{n:03d}") for p in "abc" for n in range(30) if n % 3 == 2)


def test_items_of_every_attribute_type_read_back_as_written(events):
    # Given an item with binary, set, map, list, boolean and null attributes beside strings and numbers
    item = {"pk": {"S": "z"}, "sk": {"S": "000"}, "blob": {"B": b"\x00\xff"}, "tags": {"SS": ["a", "b"]},
            "meta": {"M": {"inner": {"N": "7"}, "other": {"S": "o"}}}, "seq": {"L": [{"S": "x"}, {"N": "1"}]},
            "ok": {"BOOL": True}, "none": {"NULL": True}, "size": {"N": "1.50"}}
    events.put_item(TableName="events", Item=item)
    key = {"pk": {"S": "z"}, "sk": {"S": "000"}}
    # Then a read returns each as written, and projections of top-level and nested attributes hold
    assert events.get_item(TableName="events", Key=key)["Item"] == item
    plain = events.get_item(TableName="events", Key=key, ProjectionExpression="ok, #n, #s",
                            ExpressionAttributeNames={"#n": "none", "#s": "size"})["Item"]
    assert plain == {"ok": {"BOOL": True}, "none": {"NULL": True}, "size": {"N": "1.50"}}
    nested = events.query(TableName="events", KeyConditionExpression="pk = :p", ProjectionExpression="meta.inner, #b",
                          ExpressionAttributeNames={"#b": "blob"}, ExpressionAttributeValues={":p": {"S": "z"}})["Items"]
    assert nested == [{"meta": {"M": {"inner": {"N": "7"}}}, "blob": {"B": b"\x00\xff"}}]


def test_concurrent_conditional_writes_on_the_local_server_each_apply_atomically():
    # Given moto's threaded server (as the local stack runs it) and a counter item
    import threading

    from moto.server import ThreadedMotoServer

    from obsflow.local.stack import free_port

    moto_patches.apply()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        def client():
            return boto3.client("dynamodb", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{port}",
                                aws_access_key_id="local", aws_secret_access_key="local")

        setup = client()
        setup.create_table(TableName="counter", BillingMode="PAY_PER_REQUEST",
                           AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                           KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
        setup.put_item(TableName="counter", Item={"pk": {"S": "c"}, "n": {"N": "0"}})
        successes = []

        def bump(attempts: int) -> None:
            mine = client()
            for _ in range(attempts):
                seen = mine.get_item(TableName="counter", Key={"pk": {"S": "c"}}, ConsistentRead=True)["Item"]["n"]
                try:  # read-then-conditional-write, as ingest counts an OP
                    mine.transact_write_items(TransactItems=[{"Update": {
                        "TableName": "counter", "Key": {"pk": {"S": "c"}}, "UpdateExpression": "SET n = n + :one",
                        "ConditionExpression": "n = :seen",
                        "ExpressionAttributeValues": {":one": {"N": "1"}, ":seen": seen}}}])
                    successes.append(1)
                except ClientError:
                    pass

        # When 8 clients race read-then-increment transactions, the interpreter switching threads every microsecond
        threads = [threading.Thread(target=bump, args=(40,)) for _ in range(8)]
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            sys.setswitchinterval(interval)
        # Then every transaction that succeeded counted exactly once: no two passed the same condition
        final = int(setup.get_item(TableName="counter", Key={"pk": {"S": "c"}}, ConsistentRead=True)["Item"]["n"]["N"])
        assert final == len(successes) > 0
    finally:
        server.stop()


def test_items_written_and_read_are_not_kept_by_moto_after_they_are_gone(events):
    from moto.dynamodb.models.dynamo_type import Item

    # Given moto's list of every item object it ever made, as it stands
    kept_before = len(Item.instances_tracked)
    # When items are written, queried (each answer a copy), updated and deleted
    for n in range(50):
        events.put_item(TableName="events", Item={"pk": {"S": "z"}, "sk": {"S": f"{n:03d}"}})
        events.query(TableName="events", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "z"}})
        events.delete_item(TableName="events", Key={"pk": {"S": "z"}, "sk": {"S": f"{n:03d}"}})
    # Then moto kept none of them: the local stack's memory holds what its tables hold, not every request's items
    assert len(Item.instances_tracked) == kept_before


def test_items_of_sets_lists_and_maps_are_answered_as_moto_would_without_walking_each_value(events, monkeypatch):
    # Given an item as obsflow writes them: a run's history (a list of maps), a shared instance's candidates (a
    # string set), numbers in a set and a map of lists of maps
    item = {"pk": {"S": "w"}, "sk": {"S": "000"}, "kind": {"S": "dark"},
            "history": {"L": [{"M": {"status": {"S": s}, "at": {"S": f"2026-12-06T0{n}:00:00Z"}, "detail": {"NULL": True}}}
                              for n, s in enumerate(("READY", "RUNNING", "SUCCEEDED"))]},
            "candidate_ids": {"SS": [f"c{n:05d}" for n in range(200)]}, "sizes": {"NS": ["1", "2.5", "-3"]},
            "deep": {"M": {"list": {"L": [{"M": {"ok": {"BOOL": False}}}, {"L": []}, {"M": {}}]}}}}
    events.put_item(TableName="events", Item=item)
    key = {"pk": {"S": "w"}, "sk": {"S": "000"}}
    walked = []
    list_serializer = BaseJSONSerializer._serialize_type_list

    def counting(self, serialized, value, shape, name):
        walked.append(shape.name)
        return list_serializer(self, serialized, value, shape, name)

    monkeypatch.setattr(BaseJSONSerializer, "_serialize_type_list", counting)

    def read() -> list[dict]:
        return [events.get_item(TableName="events", Key=key)["Item"],
                events.query(TableName="events", IndexName="by-kind", KeyConditionExpression="kind = :k AND sk = :s",
                             ExpressionAttributeValues={":k": {"S": "dark"}, ":s": {"S": "000"}})["Items"][0],
                events.batch_get_item(RequestItems={"events": {"Keys": [key]}})["Responses"]["events"][0]]

    # When it is read by key, by an index query and in a batch
    answers = read()
    # Then each answer is the item as written, and no value of it went through moto's serializer one by one
    assert answers == [item] * 3
    assert not [name for name in walked if name.endswith("AttributeValue")]
    # And moto's own serializer answers the same
    monkeypatch.setattr(BaseJSONSerializer, "_serialize_type_map", BaseJSONSerializer._serialize_type_map.__wrapped__)
    assert read() == answers
    assert "StringSetAttributeValue" in walked
