"""moto's models: made without keeping each one forever.

moto appends every model object it makes (each DynamoDB item written, each copy of one a
query returns, each S3 object version, each SQS message received) to a list on its class,
for its /moto-api/data.json dump and to close S3 objects' files when a test resets moto.
Nothing removes them, so a local stack that runs for a day holds every item, copy and
message it ever handled: its memory grows with every request, not with what it stores.
Here models are made as plain objects; what a backend holds lives as long as the backend
holds it. An S3 object no longer held closes its file when it is collected, as moto does
(nothing in obsflow reads moto's dump), except while the interpreter exits: moto's
finaliser then cannot import what it needs, and would print a traceback per object.
"""

from __future__ import annotations

import sys

from moto.core.common_models import BaseModel
from moto.s3.models import FakeKey


def _untracked(cls, *args, **kwargs):
    return object.__new__(cls)


_untracked.patched = True


def _quiet_at_exit(finaliser):
    def finalise(self):
        if not sys.is_finalizing():
            finaliser(self)

    return finalise


def apply() -> None:
    if not getattr(BaseModel.__new__, "patched", False):
        BaseModel.__new__ = staticmethod(_untracked)
        FakeKey.__del__ = _quiet_at_exit(FakeKey.__del__)
