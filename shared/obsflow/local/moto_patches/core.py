"""moto's models: made without keeping each one forever.

moto appends every model object it makes (each DynamoDB item written, each copy of one a
query returns, each S3 object version, each SQS message received) to a list on its class,
for its /moto-api/data.json dump and to close S3 objects' files when a test resets moto.
Nothing removes them, so a local stack that runs for a day holds every item, copy and
message it ever handled: its memory grows with every request, not with what it stores.
Here models are made as plain objects; what a backend holds lives as long as the backend
holds it. (Nothing in obsflow reads moto's dump; an S3 object's file closes when it is
removed, as moto does.)
"""

from __future__ import annotations

from moto.core.common_models import BaseModel


def _untracked(cls, *args, **kwargs):
    return object.__new__(cls)


_untracked.patched = True


def apply() -> None:
    if not getattr(BaseModel.__new__, "patched", False):
        BaseModel.__new__ = staticmethod(_untracked)
