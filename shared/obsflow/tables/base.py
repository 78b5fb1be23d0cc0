"""What every table model shares: names bound from Settings, on-demand billing, errors."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable

from pynamodb.connection import Connection
from pynamodb.connection import base as pynamodb_connection
from pynamodb.exceptions import PutError, TransactWriteError, UpdateError
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from obsflow import aws
from obsflow.aws import botocore_session
from obsflow.settings import Settings

# PynamoDB makes a botocore session per table model (and thread): with one loader behind them all,
# botocore's data files are parsed once per process. PynamoDB has no setting for its session.
pynamodb_connection.get_session = botocore_session

_MODELS: dict[str, type[Model]] = {}
CONDITION_FAILED = "ConditionalCheckFailedException"
TRANSACTION_ATTEMPTS = 5  # a transaction that met another on one of its items is tried again, this many times in all
CONFLICT_PAUSE_S = 0.02  # the first pause before trying again (at random up to it), doubled each time


def table(name: str):
    """Register a model under its logical table name so ``bind`` can name it per stage."""

    def register(model: type[Model]) -> type[Model]:
        model.Meta.billing_mode = "PAY_PER_REQUEST"
        _MODELS[name] = model
        return model

    return register


_bound: list[Settings] = []


def bound_settings() -> Settings:
    """The settings the tables were bound to (the environment's if none)."""
    from obsflow.settings import get_settings

    return _bound[-1] if _bound else get_settings()


def bind(settings: Settings) -> None:
    """Point every model at the tables of ``settings``' stage, region and endpoint."""
    _bound[:] = [settings]
    for name, model in _MODELS.items():
        model.Meta.table_name = settings.table_name(name)
        model.Meta.region = settings.region
        model.Meta.host = settings.endpoint_url
        model._connection = None


_FILLS: dict[str, Callable[[], object]] = {}


def create_tables() -> None:
    """Create every table with the keys and indexes its model declares (local stack, tests); a table kept from an
    earlier version (the local stack's saved state) gets the indexes declared since, as a deployment adds them.
    Then what was added is filled from what the tables held before it, once all of them exist."""
    dynamodb = aws.client(bound_settings(), "dynamodb")
    added = []
    for name, model in _MODELS.items():
        try:
            table = dynamodb.describe_table(TableName=model.Meta.table_name)["Table"]
        except dynamodb.exceptions.ResourceNotFoundException:
            model.create_table(wait=True)
            added.append(name)
        else:
            added += add_missing_indexes(model, table)
    for name in added:
        if name in _FILLS:
            _FILLS[name]()


def fills(name: str):
    """Registers what gives an index or a table added to an existing stage what was written before it (an index:
    the key attribute its items lacked; a table: what it derives from others)."""
    def register(fill):
        _FILLS[name] = fill
        return fill
    return register


def add_missing_indexes(model: type[Model], table: dict | None = None) -> list[str]:
    """Create the model's global secondary indexes that its table (as DescribeTable gave it) lacks, one per
    UpdateTable, as DynamoDB allows; their names."""
    dynamodb = aws.client(bound_settings(), "dynamodb")
    table = table or dynamodb.describe_table(TableName=model.Meta.table_name)["Table"]
    present = {index["IndexName"] for index in table.get("GlobalSecondaryIndexes", [])}
    added = []
    for index in model._get_schema()["global_secondary_indexes"]:
        if index["index_name"] in present:
            continue
        dynamodb.update_table(
            TableName=model.Meta.table_name, AttributeDefinitions=index["attribute_definitions"],
            GlobalSecondaryIndexUpdates=[{"Create": {"IndexName": index["index_name"], "KeySchema": index["key_schema"],
                                                     "Projection": index["projection"]}}])
        added.append(index["index_name"])
    return added


def models() -> dict[str, type[Model]]:
    return dict(_MODELS)


def get_or_none(model: type[Model], hash_key, range_key=None):
    """A consistent read of one item; None if there is none."""
    try:
        return model.get(hash_key, range_key, consistent_read=True)
    except model.DoesNotExist:
        return None


def save_if_new(item: Model) -> bool:
    """Put the item only if its key is new; False if it already existed (idempotent creation)."""
    try:
        item.save(condition=type(item)._hash_key_attribute().does_not_exist())
        return True
    except PutError as exc:
        if exc.cause_response_code == CONDITION_FAILED:
            return False
        raise


def changes_to_actions(model: type[Model], changes: dict) -> list:
    """Update actions that set each named attribute, or remove it where the value is None."""
    return [getattr(model, name).remove() if value is None else getattr(model, name).set(value)
            for name, value in changes.items()]


def update_if(item: Model, actions: list, condition) -> bool:
    """Update the item only while ``condition`` holds; False if it did not."""
    try:
        item.update(actions=actions, condition=condition)
        return True
    except UpdateError as exc:
        if exc.cause_response_code == CONDITION_FAILED:
            return False
        raise


def transact_if(connection: Connection, writes: Callable[[TransactWrite], None]) -> bool:
    """Make the writes that ``writes`` adds to a transaction, all or none; False if a condition of one did not
    hold. DynamoDB cancels a transaction that meets another on an item (TransactionConflict): it is tried again."""
    for attempt in itertools.count(1):
        try:
            with TransactWrite(connection=connection) as transaction:
                writes(transaction)
            return True
        except TransactWriteError as exc:
            reasons = {reason.code for reason in exc.cancellation_reasons or () if reason is not None}
            if "ConditionalCheckFailed" in reasons:
                return False
            if "TransactionConflict" not in reasons or attempt == TRANSACTION_ATTEMPTS:
                raise
        time.sleep(random.uniform(0, CONFLICT_PAUSE_S * 2 ** (attempt - 1)))


# The one partition of every listing index (``by-created``): each item, newest first, a page at a time. One
# partition key value is fine for these tables: written once per run, dataset or instance (well under the 1,000
# writes a second a partition takes), read a page at a time.
LISTED = "ALL"


def page(query, hash_key, limit: int, start: dict | None, newest_first: bool = True,
         **conditions) -> tuple[list[Model], dict | None]:
    """Up to ``limit`` items of an index (or table) query from ``start`` (a key this returned before), and the key
    the next page starts from (None: this is the last page). One more item is read to know whether there is one."""
    results = query(hash_key, scan_index_forward=not newest_first, limit=limit + 1, page_size=limit + 1,
                    last_evaluated_key=start, **conditions)
    items = list(results)
    if len(items) <= limit:
        return items, None
    names = set(results.page_iter.key_names)
    return items[:limit], {name: value for name, value in items[limit - 1].serialize(null_check=False).items() if name in names}


def newest_items(model: type[Model], limit: int, start: dict | None, index=None,
                **read) -> tuple[list[Model], dict | None]:
    """A page of the model's items newest first: keys from its listing index (``by_created`` unless another is
    given), then one batch read of the page (``read``: its options, e.g. attributes_to_get)."""
    keys, following = page((index or model.by_created).query, LISTED, limit, start)
    name = model._hash_key_attribute().attr_name
    ids = [getattr(key, name) for key in keys]
    found = {getattr(item, name): item for item in model.batch_get(ids, **read)} if ids else {}
    return [found[i] for i in ids if i in found], following
