"""The ingest path's fast header reading: memoised card values, and header reads side by side."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from astropy.io import fits

from obsflow.errors import Rejected
from obsflow.ingest.fits_header import header_values, read_header_values, read_primary_header
from obsflow.ingest.objects import PrefetchingReader
from tests.unit.fakes import FakeBucket

READ = 11 * 2880


def frame(cards: dict, shape=(4, 4)) -> bytes:
    header = fits.Header()
    for keyword, value in cards.items():
        header[keyword] = value
    buffer = io.BytesIO()
    fits.PrimaryHDU(np.zeros(shape, dtype=np.float32), header=header).writeto(buffer)
    return buffer.getvalue()


def astropy_values(body: bytes) -> dict:
    header = fits.open(io.BytesIO(body))[0].header
    values = {}
    for card in header.cards:
        if card.keyword not in ("", "COMMENT", "HISTORY"):
            values.setdefault(card.keyword, card.value)
    return values


CARDS = {"INSTRUME": "VBI", "EXPTIME": 0.5, "AO___002": True, "NCOUNT": 7, "OBJECT": "quiet sun", "EMPTY": ""}


@pytest.mark.parametrize("edit", [{}, {"EXPTIME": 1.5}, {"OBJECT": "sunspot", "NCOUNT": -3},
                                  {"LONGSTR": "x" * 150}], ids=["same", "float", "str-int", "continue-card"])
def test_values_equal_astropys_whatever_was_seen_before(edit):
    # Given a header parsed once (its cards now memoised), and a header that differs from it
    first, second = frame(CARDS), frame({**CARDS, **edit})
    read_header_values(FakeBucket({"k": first}), "b", "k", None, first_read=READ, max_header=100 * 2880)
    # When the second is read
    values, size, _, _ = read_header_values(FakeBucket({"k": second}), "b", "k", None, first_read=READ,
                                            max_header=100 * 2880)
    # Then its values are astropy's own, with the same types
    expected = astropy_values(second)
    assert values == expected and size == len(second)
    assert {k: type(v) for k, v in values.items()} == {k: type(v) for k, v in expected.items()}


def test_a_bad_card_is_a_clear_rejection():
    body = frame(CARDS)
    text = body[:2880].decode("ascii").replace("EXPTIME =                  0.5", "EXPTIME =           0.5.5.5.5")
    with pytest.raises(Rejected) as raised:
        header_values(text)
    assert raised.value.code == "bad-header"


def test_the_same_checks_as_read_primary_header():
    # Given a frame cut short after its header
    body = frame(CARDS, shape=(64, 64))[:2880 + 100]
    # Then both readers reject it as truncated
    for reader in (read_primary_header, read_header_values):
        with pytest.raises(Rejected) as raised:
            reader(FakeBucket({"k": body}), "b", "k", None, first_read=READ, max_header=100 * 2880)
        assert raised.value.code == "truncated"


class SlowBucket(FakeBucket):
    """A bucket whose GETs wait, as S3's do, counting how many are in flight at once."""

    def __init__(self, objects, fail=()):
        super().__init__(objects)
        self.fail, self.in_flight, self.most_in_flight = set(fail), 0, 0
        self.lock = threading.Lock()

    def read_range(self, bucket, key, version_id, start, length):
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(0.02)
            if key in self.fail:
                raise Rejected("gone", f"{key} is gone")
            return super().read_range(bucket, key, version_id, start, length)
        finally:
            with self.lock:
                self.in_flight -= 1


def test_a_batch_of_headers_is_read_side_by_side_and_served_once():
    # Given ten frames behind a slow bucket
    objects = {f"k{i}": frame(CARDS) for i in range(10)}
    bucket = SlowBucket(objects)
    reader = PrefetchingReader(bucket, workers=10)
    # When the batch is prefetched, then each header read
    started = time.perf_counter()
    reader.prefetch([("b", key, None) for key in objects], READ)
    prefetch_s = time.perf_counter() - started
    for key in objects:
        reader.read_range("b", key, None, 0, READ)
    # Then the GETs overlapped, and reading served the prefetched bytes (no second GET)
    assert bucket.most_in_flight > 1 and prefetch_s < 10 * 0.02
    assert bucket.requests == 10
    # And a second read of the same range goes to the bucket again
    reader.read_range("b", "k0", None, 0, READ)
    assert bucket.requests == 11


def test_a_failed_prefetch_surfaces_when_the_object_is_read():
    bucket = SlowBucket({"good": frame(CARDS), "gone": frame(CARDS)}, fail={"gone"})
    reader = PrefetchingReader(bucket, workers=4)
    reader.prefetch([("b", "good", None), ("b", "gone", None)], READ)
    assert reader.read_range("b", "good", None, 0, READ)[1] == len(frame(CARDS))
    with pytest.raises(Rejected, match="gone"):
        reader.read_range("b", "gone", None, 0, READ)
