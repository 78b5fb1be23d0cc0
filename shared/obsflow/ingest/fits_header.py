"""Read the primary header of a FITS object with ranged GETs, never the whole frame."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol

from obsflow.errors import Rejected

if TYPE_CHECKING:
    from astropy.io import fits

# astropy loads with the first header parsed, not on import (see obsflow.ingest.frames).

BLOCK = 2880
CARD = 80
END_CARD = b"END" + b" " * 77
IGNORED_KEYWORDS = frozenset({"", "COMMENT", "HISTORY"})


class RangeReader(Protocol):
    def read_range(
        self, bucket: str, key: str, version_id: str | None, start: int, length: int
    ) -> tuple[bytes, int, str | None]:
        """Bytes ``start .. start+length-1`` of the object, its total size and its version id."""


def header_length(buffer: bytes) -> int | None:
    """Bytes the header occupies (a whole number of blocks), or None if END is not in ``buffer``."""
    for offset in range(0, len(buffer) - CARD + 1, CARD):
        if buffer[offset : offset + CARD] == END_CARD:
            return (offset // BLOCK + 1) * BLOCK
    return None


BITPIX_VALUES = (8, 16, 32, 64, -32, -64)


def _structural(header: Mapping, keyword: str, default: int | None = None, low: int = 0, high: int = 2**62) -> int:
    """A structural keyword's value: an integer within bounds, or Rejected saying which keyword is wrong."""
    value = header.get(keyword, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        shown = "missing" if value is None else repr(value)
        raise Rejected("bad-structure", f"the header's {keyword} is {shown}, not an integer from {low} to {high}: the "
                                        "data's size cannot be known; fix the writer and re-transfer the frame")
    return value


def data_length(header: Mapping) -> int:
    """Bytes of the data unit the header declares (without the final block padding)."""
    bitpix = _structural(header, "BITPIX", low=-64, high=64)
    if bitpix not in BITPIX_VALUES:
        raise Rejected("bad-structure", f"the header's BITPIX is {bitpix}, not one of {BITPIX_VALUES}")
    naxis = _structural(header, "NAXIS", high=999)
    if naxis == 0:
        return 0
    elements = math.prod(_structural(header, f"NAXIS{i}") for i in range(1, naxis + 1))
    return abs(bitpix) // 8 * _structural(header, "GCOUNT", 1) * (_structural(header, "PCOUNT", 0) + elements)


def _read_header_text(reader: RangeReader, bucket: str, key: str, version_id: str | None, *, first_read: int,
                      max_header: int, start: int = 0, prefetched: bytes = b"",
                      size: int | None = None) -> tuple[str, int, int, str | None, bytes]:
    """(header text up to its last block, object size, bytes read, version id read, bytes read after the
    header). ``start``: where the header begins (0: the primary header; an extension's otherwise)."""
    buffer, read = prefetched, 0
    if len(buffer) < CARD:
        more, size, version_id = reader.read_range(bucket, key, version_id, start + len(buffer), first_read)
        buffer, read = buffer + more, len(more)
    if size == 0:
        raise Rejected("empty", "the object is empty (0 bytes); re-transfer the frame")
    if start == 0 and (not buffer.startswith(b"SIMPLE  =") or buffer[29:30] != b"T"):
        raise Rejected("not-fits", "not a FITS file: it does not start with 'SIMPLE  =                    T'")
    if start and not buffer.startswith(b"XTENSION="):
        raise Rejected("truncated", f"truncated: no extension header where the primary header says one follows "
                                    f"(byte {start} of {size}); re-transfer the frame")
    length = header_length(buffer)
    while length is None:
        if start + len(buffer) >= size:
            raise Rejected("truncated", f"truncated: the header has no END card within the object's {size} bytes")
        if len(buffer) >= max_header:
            raise Rejected("header-too-long", f"the header has no END card in its first {max_header} bytes")
        more, size, _ = reader.read_range(bucket, key, version_id, start + len(buffer), first_read)
        buffer, read = buffer + more, read + len(more)
        length = header_length(buffer)
    try:
        return buffer[:length].decode("ascii"), size, read, version_id, buffer[length:]
    except UnicodeDecodeError as exc:
        raise Rejected("bad-header", f"the FITS header cannot be parsed: {exc}") from exc


# What a tile-compressed image's binary table header says about the table itself, not the image.
_TABLE_KEYWORDS = frozenset({"XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "PCOUNT", "GCOUNT", "TFIELDS",
                             "THEAP", "EXTEND", "ZIMAGE", "ZCMPTYPE", "ZSIMPLE", "ZTENSION", "ZEXTEND", "ZBLOCKED",
                             "ZPCOUNT", "ZGCOUNT", "ZQUANTIZ", "ZDITHER0", "ZHECKSUM", "ZDATASUM", "CHECKSUM",
                             "DATASUM"})
_TABLE_PREFIXES = ("TTYPE", "TFORM", "TUNIT", "TSCAL", "TZERO", "TNULL", "TDISP", "TDIM", "ZTILE", "ZNAME", "ZVAL")


def is_compressed_image(extension: Mapping) -> bool:
    return extension.get("XTENSION") == "BINTABLE" and extension.get("ZIMAGE") is True


def compressed_image_values(primary: Mapping, extension: Mapping) -> dict:
    """The image's header, as astropy's CompImageHDU gives it: the primary's cards, then the extension's
    cards that describe the image, with ZBITPIX, ZNAXIS and ZNAXISn as BITPIX, NAXIS and NAXISn."""
    values = {k: v for k, v in primary.items() if k not in ("BITPIX", "NAXIS", "EXTEND")}
    values.update(BITPIX=extension.get("ZBITPIX"), NAXIS=extension.get("ZNAXIS"))
    for keyword, value in extension.items():
        if keyword.startswith("ZNAXIS") and keyword[6:].isdigit():
            values[f"NAXIS{keyword[6:]}"] = value
        elif keyword not in _TABLE_KEYWORDS and not keyword.startswith(_TABLE_PREFIXES) and keyword not in (
                "ZBITPIX", "ZNAXIS"):
            values[keyword] = value
    return values


def _check_complete(header: Mapping, length: int, size: int) -> None:
    # A writer may omit the final block padding; anything shorter than the data is truncated.
    declared = length + data_length(header)
    if size < declared:
        raise Rejected(
            "truncated",
            f"truncated: the object has {size} bytes but its header declares {declared}; re-transfer the frame",
        )


def read_primary_header(reader: RangeReader, bucket: str, key: str, version_id: str | None, *, first_read: int,
                        max_header: int) -> tuple[fits.Header, int, int, str | None]:
    """Return (header, object size, bytes read, version id read).

    Reads ``first_read`` bytes, then further ranges only if the header goes on. A frame stored as DKIST
    stores them (an empty primary HDU, the image tile-compressed in the first extension) gives the image's
    header. Raises Rejected for anything that is not a complete single-image FITS object.
    """
    return _read(reader, bucket, key, version_id, first_read, max_header)


def read_header_values(reader: RangeReader, bucket: str, key: str, version_id: str | None, *, first_read: int,
                       max_header: int) -> tuple[dict, int, int, str | None]:
    """As ``read_primary_header``, with the header as keyword -> value (what ingest needs, parsed faster)."""
    return _read(reader, bucket, key, version_id, first_read, max_header, as_values=True)


def _read(reader: RangeReader, bucket: str, key: str, version_id: str | None, first_read: int, max_header: int,
          as_values: bool = False):
    text, size, read, version_id, rest = _read_header_text(reader, bucket, key, version_id, first_read=first_read,
                                                           max_header=max_header)
    header = header_values(text) if as_values else _astropy_header(text)
    if header.get("NAXIS") != 0 or header.get("EXTEND") is not True:
        _check_complete(header, len(text), size)
        return header, size, read, version_id
    # An empty primary HDU: the image, if any, is in the first extension.
    if size <= len(text):
        _check_complete(header, len(text), size)
        return header, size, read, version_id
    extension_text, size, more, _, _ = _read_header_text(reader, bucket, key, version_id, first_read=first_read,
                                                         max_header=max_header, start=len(text), prefetched=rest,
                                                         size=size)
    extension = header_values(extension_text)
    if not is_compressed_image(extension):
        raise Rejected("unsupported-layout", f"the primary HDU is empty and the first extension is a "
                                             f"{extension.get('XTENSION')!r}, not a tile-compressed image "
                                             "(ZIMAGE = T): send the image in the primary HDU or as DKIST does")
    _check_complete(extension, len(text) + len(extension_text), size)
    image = compressed_image_values(header if as_values else header_values(text), extension)
    return image if as_values else _header_of(image), size, read + more, version_id


def _header_of(values: dict) -> fits.Header:
    from astropy.io import fits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fits.Header(list(values.items()))


def _astropy_header(text: str) -> fits.Header:
    from astropy.io import fits

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fits.Header.fromstring(text)
    except ValueError as exc:
        raise Rejected("bad-header", f"the FITS header cannot be parsed: {exc}") from exc


@lru_cache(maxsize=65536)
def _card(image: str) -> tuple[str, object]:
    """One card's (keyword, value), parsed by astropy. Frames of an OP repeat most cards exactly."""
    from astropy.io import fits

    card = fits.Card.fromstring(image)
    return card.keyword, card.value


def header_values(text: str) -> dict:
    """keyword -> value of a header's cards, without COMMENT, HISTORY and blank cards.

    Astropy parses each distinct card image once; a header with long-string (CONTINUE)
    cards is parsed whole.
    """
    from astropy.io import fits

    values = {}
    images = [text[offset:offset + CARD] for offset in range(0, len(text), CARD)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if any(image.startswith("CONTINUE") for image in images):
                cards = [(card.keyword, card.value) for card in fits.Header.fromstring(text).cards]
            else:
                cards = [_card(image) for image in images if not image.startswith("END ")]
            for keyword, value in cards:
                if keyword not in IGNORED_KEYWORDS:
                    values.setdefault(keyword, value)  # the first card of a keyword, as fits.Header gives
    except (ValueError, fits.VerifyError) as exc:
        raise Rejected("bad-header", f"the FITS header cannot be parsed: {exc}") from exc
    return values
