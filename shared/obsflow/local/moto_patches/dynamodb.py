"""DynamoDB: transactions, queries and responses at DynamoDB's cost, with its semantics.

TransactWriteItems: moto deep-copies every table a transaction touches, to roll back
on failure, so each transaction costs time in proportion to the table's size (a
2,000-frame inventory makes every batch ~20x slower than on DynamoDB). This version
keeps DynamoDB's semantics (all-or-nothing, per-item cancellation reasons, one
operation per item) by checking every condition first and writing only when all
hold; it snapshots just the items it writes, for the rare failure mid-write.

Queries: see dynamodb_queries.

Responses: moto's model-driven serializer walks every attribute value of every returned
item through botocore's shapes (about 1 ms per item of 15 attributes; 80 % of the server's
time on a run's history or a shared instance's candidates), although an item of strings,
numbers, booleans, string and number sets, and lists and maps of those is already in
DynamoDB's wire format; such items are passed through as they are, those holding binary as
before. For the same reason a projection of top-level scalar attributes copies them, where
moto converted the whole item once per projected attribute.

Writes: moto's server answers requests on several threads and checks a condition, then
writes, without a lock, so two concurrent conditional writes (or transactions) can both
pass; DynamoDB applies each atomically. Here every write holds one lock.
"""

from __future__ import annotations

import copy
import functools
import threading
from typing import Any

from moto.core.serialize import BaseJSONSerializer
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import Item

_OPERATIONS = {"ConditionCheck", "Put", "Delete", "Update"}


_SCALARS = {"S": str, "N": str, "BOOL": bool, "NULL": bool}


def _is_scalar(value: dict) -> bool:
    [(kind, inner)] = value.items()
    return isinstance(inner, _SCALARS.get(kind, ()))


def _is_wire_ready(value: Any) -> bool:
    """An attribute value already as DynamoDB's JSON writes it: a scalar, a string or number set, or a list or map
    of such values (binary is not: moto holds bytes, the wire base64)."""
    if not isinstance(value, dict) or len(value) != 1:
        return False
    [(kind, inner)] = value.items()
    if kind in _SCALARS:
        return isinstance(inner, _SCALARS[kind])
    if kind in ("SS", "NS"):
        return isinstance(inner, list) and all(isinstance(v, str) for v in inner)
    if kind == "L":
        return isinstance(inner, list) and all(_is_wire_ready(v) for v in inner)
    if kind == "M":
        return isinstance(inner, dict) and all(isinstance(k, str) and _is_wire_ready(v) for k, v in inner.items())
    return False


def _project_plain_attributes(original):
    def project(self, projection_expressions):
        names = [e[0] for e in projection_expressions if len(e) == 1 and "[" not in e[0]]
        kept = {n: {a.type: a.value} for n in names if (a := self.attrs.get(n)) is not None}
        if len(names) < len(projection_expressions) or not all(_is_scalar(v) for v in kept.values()):
            return original(self, projection_expressions)
        return type(self)(self.hash_key, self.range_key, kept)

    project.patched = True
    return project


def _attribute_maps_as_they_are(original):
    @functools.wraps(original)  # __wrapped__: moto's own, which tests compare with
    def serialize_map(self, serialized, value, shape, key):
        if shape.name == "AttributeMap" and all(_is_wire_ready(v) for v in value.values()):
            self._default_serialize(serialized, dict(value), shape, key)
        else:
            original(self, serialized, value, shape, key)

    serialize_map.patched = True
    return serialize_map


def _item_key(backend: DynamoDBBackend, op_type: str, op: dict) -> dict:
    if op_type != "Put":
        return op["Key"]
    table = backend.get_table(op["TableName"])
    key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = op["Item"][table.range_key_attr]
    return key


def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    operations, seen = [], set()
    for item in transact_items:
        if len(item) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        if op_type not in _OPERATIONS:
            raise ValueError("Unsupported transaction operation")
        key = _item_key(self, op_type, op)
        identity = (str(op["TableName"]), str(dict(sorted(key.items()))))
        if identity in seen:
            raise MultipleTransactionsException()
        seen.add(identity)
        operations.append((op_type, op, key))

    # Phase 1: every condition against the state before the transaction.
    errors: list[tuple] = []
    for op_type, op, key in operations:
        old = None
        try:
            current = self.get_item(op["TableName"], key)
            expression = op.get("ConditionExpression")
            if expression is not None:
                condition = get_filter_expression(
                    expression, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
                )
                if not condition.expr(current):
                    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                        old = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=old)
            errors.append((None, None, None))
        except ConditionalCheckFailed as exc:
            errors.append(("ConditionalCheckFailed", str(exc.message), old))
        except Exception as exc:  # noqa: BLE001  (reported per item, as moto does)
            errors.append((type(exc).__name__, str(exc), None))
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)

    # Phase 2: write, keeping copies of only the items written.
    written: list[tuple[str, dict, Any]] = []
    try:
        for op_type, op, key in operations:
            if op_type == "ConditionCheck":
                continue
            table_name = op["TableName"]
            written.append((table_name, key, copy.deepcopy(self.get_item(table_name, key))))
            names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            if op_type == "Put":
                self.put_item(table_name, op["Item"], expression_attribute_names=names, expression_attribute_values=values)
            elif op_type == "Delete":
                self.delete_item(table_name, key, expression_attribute_names=names, expression_attribute_values=values)
            else:
                self.update_item(table_name, key, update_expression=op["UpdateExpression"],
                                 expression_attribute_names=names, expression_attribute_values=values)
    except Exception as exc:
        _restore(self, written)
        if isinstance(exc, MockValidationException):  # as moto reports it
            raise
        raise TransactionCanceledException([(type(exc).__name__, str(exc), None)] * len(operations)) from exc


def _restore(backend: DynamoDBBackend, written: list[tuple[str, dict, Any]]) -> None:
    for table_name, key, before in reversed(written):
        table = backend.get_table(table_name)
        if before is None:
            backend.delete_item(table_name, key)
        else:
            table.put_item(before.to_json()["Attributes"])


WRITES = threading.RLock()  # held by every write, and by dynamodb_queries to read its views


def _one_writer_at_a_time(write):
    def locked(self, *args, **kwargs):
        with WRITES:
            return write(self, *args, **kwargs)

    locked.patched = True
    return locked


def apply() -> None:
    if not getattr(DynamoDBBackend.put_item, "patched", False):
        DynamoDBBackend.transact_write_items = _one_writer_at_a_time(transact_write_items)
        for name in ("put_item", "update_item", "delete_item"):
            setattr(DynamoDBBackend, name, _one_writer_at_a_time(getattr(DynamoDBBackend, name)))
    if not getattr(Item.project, "patched", False):
        Item.project = _project_plain_attributes(Item.project)
        BaseJSONSerializer._serialize_type_map = _attribute_maps_as_they_are(BaseJSONSerializer._serialize_type_map)
