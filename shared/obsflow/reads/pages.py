"""Listings a page at a time: a page's rows and the token of the next page.

A token names the listing (and its filters) it continues, so a token of another listing is refused rather than
read as something else; inside is where the index query resumes (its last key), or for a listing computed whole
(a filter intersecting several indexes), the last row shown.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass(frozen=True)
class Page:
    rows: list[dict]
    next: str | None = None  # the token of the next page; None: this is the last


def token(listing: str, position: dict | None) -> str | None:
    """The next page's token: where ``listing`` resumes (None: there is no next page)."""
    if position is None:
        return None
    raw = json.dumps({"listing": listing, "at": position}, separators=(",", ":"), sort_keys=True, default=str)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def position(listing: str, given: str | None) -> dict | None:
    """Where a page of ``listing`` starts: None for the first; a ValueError saying what to do for a token that is
    not one of this listing's."""
    if not given:
        return None
    try:
        decoded = json.loads(base64.urlsafe_b64decode(given + "=" * (-len(given) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        decoded = None
    if not isinstance(decoded, dict) or decoded.get("listing") != listing or not _a_key(decoded.get("at")):
        raise ValueError("--next takes the token the previous page of this same listing printed (with the same "
                         "filters); run it without --next for the first page")
    return decoded["at"]


def _a_key(at) -> bool:
    """A DynamoDB key (attribute -> {type: value}, strings and numbers only) or a row position ({"after": ...})."""
    if not isinstance(at, dict) or not at or len(at) > 4:
        return False
    if set(at) == {"after"}:
        return isinstance(at["after"], list) and all(isinstance(v, str) for v in at["after"])
    return all(isinstance(name, str) and isinstance(value, dict) and len(value) == 1
               and next(iter(value)) in ("S", "N") and isinstance(next(iter(value.values())), str)
               for name, value in at.items())


def rows_after(rows: list[dict], key, limit: int, start: dict | None,
               descending: bool = True) -> tuple[list[dict], dict | None]:
    """A page of a listing computed whole, its rows in the order of ``key`` (a tuple of strings; newest first when
    ``descending``): those after the last one shown, and where the next page starts."""
    if start is not None:
        last = tuple(start["after"])
        rows = [row for row in rows if (key(row) < last if descending else key(row) > last)]
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], {"after": list(key(rows[limit - 1]))}
