"""moto's models: kept as long as something holds them, no longer and no shorter.

moto appends every model object it makes (each DynamoDB item written, each copy of one a
query returns, each S3 object version, each SQS message received) to a list on its class,
for its /moto-api/data.json dump and to close S3 objects' files when a test resets moto.
Nothing removes them, so a local stack that runs for a day holds every item, copy and
message it ever handled: its memory grows with every request, not with what it stores.
Here models are made as plain objects; what a backend holds lives as long as the backend
holds it (nothing in obsflow reads moto's dump).

An S3 object version keeps its body in a file, which moto closes as soon as a write replaces
or deletes the version, although a request in flight may still be reading it: a GET of the
version just replaced, or a PUT working out its ETag after another PUT of the same key
replaced the key's versions, then fails with "I/O operation on closed file" (seen under
load by bench/dkist_day.py). Here a version's file is closed when nothing holds the version
any more (moto's finaliser), quietly, and not while the interpreter exits (moto's finaliser
then cannot import what it needs, and would print a traceback per object).
"""

from __future__ import annotations

import sys

from moto.core.common_models import BaseModel
from moto.s3.models import FakeKey
from moto.s3.utils import _VersionedKeyStore


def _untracked(cls, *args, **kwargs):
    return object.__new__(cls)


_untracked.patched = True


def _closed_when_collected(self: FakeKey) -> None:
    if not sys.is_finalizing():
        self.dispose()


def _pop_without_closing(self: _VersionedKeyStore, key: str) -> None:
    dict.pop(self, key)


def _setlist_without_closing(self: _VersionedKeyStore, key, list_) -> None:
    dict.__setitem__(self, key, list_ if isinstance(list_, list) else list(list_) if isinstance(list_, tuple)
                     else [list_])


def apply() -> None:
    if not getattr(BaseModel.__new__, "patched", False):
        BaseModel.__new__ = staticmethod(_untracked)
        FakeKey.__del__ = _closed_when_collected
        _VersionedKeyStore.pop = _pop_without_closing
        _VersionedKeyStore.setlist = _setlist_without_closing
