"""What an invocation or a job asks of AWS, counted by the botocore event hooks: DynamoDB units by DynamoDB's rules,
S3 requests by billing class and bytes written, SQS and SNS requests; each counted for the meter in force."""

from __future__ import annotations

import io
import threading
from types import SimpleNamespace

import pytest

from obsflow import metering
from obsflow.metering import item_size, read_units, s3_class, write_units


def call(service: str, operation: str, params: dict, parsed: dict | None = None) -> None:
    """One API call as botocore announces it: parameters before it is sent, the parsed response after."""
    model = SimpleNamespace(name=operation, service_model=SimpleNamespace(service_name=service))
    context: dict = {}
    metering.on_request(params=params, model=model, context=context)
    metering.on_response(parsed=parsed or {}, model=model, context=context)


def test_an_item_is_sized_as_dynamodb_sizes_it():
    # names and values: a string its UTF-8 bytes, a number a byte per two significant digits plus one, a boolean
    # one byte, a list or map 3 bytes plus one per element
    assert item_size({"id": {"S": "run-1"}}) == 2 + 5
    assert item_size({"n": {"N": "12345"}, "z": {"N": "0.0012300"}}) == (1 + 4) + (1 + 3)
    assert item_size({"ok": {"BOOL": True}, "é": {"S": "é"}}) == (2 + 1) + (2 + 2)
    assert item_size({"l": {"L": [{"S": "ab"}, {"N": "7"}]}}) == 1 + 3 + (1 + 2) + (1 + 2)
    assert item_size({"m": {"M": {"k": {"S": "v"}}}}) == 1 + 3 + (1 + 1 + 1)


@pytest.mark.parametrize("size, consistent, transactional, units", [
    (0, False, False, 0.5), (4096, False, False, 0.5), (4097, False, False, 1.0), (4097, True, False, 2),
    (100, False, True, 2), (9000, True, False, 3)])
def test_a_read_is_4_kb_a_unit_half_when_eventually_consistent_twice_in_a_transaction(size, consistent, transactional,
                                                                                       units):
    assert read_units(size, consistent, transactional) == units


@pytest.mark.parametrize("size, transactional, units", [(0, False, 1), (1024, False, 1), (1025, False, 2),
                                                         (3000, True, 6)])
def test_a_write_is_1_kb_a_unit_at_least_one_twice_in_a_transaction(size, transactional, units):
    assert write_units(size, transactional) == units


@pytest.mark.parametrize("operation, kind", [
    ("PutObject", metering.S3_PUT), ("CopyObject", metering.S3_PUT), ("CompleteMultipartUpload", metering.S3_PUT),
    ("PutObjectTagging", metering.S3_PUT), ("ListObjectsV2", metering.S3_LIST), ("GetObject", metering.S3_GET),
    ("HeadObject", metering.S3_GET), ("GetObjectTagging", metering.S3_GET), ("DeleteObjects", None),
    ("AbortMultipartUpload", None)])
def test_s3_requests_fall_in_the_classes_s3_bills(operation, kind):
    assert s3_class(operation) == kind


