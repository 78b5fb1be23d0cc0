"""Which stored entry each write changed: DynamoDB items, S3 objects and tags.

moto keeps no record of what a request changed, so keeping anything up to date beside its
state (an index, a saved copy) meant reading all of it again. Here the write paths of the
collections that grow with the work report the entry they wrote, after writing it, to
whoever listens (``listen``): the index views of dynamodb_queries, the ordered key names of
s3, and the local stack's saved state (obsflow.local.state_pieces).

A report is (source, key), with the source and key each listener expects:
- a DynamoDB item: the Table and (hash key, range key or None), for put, update and delete
  (and so for transactions, batches and PartiQL, which go through them);
- an S3 object: its bucket's key table and the object's name, for every change to its
  versions (put, copy, delete, delete marker) and to a version in place (ACL, retention,
  legal hold, restore);
- a tag set: the tagging service (every service's) and the resource's ARN.

A report does not say what changed: a listener reads the entry as it now is, so reports
arriving out of order, or twice, leave it right.
"""

from __future__ import annotations

import weakref

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.s3.models import S3Backend
from moto.s3.utils import _VersionedKeyStore
from moto.utilities.tagging_service import TaggingService

_listeners: weakref.WeakSet = weakref.WeakSet()  # a listener is dropped with the last reference to it


def listen(listener) -> None:
    """Call ``listener(source, key)`` after each reported write (in the writer's thread)."""
    _listeners.add(listener)


def written(source, key) -> None:
    for listener in list(_listeners):
        listener(source, key)


def _reports_the_item_put(put_item):
    def put(self, *args, **kwargs):
        item = put_item(self, *args, **kwargs)
        written(self, (item.hash_key, item.range_key))
        return item

    put.patched = True
    return put


def _reports_the_item_deleted(delete_item):
    def delete(self, hash_key, range_key, *args, **kwargs):
        try:
            return delete_item(self, hash_key, range_key, *args, **kwargs)
        finally:
            written(self, (hash_key, range_key))

    return delete


def _reports_the_item_updated(update_item):
    """moto updates an item in place, and may have changed part of it when an action fails: reported either way."""

    def update(self, table_name, key, *args, **kwargs):
        try:
            return update_item(self, table_name, key, *args, **kwargs)
        finally:
            table = self.tables.get(table_name) or next(
                (t for t in list(self.tables.values()) if t.table_arn == table_name), None)  # named by its ARN
            if table is not None and table.hash_key_attr in key and (
                    not table.range_key_attr or table.range_key_attr in key):
                written(table, (DynamoType(key[table.hash_key_attr]),
                                DynamoType(key[table.range_key_attr]) if table.range_key_attr else None))

    return update


def _reports_the_name(write):
    def write_versions(self, key, *args, **kwargs):
        try:
            return write(self, key, *args, **kwargs)
        finally:
            written(self, key)

    return write_versions


def _reports_the_object(change):
    def change_in_place(self, bucket_name, key_name, *args, **kwargs):
        try:
            return change(self, bucket_name, key_name, *args, **kwargs)
        finally:
            bucket = self.buckets.get(bucket_name)
            if bucket is not None:
                written(bucket.keys, key_name)

    return change_in_place


def _reports_the_arn(change):
    def change_tags(self, arn, *args, **kwargs):
        try:
            return change(self, arn, *args, **kwargs)
        finally:
            written(self, arn)

    return change_tags


def _reports_the_copy(copy_tags):
    def copy(self, from_arn, to_arn):
        try:
            return copy_tags(self, from_arn, to_arn)
        finally:
            written(self, to_arn)

    return copy


def apply() -> None:
    if getattr(Table.put_item, "patched", False):
        return
    Table.put_item = _reports_the_item_put(Table.put_item)
    Table.delete_item = _reports_the_item_deleted(Table.delete_item)
    DynamoDBBackend.update_item = _reports_the_item_updated(DynamoDBBackend.update_item)
    for name in ("__setitem__", "setlist", "pop"):
        setattr(_VersionedKeyStore, name, _reports_the_name(getattr(_VersionedKeyStore, name)))
    for name in ("put_object_acl", "put_object_retention", "put_object_legal_hold", "restore_object"):
        setattr(S3Backend, name, _reports_the_object(getattr(S3Backend, name)))
    for name in ("tag_resource", "delete_all_tags_for_resource", "untag_resource_using_names",
                 "untag_resource_using_tags"):
        setattr(TaggingService, name, _reports_the_arn(getattr(TaggingService, name)))
    TaggingService.copy_tags = _reports_the_copy(TaggingService.copy_tags)
