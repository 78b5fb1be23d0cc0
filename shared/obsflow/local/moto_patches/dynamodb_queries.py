"""DynamoDB queries at DynamoDB's cost: what a query returns, not what the table holds.

moto answers a query by taking every item of the table (sorted), keeping those whose key
attributes match (for a global secondary index, comparing every item's attributes through
DynamoType), sorting them, walking past the previous page's items one comparison at a
time, and only then counting a page. A query on a 27,000-item table took 0.6 s whatever it
returned, and paging through a partition cost the square of its size.

Here each table keeps, for each index that has been queried (and for the table itself when
it has a sort key), its items by partition, each partition in the order moto sorts a
query's results. Every write moves the item it wrote, as moto_patches.changes reports it
(put, update, delete, and therefore transactions and batches); an item without all of an
index's key attributes is in no partition of it (sparse indexes stay sparse). An index is
made from the table when it is first queried, so a table restored from saved state or
created since needs nothing more.
A query finds its partition, its key condition and the previous page's end by bisection,
and hands moto only the items of its page plus the one after (moto names the last
evaluated key when it meets an item past its limit). An index hands over what it projects, as
DynamoDB's index holds and pages its entries (moto copied whole items to project them, and
paged an index's 1 MB by whole items).
moto then sorts, pages, filters and projects those as before, so results, order, pages and
errors are moto's own.

moto decides as before wherever this would need more than the above: key attributes not
declared or of another type, multi-attribute keys, legacy QueryFilter, a start key outside
the partition, or a page within an item's size of DynamoDB's 1 MB (where any later item
could end it).
"""

from __future__ import annotations

import functools
import inspect
import threading
import weakref
from bisect import bisect_left, bisect_right
from typing import Any

from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import RESULT_SIZE_LIMIT, GlobalSecondaryIndex, Table

from obsflow.local.moto_patches import changes
from obsflow.local.moto_patches.dynamodb import WRITES

LARGEST_ITEM = 410_000  # moto refuses items over 405,000 bytes (DynamoDB: 400 KB)
_KEYS_IN_ORDER = ("S", "N", "B")  # key types; a view compares their values as moto does (cast_value)

_views: weakref.WeakKeyDictionary[Table, dict[str, _View]] = weakref.WeakKeyDictionary()
_query_scope = threading.local()


class _View:
    """One index's items (or the table's), by partition, each in moto's query order.

    ``partitions`` maps the values of ``hash_attrs`` to two parallel lists: the sorted values of ``sort_attrs``
    and the items. ``placed`` maps an item's primary key to where it is, so a write can move it."""

    def __init__(self, hash_attrs: tuple[str, ...], sort_attrs: tuple[str, ...], types: dict[str, str]):
        self.hash_attrs, self.sort_attrs, self.types = hash_attrs, sort_attrs, types
        self.partitions: dict[tuple, tuple[list[tuple], list[Item]]] = {}
        self.placed: dict[tuple, tuple[tuple, tuple]] = {}
        self.usable = True  # False once an item has a key attribute of another type (moto then decides)
        self.visits = 0  # items looked at to make pages: what tests count

    def keys_of(self, item: Item) -> tuple[tuple, tuple] | None:
        values = []
        for name in self.hash_attrs + self.sort_attrs:
            value = item.attrs.get(name)
            if value is None:
                return None  # not in this index
            if value.type != self.types[name]:
                self.usable = False
                return None
            values.append(value.cast_value)
        return tuple(values[:len(self.hash_attrs)]), tuple(values[len(self.hash_attrs):])

    def place(self, primary: tuple, item: Item | None) -> None:
        where = self.placed.pop(primary, None)
        if where is not None:
            partition_key, sort_key = where
            keys, items = self.partitions[partition_key]
            at = bisect_left(keys, sort_key)
            del keys[at], items[at]
            if not keys:
                del self.partitions[partition_key]
        if item is None or (found := self.keys_of(item)) is None:
            return
        partition_key, sort_key = found
        keys, items = self.partitions.setdefault(partition_key, ([], []))
        at = bisect_left(keys, sort_key)
        keys.insert(at, sort_key)
        items.insert(at, item)
        self.placed[primary] = found


def _every_item(table: Table):
    for partition in list(table.items.values()):
        if table.range_key_attr:
            yield from list(partition.values())
        else:
            yield partition


