"""Processing windows: when each recipe's or resource class's runs may start (obsflow.windows)."""

from __future__ import annotations

import click

from obsflow import console
from obsflow.cli.app import main
from obsflow.cli.common import JSON_HELP, _as_of, _queries, _settings, operator_command


@main.group()
def windows():
    """Processing windows: science at night, calibrations any time (OBSFLOW_WINDOWS, OBSFLOW_SITE)."""


@windows.command("show")
@click.option("--now", "as_of", metavar="ISO-8601", help="As of this time (default: now).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
@click.pass_context
def windows_show(ctx, as_of, as_json):
    """Each window: open or closed now, when that changes, and how many queued runs wait for it. A run starts only
    when every window of its recipe and of its resource classes is open."""
    queries = _queries()

    settings, now = _settings(ctx), _as_of(as_of)
    processing_windows = settings.processing_windows()
    rows = queries.window_rows(processing_windows, now)
    if not as_json:
        site = processing_windows.site
        click.echo(f"site: {site.name} ({site.latitude:+.4f}, {site.longitude:+.4f}), {site.timezone}; "
                   f"local time {now.astimezone(site.zone):%Y-%m-%d %H:%M %Z}")
        for row in rows:
            change = row["next_change"]
            row["state"] = "open" if row["open"] else "closed"
            row["changes"] = (f"{'closes' if row['open'] else 'opens'} {change.astimezone(site.zone):%Y-%m-%d %H:%M %Z}"
                              if change else "never")
    console.emit(rows, ["key", "when", "state", "changes", "runs_waiting"], as_json,
                 "no windows: every run may start any time (OBSFLOW_WINDOWS='{\"vbi-l1\": \"night\"}' declares one)")
