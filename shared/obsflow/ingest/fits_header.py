"""Read the primary header of a FITS object with ranged GETs, never the whole frame."""

from __future__ import annotations

import math
import warnings
from typing import Protocol

from astropy.io import fits

from obsflow.errors import Rejected

BLOCK = 2880
CARD = 80
END_CARD = b"END" + b" " * 77


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


def data_length(header: fits.Header) -> int:
    """Bytes of the data unit the header declares (without the final block padding)."""
    naxis = int(header.get("NAXIS", 0))
    if naxis == 0:
        return 0
    elements = math.prod(int(header.get(f"NAXIS{i}", 0)) for i in range(1, naxis + 1))
    return abs(int(header["BITPIX"])) // 8 * int(header.get("GCOUNT", 1)) * (int(header.get("PCOUNT", 0)) + elements)


def read_primary_header(
    reader: RangeReader,
    bucket: str,
    key: str,
    version_id: str | None,
    *,
    first_read: int,
    max_header: int,
) -> tuple[fits.Header, int, int, str | None]:
    """Return (header, object size, bytes read, version id read).

    Reads ``first_read`` bytes, then further ranges only if the header goes on.
    Raises Rejected for anything that is not a complete single-image FITS object.
    """
    buffer, size, version_id = reader.read_range(bucket, key, version_id, 0, first_read)
    if size == 0:
        raise Rejected("empty", "the object is empty (0 bytes); re-transfer the frame")
    if not buffer.startswith(b"SIMPLE  =") or buffer[29:30] != b"T":
        raise Rejected("not-fits", "not a FITS file: it does not start with 'SIMPLE  =                    T'")
    length = header_length(buffer)
    while length is None:
        if len(buffer) >= size:
            raise Rejected("truncated", f"truncated: the header has no END card within the object's {size} bytes")
        if len(buffer) >= max_header:
            raise Rejected("header-too-long", f"the header has no END card in its first {max_header} bytes")
        more, size, _ = reader.read_range(bucket, key, version_id, len(buffer), first_read)
        buffer += more
        length = header_length(buffer)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = fits.Header.fromstring(buffer[:length].decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Rejected("bad-header", f"the FITS header cannot be parsed: {exc}") from exc
    # A writer may omit the final block padding; anything shorter than the data is truncated.
    declared = length + data_length(header)
    if size < declared:
        raise Rejected(
            "truncated",
            f"truncated: the object has {size} bytes but its header declares {declared}; re-transfer the frame",
        )
    return header, size, len(buffer), version_id