def _spec(table: Table, index_name: str | None) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """The attributes that name a partition and those that order it, as moto's Table.query orders results."""
    if index_name is None:
        hash_attrs, range_attrs = [table.hash_key_attr], [table.range_key_attr]
    else:
        index = next((i for i in table.all_indexes() if i.name == index_name), None)
        if index is None:
            return None
        hashes = [k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"]
        ranges = [k["AttributeName"] for k in index.schema if k["KeyType"] == "RANGE"]
        if len(hashes) != 1 or len(ranges) > 1:
            return None  # multi-attribute keys: moto decides
        if ranges:
            range_attrs = ranges + [table.range_key_attr]
        elif isinstance(index, GlobalSecondaryIndex) and table.range_key_attr:
            range_attrs = [table.range_key_attr, table.range_key_attr]
        else:
            range_attrs = [table.hash_key_attr, table.range_key_attr]
        hash_attrs = hashes + [table.hash_key_attr]
    order = table._generate_attr_to_sort_by(hash_attrs, range_attrs)
    return tuple(order[:1]), tuple(order[1:])


def _view(table: Table, index_name: str | None) -> _View | None:
    """The table's view for a query on ``index_name`` (None: the table), made from the table the first time."""
    views = _views.setdefault(table, {})
    name, spec = index_name or "", _spec(table, index_name)
    view = views.get(name)
    if view is not None and (view.hash_attrs, view.sort_attrs) == spec:
        return view if view.usable else None
    types = {a["AttributeName"]: a["AttributeType"] for a in table.attr}
    if spec is None or any(types.get(name) not in _KEYS_IN_ORDER for name in spec[0] + spec[1]):
        return None
    view = views[name] = _View(*spec, types)
    for item in _every_item(table):
        view.place((item.hash_key, item.range_key), item)
    return view if view.usable else None


def _moved(source, key: tuple[DynamoType, DynamoType | None]) -> None:
    """After a write to one primary key (moto_patches.changes): its item where it now belongs in every view."""
    views = _views.get(source) if isinstance(source, Table) else None
    if not views:
        return
    table, (hash_key, range_key) = source, key
    with WRITES:
        item = table.items.get(hash_key)
        if item is not None and table.range_key_attr:
            item = item.get(range_key)
        for view in views.values():
            view.place((hash_key, range_key), item)


_BOUNDS = {  # comparison -> (bisect for the lower bound, value index; for the upper bound, value index)
    "=": ((bisect_left, 0), (bisect_right, 0)),
    "<": (None, (bisect_left, 0)),
    "<=": (None, (bisect_right, 0)),
    ">": ((bisect_right, 0), None),
    ">=": ((bisect_left, 0), None),
    "BETWEEN": ((bisect_left, 0), (bisect_right, 1)),
    "BEGINS_WITH": ((bisect_left, 0), "prefix"),
}


def _after_prefix(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix`` (None: there is none)."""
    stripped = prefix.rstrip(chr(0x10FFFF))
    return stripped[:-1] + chr(ord(stripped[-1]) + 1) if stripped else None


def _page_of(table: Table, asked: dict[str, Any]) -> list[Item] | None:
    """The items moto needs to answer this query exactly as it would from the whole table; None where moto
    should decide itself."""
    if asked.get("filter_kwargs"):
        return None  # legacy QueryFilter: moto counts those differently
    index_name = asked.get("index_name")
    if index_name is None and not table.range_key_attr:  # a partition of one item
        hash_key = asked.get("hash_key")
        item = table.items.get(hash_key) if hash_key is not None else None
        return None if hash_key is None else [item] if item is not None else []
    with WRITES:  # a view changes with every write, and is made from the table under the same lock
        view = _view(table, index_name)
        return None if view is None else _page_in(view, table, asked)


def _page_in(view: _View, table: Table, asked: dict[str, Any]) -> list[Item] | None:
    index_name, limit, forward = asked.get("index_name"), asked.get("limit"), asked.get("scan_index_forward", True)
    if index_name is None:
        wanted = [(table.hash_key_attr, asked.get("hash_key"))]
    else:
        wanted = list(asked.get("hash_key_conditions") or [])
    if [name for name, _ in wanted] != list(view.hash_attrs) or any(
            value is None or value.type != view.types[name] for name, value in wanted):
        return None
    partition_key = tuple(value.cast_value for _, value in wanted)
    index = table.get_index(index_name) if index_name is not None else None
    keys, items = view.partitions.get(partition_key, ([], []))

    low, high = 0, len(keys)  # the items that meet the key condition on the sort key
    comparison, bounds = asked.get("range_comparison"), asked.get("range_objs") or []
    if comparison is not None:
        first_sort = view.sort_attrs[0]
        conditions = asked.get("range_key_conditions") or []
        if comparison not in _BOUNDS or len(conditions) > 1 or (conditions and conditions[0][0] != first_sort) or \
                any(v.type != view.types[first_sort] for v in bounds) or \
                (comparison == "BEGINS_WITH" and view.types[first_sort] != "S"):
            return None
        if index is not None and not any(k["KeyType"] == "RANGE" for k in index.schema):
            return None  # moto refuses a range condition on an index without a sort key
        values = [v.cast_value for v in bounds]
        lower, upper = _BOUNDS[comparison]
        if lower:
            low = lower[0](keys, values[lower[1]], key=_first)
        if upper == "prefix":
            after = _after_prefix(values[0])
            high = bisect_left(keys, after, key=_first) if after is not None else len(keys)
        elif upper:
            high = upper[0](keys, values[upper[1]], key=_first)
        high = max(low, high)

    start = asked.get("exclusive_start_key")
    if start is not None:  # the previous page ended there: this one begins just past it
        names = view.hash_attrs + view.sort_attrs
        if any(name not in start for name in names):
            return None
        given = [DynamoType(start[name]) for name in names]
        if any(v.type != view.types[name] for name, v in zip(names, given)) or \
                tuple(v.cast_value for v in given[:len(view.hash_attrs)]) != partition_key:
            return None
        start_key = tuple(v.cast_value for v in given[len(view.hash_attrs):])
        low, high = (max(low, bisect_right(keys, start_key)), high) if forward else \
            (low, max(low, min(high, bisect_left(keys, start_key))))
    steps = range(low, high) if forward else range(high - 1, low - 1, -1)
    beyond = range(high, len(keys)) if forward else range(low - 1, -1, -1)
    entry = index.project if index is not None else lambda item: item

    # moto's paging loop: before each item, it stops if the page is full (by count, or by size)
    page: list[Item] = []
    size = 0
    for at in steps:
        item = entry(items[at])
        view.visits += 1
        page.append(item)
        item_size = item.size()
        if len(page) - 1 == limit or size + item_size > RESULT_SIZE_LIMIT:
            return page  # moto stops on this one, and names the one before as the last evaluated key
        size += item_size
    # Every item that meets the condition is in the page; moto walks on past the others, stopping if full
    if beyond and len(page) == limit:
        view.visits += 1
        return page + [entry(items[beyond[0]])]
    if beyond and size + LARGEST_ITEM > RESULT_SIZE_LIMIT:
        return None  # a later item could end the page on its size alone
    return page


def _first(sort_key: tuple) -> Any:
    return sort_key[0]


def _query_a_page(original):
    signature = inspect.signature(original)

    @functools.wraps(original)  # __wrapped__: moto's own query, which tests compare with
    def query(self, *args, **kwargs):
        asked = signature.bind(self, *args, **kwargs).arguments
        # Under the writes' lock to the end: moto updates items in place, and an update that removed an index key
        # while moto sorted the page failed the query (KeyError, a 500; the day bench at 100,000 frames).
        with WRITES:
            _query_scope.items = _page_of(self, asked)
            try:
                return original(self, *args, **kwargs)
            finally:
                _query_scope.items = None

    query.patched = True
    return query


def _scan_under_the_writes_lock(original):
    @functools.wraps(original)
    def scan(self, *args, **kwargs):
        # As a query: moto lists the table's items from its dicts (a put meanwhile: "dictionary changed size") and
        # sorts an index's items by their keys (an update that removed one meanwhile: KeyError), each a 500.
        with WRITES:
            return original(self, *args, **kwargs)

    scan.patched = True
    return scan


def _all_items_in_scope(original):
    def all_items(self):
        scoped = getattr(_query_scope, "items", None)
        return original(self) if scoped is None else scoped

    all_items.patched = True
    return all_items


def visits(table: Table) -> int:
    """How many items this table's views have looked at to make pages (for tests: counted, not timed)."""
    return sum(view.visits for view in _views.get(table, {}).values())


def apply() -> None:
    if getattr(Table.query, "patched", False):
        return
    Table.query = _query_a_page(Table.query)
    Table.scan = _scan_under_the_writes_lock(Table.scan)
    Table.all_items = _all_items_in_scope(Table.all_items)
    changes.listen(_moved)
