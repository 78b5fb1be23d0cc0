"""Fixtures of the unit tests."""

from __future__ import annotations

import pytest

from obsflow.ingest.service import IngestService
from obsflow.settings import Settings
from tests.unit.fakes import FakeBucket, FakeStore


@pytest.fixture
def world(small_candidate):
    """Given the small candidate's objects in a fake bucket, an empty fake store and the ingest service over them."""
    objects = dict(small_candidate.frame_objects())
    objects.update([small_candidate.manifest_object(), small_candidate.candidate_object()])
    bucket, store = FakeBucket(objects), FakeStore()
    return small_candidate, bucket, store, IngestService(bucket, store, Settings(stage="test"))
