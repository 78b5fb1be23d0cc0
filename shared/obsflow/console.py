"""Terminal output for the CLI: aligned tables for people, JSON arrays for scripts."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

import click


def _plain(value):
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return value


def to_json(rows) -> str:
    return json.dumps(rows, default=_plain, indent=2, sort_keys=False)


def cell(value) -> str:
    value = _plain(value)
    if value is None:
        return "-"
    if isinstance(value, dict):
        return json.dumps(value, default=_plain)
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def table(rows: Sequence[dict], columns: Sequence[str], empty: str) -> None:
    if not rows:
        click.echo(empty)
        return
    cells = [[cell(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(column), *(len(r[i]) for r in cells)) for i, column in enumerate(columns)]
    click.echo("  ".join(column.upper().ljust(w) for column, w in zip(columns, widths)).rstrip())
    for r in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())


def emit(rows: list[dict], columns: Sequence[str], as_json: bool, empty: str) -> None:
    if as_json:
        click.echo(to_json(rows))
    else:
        table(rows, columns, empty)