def test_a_meter_counts_what_its_calls_ask_and_an_update_is_charged_on_the_item_it_read():
    big = {"run_id": {"S": "run-1"}, "configuration": {"S": "x" * 3000}}
    with metering.metering(kind="lambda") as meter:
        # Given a read of a 3 KB item, then an update of one attribute of it
        call("dynamodb", "GetItem", {"TableName": "runs", "Key": {"run_id": {"S": "run-1"}}}, {"Item": big})
        call("dynamodb", "UpdateItem", {"TableName": "runs", "Key": {"run_id": {"S": "run-1"}},
                                        "ExpressionAttributeValues": {":s": {"S": "RUNNING"}}})
        # And a query whose filter dropped 3 of 4 items read, a transaction of two puts, a refused put
        call("dynamodb", "Query", {"TableName": "runs"}, {"Items": [big], "ScannedCount": 4, "Count": 1})
        call("dynamodb", "TransactWriteItems", {"TransactItems": [{"Put": {"Item": {"k": {"S": "a"}}}},
                                                                  {"Put": {"Item": big}}]})
        call("dynamodb", "PutItem", {"TableName": "runs", "Item": {"k": {"S": "a"}}},
             {"Error": {"Code": "ConditionalCheckFailedException"}})
        # And S3, SQS and SNS calls; and a call of a service that bills no requests
        call("s3", "PutObject", {"Bucket": "b", "Key": "k", "Body": b"x" * 5000})
        call("s3", "PutObject", {"Bucket": "b", "Key": "f", "Body": io.BytesIO(b"y" * 700)})
        call("s3", "GetObject", {"Bucket": "b", "Key": "k"})
        call("s3", "ListObjectsV2", {"Bucket": "b"})
        call("s3", "DeleteObject", {"Bucket": "b", "Key": "k"})
        call("sqs", "ReceiveMessage", {})
        call("sns", "Publish", {})
        call("stepfunctions", "StartExecution", {})
    entry = meter.entry()
    # Then the read is half a unit, the update 3 (the item as read), the query 1.5 for the 12 KB it read, the
    # transaction 2 x 1 + 2 x 3, the refused put its one unit
    assert entry["dynamodb_read_units"] == 0.5 + 1.5 and entry["dynamodb_write_units"] == 3 + 8 + 1
    assert entry["dynamodb_requests"] == 5
    # And S3 counts by class (the DELETE is free) and the bytes of each body, a file's included
    assert (entry["s3_put_requests"], entry["s3_get_requests"], entry["s3_list_requests"]) == (2, 1, 1)
    assert entry["s3_bytes_written"] == 5700 and entry["sqs_requests"] == 1 and entry["sns_requests"] == 1


def test_dynamodbs_own_figure_is_taken_where_the_caller_asked_for_it():
    with metering.metering() as meter:
        call("dynamodb", "UpdateItem", {"TableName": "t", "Key": {"k": {"S": "a"}}},
             {"ConsumedCapacity": {"CapacityUnits": 0.5}})  # moto's unasked answer: not taken
        call("dynamodb", "UpdateItem", {"TableName": "t", "Key": {"k": {"S": "a"}}, "ReturnConsumedCapacity": "TOTAL"},
             {"ConsumedCapacity": {"CapacityUnits": 7.0}})
    assert meter.entry()["dynamodb_write_units"] == 1 + 7


def test_nothing_is_counted_outside_a_meter_and_each_invocation_counts_its_own():
    # Given no meter, When a call is made, Then nothing counts it (and nothing fails)
    call("s3", "GetObject", {})
    assert metering.active() is None and metering.invocation_so_far() is None
    # Given two invocations at once on two threads (the local stack's handlers share a process)
    entries = {}

    def invoke(name: str, gets: int) -> None:
        with metering.metering(kind="lambda", function=name) as meter:
            for _ in range(gets):
                call("s3", "GetObject", {})
            entries[name] = metering.invocation_so_far()
            assert meter.entry()["s3_get_requests"] == gets

    threads = [threading.Thread(target=invoke, args=(name, n)) for name, n in (("catalog", 3), ("start-run", 5))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then each counted its own calls, with its labels
    assert entries["catalog"]["s3_get_requests"] == 3 and entries["catalog"]["function"] == "catalog"
    assert entries["start-run"]["s3_get_requests"] == 5


def test_a_jobs_meter_counts_every_thread_of_its_process_until_it_ends():
    with metering.metering_process(kind="job") as meter:
        worker = threading.Thread(target=call, args=("s3", "PutObject", {"Body": b"abc"}))
        worker.start()
        worker.join()
        call("s3", "GetObject", {})
    call("s3", "GetObject", {})  # after the job's meter ended: no one's
    assert (meter.entry()["s3_put_requests"], meter.entry()["s3_get_requests"]) == (1, 1)
    assert metering.active() is None
