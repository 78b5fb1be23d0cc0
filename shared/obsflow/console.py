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


def size(n: float) -> str:
    """Bytes as people read them (decimal units, as S3 bills)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def _n(value) -> str:
    return f"{value:,.0f}" if float(value) == int(value) else f"{value:,.3f}".rstrip("0")


# A cost's lines: the service, and what its dollars are for (runs.costs says how each is counted).
_COST_LINES = (
    ("batch", lambda c: f"{_n(c.get('batch_jobs', 0))} Fargate job(s), {_n(c.get('batch_chunk_jobs', 0))} of them "
                        f"chunks: {_n(c.get('batch_vcpu_s', 0))} vCPU-s and {_n(c.get('batch_gib_s', 0))} GiB-s billed "
                        f"(a minute at least each, from its image pull; pull {c.get('image_pull') or 'as modelled'}); "
                        f"{_n(c.get('batch_task_vcpu_s', 0))} vCPU-s in the jobs themselves"),
    ("lambda", lambda c: f"{_n(c.get('lambda_invocations', 0))} request(s), {_n(c.get('lambda_gb_s', 0))} GB-s"),
    ("step_functions", lambda c: f"{_n(c['state_transitions'])} state transitions" if c.get("state_transitions")
                                 is not None else "state transitions not counted (a failed run)"),
    ("dynamodb", lambda c: f"{_n(c.get('dynamodb_read_units', 0))} read and {_n(c.get('dynamodb_write_units', 0))} "
                           f"write request units ({_n(c.get('dynamodb_requests', 0))} requests)"),
    ("s3_requests", lambda c: f"{_n(c.get('s3_put_requests', 0))} PUT, {_n(c.get('s3_get_requests', 0))} GET, "
                              f"{_n(c.get('s3_list_requests', 0))} LIST; {size(c.get('s3_bytes_written', 0))} written"),
    ("s3_work_storage", lambda c: f"{size((c.get('jobs_requests') or {}).get('s3_bytes_written', 0))} of task outputs, "
                                  "kept until they expire"),
    ("sqs", lambda c: f"{_n(c.get('sqs_requests', 0))} request(s)"),
    ("sns", lambda c: f"{_n(c.get('sns_requests', 0))} publish(es)"),
)


def cost(value: dict | None) -> str | None:
    """A cost on one line: USD, then what it is made of."""
    if not value:
        return None
    by_service = value.get("usd_by_service")
    if not by_service:  # recorded before every part was counted
        transitions = value.get("state_transitions")
        return (f"${value['usd']:.6f}  ({value.get('batch_vcpu_s', 0):g} vCPU-s and {value.get('batch_gib_s', 0):g} "
                f"GiB-s of Batch, {value.get('lambda_invocations', 0)} Lambda invocations, "
                + (f"{transitions} state transitions" if transitions is not None else "state transitions not counted")
                + (f"; {value['tasks_reused']} task(s) reused" if value.get("tasks_reused") else "") + "; recorded "
                "before Lambda duration, DynamoDB, S3, SQS and SNS were counted)")
    parts = ", ".join(f"{name.replace('_', ' ')} ${usd:.6f}" for name, usd in by_service.items() if usd)
    reused = f"; {_n(value['tasks_reused'])} task(s) reused" if value.get("tasks_reused") else ""
    return f"${value['usd']:.6f}  ({parts or 'nothing billed'}{reused})"


def cost_lines(value: dict | None, indent: str = "  ") -> list[str]:
    """A cost, service by service: its dollars and what they are for; its outputs' storage a month; the prices."""
    if not value or not value.get("usd_by_service"):
        return []
    lines = [f"{indent}{name.replace('_', ' '):<16} ${value['usd_by_service'].get(name, 0):.6f}  {say(value)}"
             for name, say in _COST_LINES]
    lines.append(f"{indent}{'storage':<16} ${value.get('storage_usd_month', 0):.6f} a month for "
                 f"{size(value.get('output_bytes', 0))} of outputs (not in the total: for as long as they are kept)")
    if value.get("prices"):
        lines.append(f"{indent}{'prices':<16} {value['prices']}")
    return lines


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
