"""The local runtime's TransactWriteItems keeps DynamoDB's all-or-nothing semantics."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

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
