"""S3: listing a prefix at the cost of the keys under it, not of the bucket.

moto answers ListObjects(V2) with a Prefix by copying the bucket's whole key table and
testing every name, so listing one run's few outputs in a bucket of 100,000 frames cost
100,000 comparisons, and every run lists several prefixes.

Here each bucket's key table keeps its names in order, made at its first listing with a
prefix and kept by every write (as moto_patches.changes reports it); a listing with a prefix walks
only the names that start with it, and moto builds its answer (delete markers, common
prefixes, pages, continuation tokens) from those as before. The ordered names are not
saved with the state: a restored bucket makes them again at its first listing.
"""

from __future__ import annotations

import functools
import threading
from bisect import bisect_left

from moto.s3.models import S3Backend
from moto.s3.utils import _VersionedKeyStore

from obsflow.local.moto_patches import changes

_NAMES = "_obsflow_sorted_names"
_WRITES = threading.RLock()
_listing = threading.local()


class _SortedNames(list):
    """A key table's names in order. Pickled empty, as not made: made again from the table when next listed."""

    def __reduce__(self):
        return _SortedNames, ()

    made = False


def _names(store: _VersionedKeyStore) -> _SortedNames:
    names = store.__dict__.get(_NAMES)
    if names is None or not names.made:
        with _WRITES:
            names = store.__dict__[_NAMES] = _SortedNames(sorted(dict.copy(store)))  # a copy: atomic
            names.made = True
    return names


def _prefixed(store: _VersionedKeyStore, prefix: str):
    with _WRITES:
        names = _names(store)
        at = bisect_left(names, prefix)
        found = []
        while at < len(names) and names[at].startswith(prefix):
            found.append(names[at])
            at += 1
    for name in found:
        versions = store.getlist(name)
        if versions:
            yield name, versions[-1]


def _name_written(source, name) -> None:
    """After a write to one object's versions (moto_patches.changes): its name in order, or gone."""
    names = getattr(source, "__dict__", {}).get(_NAMES) if isinstance(source, _VersionedKeyStore) else None
    if names is None or not names.made:
        return
    with _WRITES:
        at = bisect_left(names, name)
        listed = at < len(names) and names[at] == name
        if dict.__contains__(source, name) and not listed:
            names.insert(at, name)
        elif listed and not dict.__contains__(source, name):
            del names[at]


def _items_in_scope(items):
    def scoped_items(self):
        prefix = getattr(_listing, "prefix", None)
        if prefix and getattr(_listing, "store", None) is self:
            return _prefixed(self, prefix)
        return items(self)

    scoped_items.patched = True
    return scoped_items


def _lists_only_the_prefix(list_objects):
    @functools.wraps(list_objects)  # __wrapped__: moto's own listing, which tests compare with
    def listed(self, bucket, prefix, *args, **kwargs):
        _listing.store, _listing.prefix = getattr(bucket, "keys", None), prefix
        try:
            return list_objects(self, bucket, prefix, *args, **kwargs)
        finally:
            _listing.store = _listing.prefix = None

    listed.patched = True
    return listed


def apply() -> None:
    if getattr(S3Backend.list_objects, "patched", False):
        return
    changes.listen(_name_written)
    _VersionedKeyStore.items = _VersionedKeyStore.iteritems = _items_in_scope(_VersionedKeyStore.items)
    S3Backend.list_objects = _lists_only_the_prefix(S3Backend.list_objects)
