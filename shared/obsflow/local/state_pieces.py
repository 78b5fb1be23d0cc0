"""The local stack's saved state in pieces, so that a save writes what changed (obsflow.local.state).

moto keeps each service's state in backend objects, and most of what they hold sits in a few collections that grow
with the work. Each entry of those is a piece, pickled alone:

| collection                        | entry                  | a change is found by                          |
| --------------------------------- | ---------------------- | --------------------------------------------- |
| a DynamoDB table's items          | an item                | the write's report (moto_patches.changes)     |
| an S3 bucket's objects            | an object's versions   | the write's report                            |
| S3's tags                         | a resource's tags      | the write's report                            |
| a state machine's executions      | an execution           | its status, stop date and number of events    |
| a log group's streams             | a stream               | its number of events and sequence token       |
| an SNS topic's sent notifications | a notification         | its place (they are only ever appended)       |

The rest of a backend, its shell (tables without their items, buckets without their objects, ...), is one piece,
written when its pickle differs from the one written last. A collection that is new, or whose container was
replaced, is written whole after a record that drops what was saved of it before. An entry that refers to its
backend or to its collection's owner (an execution to its backend, a stream to its group) names them, and finds
them again when it is loaded.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from moto.s3.utils import _VersionedKeyStore

from obsflow.local.moto_patches import changes

KEPT_SERVICES = ("s3", "dynamodb", "sqs", "sns", "ssm", "iam", "stepfunctions", "logs")
_LOCKS = (type(threading.Lock()), type(threading.RLock()))
_ATTEMPTS = 5  # a request changing an object mid-pickle: take it again
MISSING = object()  # an entry that is no longer there


def _tags_of_a_resource() -> defaultdict:
    return defaultdict(dict)


def _defaultdict(cls, factory, items: dict, attributes: dict) -> defaultdict:
    made = cls.__new__(cls)
    defaultdict.__init__(made, factory)
    made.update(items)
    if attributes:
        made.__dict__.update(attributes)
    return made


def _plain_dict_subclass(cls, items: dict, attributes: dict) -> dict:
    made = cls.__new__(cls)
    dict.update(made, items)
    made.__dict__.update(attributes)
    return made


class _Pickler(pickle.Pickler):
    """moto's objects with what pickle cannot take made anew: locks and conditions (fresh ones, as at start), S3's
    versioned key stores with all their versions, defaultdicts rebuilt without calling their subclass's __init__
    (SSM's ParameterDict), and SSM's tag dictionary (a lambda factory) with a named one. The objects in ``named``
    are pickled as their name: a shell's collections, an entry's backend and owner."""

    def __init__(self, file, named: dict[int, tuple] | None = None):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._named = named or {}

    def persistent_id(self, obj):
        return self._named.get(id(obj))

    def reducer_override(self, obj):
        if isinstance(obj, _LOCKS):
            return threading.RLock if isinstance(obj, _LOCKS[1]) else threading.Lock, ()
        if isinstance(obj, threading.Condition):
            return threading.Condition, ()
        if type(obj).__name__ == "_VersionedKeyStore":  # S3's keys: each a list of versions, which its
            # items() hides (it gives the latest alone); stored as they are, every version kept
            return _plain_dict_subclass, (type(obj), dict(dict.items(obj)), obj.__dict__)
        if isinstance(obj, defaultdict):
            factory = obj.default_factory
            if getattr(factory, "__name__", "") == "<lambda>":
                factory = _tags_of_a_resource
            return _defaultdict, (type(obj), factory, dict(obj), getattr(obj, "__dict__", {}))
        return NotImplemented


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, named: Callable[[tuple], Any]):
        super().__init__(io.BytesIO(data))
        self._named = named

    def persistent_load(self, name):
        return self._named(name)


class ChangedWhilePickled(RuntimeError):
    """Requests kept changing an object while it was pickled."""


def pickled(obj, named: dict[int, tuple] | None = None) -> bytes:
    for _ in range(_ATTEMPTS):
        buffer = io.BytesIO()
        try:
            _Pickler(buffer, named).dump(obj)
            return buffer.getvalue()
        except RuntimeError:  # "dictionary changed size during iteration": a request changed it
            continue
    raise ChangedWhilePickled(f"{type(obj).__name__} changed while it was pickled, {_ATTEMPTS} times")


@dataclass(frozen=True)
class Collection:
    """One kind of large collection in a service's backends, kept entry by entry."""

    name: str
    owners: Callable[[Any], dict]  # backend -> {owner's name: owner}
    container: Callable[[Any], Any]  # owner -> its collection
    entries: Callable[[Any], list]  # collection -> [(key, entry)]
    fill: Callable[[Any, list], None]  # an empty collection, [(key, entry)] -> the collection as it was
    empty: Callable[[], Any]
    source: Callable[[Any, Any], Any] | None = None  # (owner, collection) -> what moto_patches.changes reports
    lookup: Callable[[Any, Any], Any] | None = None  # (collection, key) -> its entry, or MISSING
    stamp: Callable[[Any], Any] | None = None  # entry -> what changes when it does (collections not reported)


def _items(items) -> list:
    found = []
    for hash_key, partition in list(items.items()):
        if isinstance(partition, dict):  # a table with a sort key: {range key: item}
            found += [((hash_key, range_key), item) for range_key, item in list(partition.items())]
        else:
            found.append(((hash_key, None), partition))
    return found


def _item(items, key) -> Any:
    hash_key, range_key = key
    partition = items.get(hash_key, MISSING)
    if range_key is None or partition is MISSING:
        return partition
    return partition.get(range_key, MISSING)


def _fill_items(items, entries: list) -> None:
    for (hash_key, range_key), item in entries:
        if range_key is None:
            items[hash_key] = item
        else:
            items[hash_key][range_key] = item


def _fill_objects(keys, entries: list) -> None:
    for name, versions in entries:
        dict.__setitem__(keys, name, versions)


def _fill_in_order(sent: list, entries: list) -> None:
    sent.extend(notification for _, notification in sorted(entries, key=lambda entry: entry[0]))


def _execution_stamp(execution) -> tuple:
    environment = getattr(execution.exec_worker, "env", None)
    events = len(environment.event_manager._history_event_list) if environment is not None else 0
    return execution.exec_status, execution.stop_date, events


ITEMS = Collection("items", owners=lambda backend: dict(backend.tables), container=lambda table: table.items,
                   entries=_items, fill=_fill_items, empty=lambda: defaultdict(dict),
                   source=lambda table, items: table, lookup=_item)
OBJECTS = Collection("objects", owners=lambda backend: dict(backend.buckets), container=lambda bucket: bucket.keys,
                     entries=lambda keys: list(dict.items(keys)), fill=_fill_objects, empty=_VersionedKeyStore,
                     source=lambda bucket, keys: keys, lookup=lambda keys, name: dict.get(keys, name, MISSING))
TAGS = Collection("tags", owners=lambda backend: {"tagger": backend.tagger}, container=lambda tagger: tagger.tags,
                  entries=lambda tags: list(tags.items()), fill=dict.update, empty=dict,
                  source=lambda tagger, tags: tagger, lookup=lambda tags, arn: tags.get(arn, MISSING))
EXECUTIONS = Collection(
    "executions", owners=lambda backend: {sm.arn: sm for sm in list(backend.state_machines)},
    container=lambda machine: machine.executions,
    entries=lambda executions: [(e.execution_arn, e) for e in list(executions)],
    fill=lambda executions, entries: executions.extend(sorted((e for _, e in entries), key=lambda e: e.start_date)),
    empty=list, stamp=_execution_stamp)
NOTIFICATIONS = Collection(  # what each topic sent, kept by moto for tests to read: appended, never changed
    "notifications", owners=lambda backend: dict(backend.topics), container=lambda topic: topic.sent_notifications,
    entries=lambda sent: list(enumerate(sent)), fill=_fill_in_order, empty=list, stamp=lambda notification: 0)
STREAMS = Collection("streams", owners=lambda backend: dict(backend.groups), container=lambda group: group.streams,
                     entries=lambda streams: list(streams.items()), fill=dict.update, empty=dict,
                     stamp=lambda stream: (len(stream.events), stream.upload_sequence_token))
COLLECTIONS = {"dynamodb": (ITEMS,), "s3": (OBJECTS, TAGS), "stepfunctions-parser": (EXECUTIONS,), "logs": (STREAMS,),
               "sns": (NOTIFICATIONS,)}


def live_backends() -> dict:
    from moto.backends import get_backend
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    # With execute_state_machine on, moto keeps state machines and executions in the parser's backend.
    return {**{service: get_backend(service) for service in KEPT_SERVICES},
            "stepfunctions-parser": stepfunctions_parser_backends}


def _each_backend(live: dict) -> Iterator[tuple[tuple, Any]]:
    for service, backend_dict in live.items():
        for account, regions in list(dict.items(backend_dict)):
            for region, backend in list(dict.items(regions)):
                yield (service, account, region), backend


def _each_collection(place: tuple, backend) -> Iterator[tuple[Collection, tuple, Any, Any]]:
    for collection in COLLECTIONS.get(place[0], ()):
        for owner_name, owner in collection.owners(backend).items():
            yield collection, (*place, collection.name, owner_name), owner, collection.container(owner)


@dataclass
class _Saved:
    """A collection as the saved state has it: which container (held, so that its id is not reused while it is
    known) and, for a collection found changed by stamps, each entry's stamp."""

    container: Any
    stamps: dict | None


class Pieces:
    """What the saved state holds of moto's backends, to tell what changed since: one per state directory."""

    def __init__(self):
        self._reported: set[tuple[int, Any]] = set()
        self._reports_lock = threading.Lock()
        changes.listen(self)  # weakly: the reports stop with this object
        self._shells: dict[tuple, bytes] = {}  # backend's place -> digest of the shell saved
        self._collections: dict[tuple, _Saved] = {}

    def __call__(self, source, key) -> None:
        with self._reports_lock:
            self._reported.add((id(source), key))

    def _take_reports(self) -> dict[int, set]:
        with self._reports_lock:
            reported, self._reported = self._reported, set()
        by_source = defaultdict(set)
        for source, key in reported:
            by_source[source].add(key)
        return by_source

    def forget(self) -> None:
        """Nothing is known to be saved: the next save writes everything."""
        self._shells.clear()
        self._collections.clear()

    def everything(self) -> Iterator[tuple]:
        """Every piece, as records (see obsflow.local.state)."""
        self._take_reports()
        self.forget()
        live = live_backends()
        named = _names_for_entries(live)
        for place, backend in _each_backend(live):
            cut = {}
            for collection, path, owner, container in _each_collection(place, backend):
                cut[id(container)] = ("cut", path)
                saved = _Saved(container, {} if collection.stamp else None)
                for key, entry in collection.entries(container):
                    if saved.stamps is not None:
                        saved.stamps[key] = collection.stamp(entry)  # before the pickle: a later change shows
                    yield "entry", path, key, pickled(entry, named)
                self._collections[path] = saved
            yield self._shell(place, backend, cut)
        yield "bucket-accounts", pickled(dict(live["s3"].bucket_accounts))

    def changed(self) -> list[tuple]:
        """The pieces that changed since the last save, as records; none when nothing did."""
        reported = self._take_reports()
        live = live_backends()
        named = _names_for_entries(live)
        records, seen = [], set()
        for place, backend in _each_backend(live):
            cut = {}
            for collection, path, owner, container in _each_collection(place, backend):
                cut[id(container)] = ("cut", path)
                seen.add(path)
                saved = self._collections.get(path)
                if saved is None or saved.container is not container:  # new, or replaced: written whole
                    saved = self._collections[path] = _Saved(container, {} if collection.stamp else None)
                    records.append(("cleared", path))
                    candidates = collection.entries(container)
                elif collection.stamp is None:
                    keys = reported.get(id(collection.source(owner, container)), ())
                    candidates = [(key, collection.lookup(container, key)) for key in keys]
                else:
                    current = dict(collection.entries(container))
                    candidates = [(key, current.get(key, MISSING)) for key in saved.stamps.keys() | current.keys()]
                for key, entry in candidates:
                    if saved.stamps is not None:
                        if entry is MISSING:
                            del saved.stamps[key]
                        elif saved.stamps.get(key, MISSING) == (stamp := collection.stamp(entry)):
                            continue
                        else:
                            saved.stamps[key] = stamp  # before the pickle: a change after it shows next time
                    records.append(("entry", path, key, None if entry is MISSING else pickled(entry, named)))
            shell = self._shell(place, backend, cut)
            if shell is not None:
                records.append(shell)
        for path in set(self._collections) - seen:  # its owner is gone (and with it, from the shell): its entries too
            del self._collections[path]
            records.append(("cleared", path))
        accounts = pickled(dict(live["s3"].bucket_accounts))
        if self._shells.get("bucket-accounts") != (digest := hashlib.sha256(accounts).digest()):
            self._shells["bucket-accounts"] = digest
            records.append(("bucket-accounts", accounts))
        return records

    def _shell(self, place: tuple, backend, cut: dict) -> tuple | None:
        shell = pickled(backend, cut)
        digest = hashlib.sha256(shell).digest()
        if self._shells.get(place) == digest:
            return None
        self._shells[place] = digest
        return "shell", place, shell

    def assemble(self, shells: dict[tuple, bytes], collections: dict[tuple, dict], bucket_accounts: bytes | None):
        """The backends the pieces make, by service, account and region; and S3's bucket owners."""
        made: dict[tuple, Any] = {}  # a collection's path -> its (empty) container in the shell

        def cut(name: tuple):
            _, path = name
            container = made[path] = next(c for c in COLLECTIONS[path[0]] if c.name == path[3]).empty()
            return container

        backends: dict[tuple, Any] = {place: _Unpickler(data, cut).load() for place, data in shells.items()}
        owners: dict[tuple, Any] = {}

        def anchor(name: tuple):
            kind, place = name
            if kind == "backend":
                return backends[place]
            if place not in owners:
                collection = next(c for c in COLLECTIONS[place[0]] if c.name == place[3])
                owners[place] = collection.owners(backends[place[:3]])[place[4]]
            return owners[place]

        for path, entries in collections.items():
            container = made.get(path)
            if container is None:
                continue  # its owner was removed after they were saved
            collection = next(c for c in COLLECTIONS[path[0]] if c.name == path[3])
            collection.fill(container, [(key, _Unpickler(data, anchor).load()) for key, data in entries.items()
                                        if data is not None])
        for place, shell in shells.items():  # what is saved is known: the next save writes what changes
            self._shells[place] = hashlib.sha256(shell).digest()
        if bucket_accounts is not None:
            self._shells["bucket-accounts"] = hashlib.sha256(bucket_accounts).digest()
        for place, backend in backends.items():
            for collection, path, owner, container in _each_collection(place, backend):
                stamps = {key: collection.stamp(e) for key, e in collection.entries(container)} \
                    if collection.stamp else None
                self._collections[path] = _Saved(container, stamps)
        return backends, pickle.loads(bucket_accounts) if bucket_accounts is not None else {}


def _names_for_entries(live: dict) -> dict[int, tuple]:
    """What an entry may refer to by name: every backend, and every collection's owner."""
    named = {}
    for place, backend in _each_backend(live):
        named[id(backend)] = ("backend", place)
        for _, path, owner, _ in _each_collection(place, backend):
            named[id(owner)] = ("owner", path)
    return named
