"""Reading a frame's primary header with ranged GETs."""

from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.io import fits

from obsflow.errors import Rejected
from obsflow.ingest.fits_header import header_length, read_primary_header
from tests.unit.fakes import FakeBucket

READ = 11 * 2880


def fits_bytes(shape=(1, 256, 256), cards: int = 10) -> bytes:
    header = fits.Header()
    for i in range(cards):
        header[f"KEY{i:05d}"] = i
    buffer = io.BytesIO()
    fits.PrimaryHDU(np.zeros(shape, dtype=np.float32), header=header).writeto(buffer)
    return buffer.getvalue()


def read(body: bytes, **kwargs):
    bucket = FakeBucket({"k": body})
    result = read_primary_header(bucket, "b", "k", None, first_read=kwargs.get("first_read", READ), max_header=100 * 2880)
    return result, bucket


def test_header_is_read_with_one_small_ranged_get_whatever_the_frame_size():
    # Given a 256 KiB frame with a short header
    body = fits_bytes()
    # When its header is read
    (header, size, read_bytes, _), bucket = read(body)
    # Then one GET of at most 32 KiB was enough and the header is complete
    assert bucket.requests == 1 and bucket.bytes_read <= 32 * 1024
    assert header["NAXIS1"] == 256 and size == len(body)


def test_a_long_header_is_read_in_further_ranges_until_its_end_card():
    # Given a header longer than the first read (600 cards ~ 48 KiB)
    body = fits_bytes(shape=(1, 8, 8), cards=600)
    # When it is read
    (header, _, read_bytes, _), bucket = read(body)
    # Then more ranges were fetched and every card arrived
    assert bucket.requests > 1
    assert header["KEY00599"] == 599


@pytest.mark.parametrize(
    "body, code",
    [
        (b"", "empty"),
        (b"%PDF-1.4 not a frame" * 100, "not-fits"),
        (fits_bytes()[:2880], "truncated"),  # header cut before its END card
        (fits_bytes()[: 2880 * 3], "truncated"),  # header complete, data cut short
    ],
    ids=["empty", "not-fits", "header-cut", "data-cut"],
)
def test_objects_that_are_not_complete_fits_frames_are_rejected_with_a_reason(body, code):
    # Given a broken object / When its header is read / Then it is rejected with a specific code
    with pytest.raises(Rejected) as rejected:
        read(body)
    assert rejected.value.code == code
    assert rejected.value.reason


def test_header_length_finds_the_end_card_and_rounds_to_whole_blocks():
    body = fits_bytes()
    assert header_length(body) == 2880
    assert header_length(body[:2000].replace(b"END", b"XYZ")) is None


def dkist_layout(header: fits.Header, data: np.ndarray) -> bytes:
    """A frame as DKIST stores it: an empty primary HDU, the header and data in a RICE CompImageHDU."""
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header=header, compression_type="RICE_1")]).writeto(buffer)
    return buffer.getvalue()


def test_a_frame_tile_compressed_as_dkist_stores_it_gives_the_image_header_from_ranged_gets():
    # Given a 512x512 uint16 frame in DKIST's layout, its header cards in the compressed extension
    cards = fits.Header([("INSTRUME", "VBI"), ("ID___002", "frame-1"), ("CAM__004", 4.0)])
    data = np.random.default_rng(1).integers(0, 60000, (1, 512, 512), dtype=np.uint16)
    body = dkist_layout(cards, data)
    # When its header is read
    (header, size, read_bytes, _), bucket = read(body)
    # Then the image's header comes back (the image's BITPIX and axes, its own cards), from one small GET
    assert (header["BITPIX"], header["NAXIS"], header["NAXIS1"], header["NAXIS2"], header["NAXIS3"]) == (16, 3, 512, 512, 1)
    assert header["INSTRUME"] == "VBI" and header["ID___002"] == "frame-1" and header["CAM__004"] == 4.0
    assert not any(k.startswith(("TTYPE", "TFORM", "ZTILE", "ZNAME")) or k in ("ZIMAGE", "XTENSION") for k in header)
    assert bucket.requests == 1 and read_bytes <= READ and size == len(body)
    # And it agrees with what astropy reads from the whole file
    with fits.open(io.BytesIO(body)) as hdus:
        assert {k: hdus[1].header[k] for k in ("BITPIX", "NAXIS1", "INSTRUME")} == {k: header[k] for k in
                                                                                   ("BITPIX", "NAXIS1", "INSTRUME")}


def test_a_truncated_compressed_frame_and_an_empty_primary_with_a_table_are_rejected_with_a_reason():
    data = np.zeros((1, 64, 64), dtype=np.uint16)
    body = dkist_layout(fits.Header([("INSTRUME", "VBI")]), data)
    with pytest.raises(Rejected) as cut:
        read(body[: len(body) - 2880])
    assert cut.value.code == "truncated"
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("x", "E", array=[1.0])])]).writeto(buffer)
    with pytest.raises(Rejected) as table:
        read(buffer.getvalue())
    assert table.value.code == "unsupported-layout" and "not a tile-compressed image" in table.value.reason
