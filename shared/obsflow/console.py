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


def cost(value: dict | None) -> str | None:
    """A run's cost on one line: USD, then what it is made of."""
    if not value:
        return None
    transitions = value.get("state_transitions")
    return (f"${value['usd']:.6f}  ({value['batch_vcpu_s']:g} vCPU-s and {value['batch_gib_s']:g} GiB-s of Batch, "
            f"{value['lambda_invocations']} Lambda invocations, "
            + (f"{transitions} state transitions" if transitions is not None else "state transitions not counted")
            + (f"; {value['tasks_reused']} task(s) reused" if value.get("tasks_reused") else "") + ")")


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


def fields(detail: dict, names: Sequence[str], width: int) -> None:
    """A record's fields, one per line: the name padded to ``width``, then the value."""
    for name in names:
        click.echo(f"{name:<{width}} {cell(detail.get(name))}")


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


def cpu_time(seconds: float) -> str:
    """CPU time in the unit that shows it: a small plan is never "0 CPU-hours"."""
    if seconds < 120:
        return f"{seconds:.1f} CPU-seconds"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} CPU-minutes"
    return f"{seconds / 3600:.1f} CPU-hours"
