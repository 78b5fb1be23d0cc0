"""HTML and SVG of the monitor's pages, and the JSON of its API, from plain dicts (no I/O here)."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from html import escape
from urllib.parse import quote

from obsflow.recipes.model import Recipe
from obsflow.runs.association import describe
from obsflow.runs.layout import compare_path

REFRESH_S = 5
STATE_COLOURS = {
    "succeeded": "#3a9d5d", "reused": "#8fc9a3", "running": "#2f7ed8", "failed": "#d64541", "stopped": "#9b8f3a",
    "pending": "#c9ced6", "not run": "#e4e7eb",
}
_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:10px 20px;display:flex;gap:20px;align-items:baseline}
header a{color:#9cc4ff}main{padding:10px 20px}h2{margin:22px 0 6px;font-size:16px}
table{border-collapse:collapse;background:#fff;width:100%}td,th{padding:3px 8px;border-bottom:1px solid #e4e7eb;
text-align:left;vertical-align:top}th{background:#eef0f3;font-weight:600}
.badge{display:inline-block;padding:0 6px;border-radius:8px;color:#fff;font-size:12px}
.bar{background:#e4e7eb;width:120px;height:10px;display:inline-block;border-radius:5px;overflow:hidden}
.bar span{display:block;height:10px;background:#3a9d5d}.muted{color:#6b7280}.counts span{margin-right:14px}
.panel{background:#fff;padding:8px;margin:6px 0;display:inline-block}
.stale{background:#fde68a;color:#7c2d12;padding:8px 20px;font-weight:600}.stale-content{opacity:.55}
"""
_BADGE = {"SUCCEEDED": "#3a9d5d", "ACTIVE": "#3a9d5d", "READY": "#2f7ed8", "RUNNING": "#2f7ed8",
          "SUBMITTED": "#2f7ed8", "QUEUED": "#2f7ed8", "WAITING": "#c28a00", "MANUAL": "#7d4fc2",
          "FAILED": "#d64541", "ERROR": "#d64541", "OPEN": "#d64541", "HELD": "#d64541", "RESOLVED": "#6b7280",
          "DEPRECATED": "#6b7280", "REJECTED": "#6b7280",
          "CANCELLED": "#6b7280", "SKIPPED": "#c28a00", "AWAITING_APPROVAL": "#c28a00"}


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple, set)):
        return ", ".join(_text(v) for v in value)
    return str(value)


def badge(status) -> str:
    colour = _BADGE.get(str(status), "#6b7280")
    return f'<span class="badge" style="background:{colour}">{escape(_text(status))}</span>' if status else ""


_MONITOR_PATH = re.compile(r"^/(?!/)[A-Za-z0-9/_.-]*$")  # a page of this monitor, never another site


def _what_to_do(ticket: dict) -> str:
    """A ticket's suggested action, and its links that are pages of the monitor (a decision's comparison)."""
    pages = [f'<a href="{escape(path)}">{escape(name)}</a>' for name, path in (ticket.get("links") or {}).items()
             if isinstance(path, str) and _MONITOR_PATH.match(path)]
    return escape(_text(ticket.get("suggested_action"))) + (f" ({', '.join(pages)})" if pages else "")


def link(kind: str, identifier) -> str:
    return f'<a href="/{kind}/{quote(str(identifier), safe="")}">{escape(str(identifier))}</a>' if identifier else ""


def table(rows: list[dict], columns: list[tuple[str, str]], empty: str, cells: dict | None = None,
          table_id: str = "") -> str:
    """``columns``: (key, heading); ``cells``: key -> function(row) giving the cell's HTML."""
    if not rows:
        return f'<p class="muted" id="{table_id}">{escape(empty)}</p>'
    cells = cells or {}
    head = "".join(f"<th>{escape(heading)}</th>" for _, heading in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{cells[key](row) if key in cells else escape(_text(row.get(key)))}</td>"
                         for key, _ in columns) + "</tr>"
        for row in rows
    )
    return f'<table id="{table_id}"><tr>{head}</tr>{body}</table>'


def page(title: str, body: str, stage: str) -> str:
    """A whole page; its <main> is fetched again every REFRESH_S seconds and swapped in place. A refresh that
    fails keeps the last picture but says, in a banner, since when it is stale and why; the next good one clears it."""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{escape(title)} - obsflow monitor</title>
<style>{_STYLE}</style></head><body>
<header><strong>obsflow monitor</strong><span>stage {escape(stage)}</span><a href="/">overview</a>
<span class="muted" id="refreshed">refreshes every {REFRESH_S} s</span></header>
<div id="stale" class="stale" role="alert" hidden></div>
<main id="content">{body}</main>
<script>
const content = document.getElementById("content"), stale = document.getElementById("stale");
const clock = time => time.toTimeString().slice(0, 8);  // HH:MM:SS, local time
let freshAt = new Date();
function markStale(reason) {{
  stale.textContent = "stale since " + clock(freshAt) + " \u2014 last refresh failed: " + reason;
  stale.hidden = false;
  content.classList.add("stale-content");
}}
async function problemOf(response) {{  // the sentence an error page gives in its [data-problem] element
  const page = new DOMParser().parseFromString(await response.text(), "text/html");
  const problem = page.querySelector("[data-problem]");
  return problem ? problem.textContent : "HTTP " + response.status;
}}
setInterval(async () => {{
  try {{
    const response = await fetch(location.pathname + (location.search ? location.search + "&" : "?") + "fragment=1",
                                 {{cache: "no-store"}});
    if (!response.ok) return markStale(await problemOf(response));
    content.innerHTML = await response.text();
    freshAt = new Date();
    stale.hidden = true;
    content.classList.remove("stale-content");
    document.getElementById("refreshed").textContent = "refreshed " + clock(freshAt);
  }} catch (error) {{
    markStale("cannot reach the monitor (" + error.message + ")");
  }}
}}, {REFRESH_S * 1000});
</script></body></html>"""


def _progress(row: dict) -> str:
    expected, received = row.get("expected"), row.get("received") or 0
    if not expected:
        return f"{received} received, count unknown (no manifest yet)"
    share = min(1.0, received / expected)
    return f'<span class="bar"><span style="width:{share * 100:.0f}%"></span></span> {received} of {expected}'


_LISTINGS = {  # kind -> its table (the overview's newest rows, and each page of /runs/, /datasets/, /catalogue/)
    "runs": lambda rows: table(
        rows, [("run_id", "run"), ("recipe", "recipe"), ("candidate_id", "candidate"), ("status", "status"),
               ("created_at", "created"), ("duration_s", "duration [s]"), ("waiting_reason", "waiting for")],
        "no runs yet", {"run_id": lambda r: link("runs", r["run_id"]), "status": lambda r: badge(r["status"]),
                        "recipe": lambda r: escape(f"{r['recipe']}@{r.get('version', '')}")}, "runs"),
    "datasets": lambda rows: table(
        rows, [("dataset_id", "dataset"), ("kind", "kind"), ("proposal_id", "proposal"), ("status", "status"),
               ("frame_count", "frames"), ("recipe", "recipe"), ("release_date", "public from"),
               ("created_at", "created")],
        "no datasets yet", {"dataset_id": lambda r: link("datasets", r["dataset_id"]),
                            "status": lambda r: badge(r["status"])}, "datasets"),
    "catalogue": lambda rows: table(
        rows, [("instance_id", "instance"), ("recipe", "recipe"), ("reference", "reference"), ("state", "state"),
               ("state_reason", "why"), ("runs", "runs"), ("dataset_id", "dataset")],
        "no recipe instances yet", {"state": lambda r: badge(r["state"]),
                                    "dataset_id": lambda r: link("datasets", r.get("dataset_id"))}, "instances"),
}
LISTING_TITLES = {"runs": "Runs", "datasets": "Datasets", "catalogue": "Processing catalogue"}


def _older(kind: str, next_token: str | None) -> str:
    """The link to the page after these rows, if there is one."""
    if not next_token:
        return ""
    return f'<p class="more"><a href="/{kind}/?next={quote(next_token, safe="")}" id="more-{kind}">older &rarr;</a></p>'


def listing_page(kind: str, page) -> str:
    """One page of runs, datasets or instances, newest first, and a link to the next."""
    return (f"<h2>{LISTING_TITLES[kind]}, newest first</h2>" + _LISTINGS[kind](page.rows) + _older(kind, page.next)
            + f'<p><a href="/{kind}/">newest</a></p>')


def _since(at: dt.datetime | None) -> str:
    return f"since {at:%Y-%m-%d %H:%M} UTC" if at else "in the last 24 h"


def overview(data: dict) -> str:
    counts = data["run_counts"]
    summary = "".join(f"<span>{badge(status)} {n}</span>" for status, n in counts.items()) or "none"
    return "".join([
        f'<p class="counts" id="run-counts">runs that entered each status {_since(data.get("run_counts_since"))}: '
        f'{summary}</p>',
        "<h2>Processing windows</h2>",
        table(data.get("windows", []), [("key", "recipe / resource class"), ("when", "runs"), ("open", "now"),
                                        ("next_change", "changes at (UTC)"), ("runs_waiting", "runs waiting")],
              "none declared: every run may start any time", {"open": lambda r: "open" if r["open"] else "closed"},
              "windows"),
        "<h2>Observing programs filling up</h2>",
        table(data["ops"], [("op_id", "OP"), ("task_type", "task type"), ("proposal_id", "proposal"),
                            ("progress", "frames"), ("candidate_ids", "candidates")],
              "no OPs yet: nothing has arrived from the summit", {"progress": _progress}, "ops"),
        "<h2>Candidates and why they wait</h2>",
        table(data["candidates"], [("candidate_id", "candidate"), ("proposal_id", "proposal"), ("status", "status"),
                                   ("why", "why / since"), ("processing", "processing"), ("run_ids", "runs")],
              "no candidates yet", {"status": lambda r: badge(r["status"]), "processing": lambda r: badge(r["processing"]),
                                    "run_ids": lambda r: " ".join(link("runs", i) for i in r["run_ids"])}, "candidates"),
        "<h2>Runs</h2>",
        _LISTINGS["runs"](data["runs"]), _older("runs", data.get("more_runs")),
        "<h2>Tickets</h2>",
        table(data["tickets"], [("ticket_id", "ticket"), ("status", "status"), ("kind", "kind"), ("run_id", "run"),
                                ("summary", "summary"), ("suggested_action", "what to do")],
              "no tickets", {"status": lambda r: badge(r["status"]), "run_id": lambda r: link("runs", r.get("run_id")),
                             "suggested_action": _what_to_do}, "tickets"),
        "<h2>Datasets</h2>",
        _LISTINGS["datasets"](data["datasets"]), _older("datasets", data.get("more_datasets")),
        "<h2>Processing catalogue</h2>",
        _LISTINGS["catalogue"](data["instances"]), _older("catalogue", data.get("more_instances")),
        "<h2>Campaigns</h2>",
        table(data["campaigns"], [("name", "campaign"), ("campaign_type", "type"), ("status", "status"),
                                  ("recipe", "recipe"), ("instances", "instances"), ("reason", "reason"),
                                  ("approval_note", "approval")],
              "no campaigns", {"name": lambda r: link("campaigns", r["name"]), "status": lambda r: badge(r["status"])},
              "campaigns"),
    ])


def dag_svg(recipe: Recipe, tasks: dict[str, dict]) -> str:
    """The recipe's tasks as a left-to-right graph, one column per level, each box coloured by its state."""
    box_w, box_h, gap_x, gap_y = 150, 44, 60, 16
    levels = recipe.levels()
    position = {}
    for column, level in enumerate(levels):
        for row, task in enumerate(level):
            position[task.name] = (20 + column * (box_w + gap_x), 20 + row * (box_h + gap_y))
    width = 40 + len(levels) * (box_w + gap_x) - gap_x
    height = 40 + max(len(level) for level in levels) * (box_h + gap_y) - gap_y
    parts = [f'<svg id="dag" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="tasks of {escape(recipe.key)}">',
             '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="8" refY="4" orient="auto">'
             '<path d="M0,0 L8,4 L0,8 z" fill="#6b7280"/></marker></defs>']
    for task in recipe.tasks:
        x2, y2 = position[task.name]
        for upstream in task.upstreams:
            x1, y1 = position[upstream]
            parts.append(f'<line x1="{x1 + box_w}" y1="{y1 + box_h / 2}" x2="{x2}" y2="{y2 + box_h / 2}" '
                         'stroke="#6b7280" marker-end="url(#arrow)"/>')
    for task in recipe.tasks:
        x, y = position[task.name]
        state = tasks.get(task.name, {})
        status = state.get("status", "pending")
        duration = state.get("duration_s")
        label = status + (f", {duration:.1f} s" if duration is not None else "")
        parts.append(
            f'<g class="task" data-task="{escape(task.name)}" data-status="{escape(status)}">'
            f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="6" fill="{STATE_COLOURS.get(status, "#c9ced6")}"/>'
            f'<text x="{x + 8}" y="{y + 18}" fill="#fff" font-weight="600">{escape(task.name)}</text>'
            f'<text x="{x + 8}" y="{y + 35}" fill="#fff" font-size="12">{escape(label)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def run_page(detail: dict, recipe: Recipe) -> str:
    tasks = {t["task"]: t for t in detail["tasks"]}
    fields = [("recipe", f"{detail['recipe']}@{detail.get('version', '')}"), ("candidate", detail.get("candidate_id")),
              ("proposal", detail.get("proposal_id")), ("created", detail.get("created_at")),
              ("started", detail.get("started_at")), ("finished", detail.get("finished_at")),
              ("duration [s]", detail.get("duration_s")), ("waiting for", detail.get("waiting_reason")),
              ("retry of", detail.get("retry_of"))]
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(_text(v))}</td></tr>" for k, v in fields if v is not None)
    dataset = f"<tr><th>dataset</th><td>{link('datasets', detail['dataset_id'])}</td></tr>" if detail.get("dataset_id") else ""
    failure = ""
    if detail.get("failure"):
        f = detail["failure"]
        log = "\n".join(f.get("task_log") or [])
        failure = (f'<h2>Failure</h2><table id="failure"><tr><th>task</th><td>{escape(_text(f.get("failed_task")))}</td></tr>'
                   f'<tr><th>kind</th><td>{escape(_text(f.get("kind")))}</td></tr>'
                   f'<tr><th>error</th><td>{escape(_text(f.get("error")))}</td></tr>'
                   f'<tr><th>ticket</th><td>{escape(_text(f.get("ticket_id")))}</td></tr>'
                   f'<tr><th>what to do</th><td>{escape(_text(f.get("suggested_action")))}</td></tr>'
                   f'<tr><th>last log lines</th><td><pre>{escape(log)}</pre></td></tr></table>')
    return "".join([
        f"<h2>Run {escape(detail['run_id'])} {badge(detail['status'])}</h2>",
        f"<table>{rows}{dataset}</table>",
        "<h2>Tasks</h2>", f'<div class="panel">{dag_svg(recipe, tasks)}</div>', failure,
        table(detail["tasks"], [("task", "task"), ("resource_class", "resource class"), ("upstreams", "after"),
                                ("status", "state"), ("started", "started"), ("ended", "ended"),
                                ("duration_s", "duration [s]")], "", table_id="tasks"),
        "<h2>History</h2>", table(detail["history"], [("at", "at"), ("status", "status"), ("detail", "detail")], ""),
    ])


def line_chart(title: str, y_label: str, series: dict[str, list[float | None]], x_label: str = "observe frame") -> str:
    """A small SVG line chart with labelled axes; the y axis spans the data (values as they are, no offset)."""
    width, height, left, bottom, top, right = 540, 240, 84, 40, 28, 120
    values = [v for points in series.values() for v in points if v is not None and math.isfinite(v)]
    if not values:
        return f'<div class="panel chart"><p class="muted">{escape(title)}: no values</p></div>'
    # From zero (for positive values), as the quality report draws them: a zoomed axis makes jitter look dramatic.
    low, high = min(0.0, min(values)), max(values) * 1.1 if max(values) > 0 else max(values)
    if high == low:
        low, high = low - (abs(low) * 0.05 or 1), high + (abs(high) * 0.05 or 1)
    count = max(len(points) for points in series.values())
    plot_w, plot_h = width - left - right, height - top - bottom

    def x_of(i: int) -> float:
        return left + (i / max(1, count - 1)) * plot_w

    def y_of(v: float) -> float:
        return top + (1 - (v - low) / (high - low)) * plot_h

    colours = ["#2f7ed8", "#d64541", "#3a9d5d", "#7d4fc2"]
    parts = [f'<div class="panel chart"><svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="{escape(title)}">',
             f'<text x="{left}" y="18" font-weight="600">{escape(title)}</text>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#1d2330"/>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#1d2330"/>']
    for fraction in (0, 0.5, 1):
        value = low + fraction * (high - low)
        label = f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"  # never 1.3e+04
        parts.append(f'<text x="{left - 6}" y="{y_of(value) + 4}" text-anchor="end" font-size="11">{label}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle" font-size="12">{escape(x_label)}</text>')
    parts.append(f'<text transform="translate(14 {top + plot_h / 2}) rotate(-90)" text-anchor="middle" '
                 f'font-size="12" class="y-label">{escape(y_label)}</text>')
    for n, (name, points) in enumerate(series.items()):
        colour = colours[n % len(colours)]
        path = " ".join(f"{x_of(i):.1f},{y_of(v):.1f}" for i, v in enumerate(points) if v is not None and math.isfinite(v))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{path}"/>')
        parts.append(f'<text x="{left + plot_w + 8}" y="{top + 14 + 16 * n}" fill="{colour}" font-size="12">'
                     f'{escape(name)}</text>')
    parts.append("</svg></div>")
    return "".join(parts)


def dataset_page(detail: dict, metrics: dict | None) -> str:
    fields = [("kind", detail.get("kind")), ("proposal", detail.get("proposal_id")), ("product", detail.get("product_id")),
              ("version", detail.get("version_key")), ("recipe", detail.get("recipe")), ("frames", detail.get("frame_count")),
              ("created", detail.get("created_at")), ("location", f"s3://{detail.get('bucket')}/{detail.get('prefix')}"),
              ("access", detail.get("access"))]
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(_text(v))}</td></tr>" for k, v in fields if v is not None)
    run = f"<tr><th>run</th><td>{link('runs', detail['run_id'])}</td></tr>" if detail.get("run_id") else ""
    quality = '<p class="muted">no quality metrics in this dataset</p>'
    if metrics:
        frames = metrics.get("frames", [])
        warnings = "".join(f"<li>{escape(w)}</li>" for w in metrics.get("warnings", [])) or "<li>none</li>"
        qc = metrics.get("qc") or [  # datasets made before the QC table: its range from the frames
            {"name": name, "value": f"{min(vals):.4g} - {max(vals):.4g}", "unit": "", "note": "min - max"}
            for name in ("light_level", "frame_average", "frame_rms_contrast", "fried_parameter")
            for vals in [[f[name] for f in frames if f.get(name) is not None]] if vals]

        def percent(key: str, scale: float = 100) -> list:
            return [None if f.get(key) is None else f[key] * scale for f in frames]

        quality = "".join([
            f'<h2>Quality</h2><p>frame counts: {escape(_text(metrics.get("frame_counts")))}</p>',
            f'<p>warnings:</p><ul id="warnings">{warnings}</ul>',
            table(qc, [("name", "QC value"), ("value", "value"), ("unit", "unit"), ("note", "note")], "", table_id="qc"),
            line_chart("Light level and frame average", "calibrated signal [ct]",
                       {"light level": [f.get("light_level") for f in frames],
                        "frame average": [f.get("frame_average") for f in frames]}),
            line_chart("Seeing measured from the data", "granulation RMS contrast [%]",
                       {"measured": percent("granulation_rms_contrast")}),
            line_chart("Fried parameter (AO)", "r0 [cm]", {"r0": percent("fried_parameter")}),
        ])
    return "".join([
        f"<h2>Dataset {escape(detail['dataset_id'])} {badge(detail.get('status'))}</h2>",
        f"<table>{rows}{run}</table>", _certification(detail), _associations(detail), quality,
        "<h2>Files</h2>", table(detail.get("files", []), [("name", "name"), ("size", "bytes"), ("sha256", "SHA-256")], ""),
        "<h2>Versions of this product</h2>",
        table(detail.get("versions", []), [("dataset_id", "dataset"), ("status", "status"), ("version_key", "version"),
                                           ("created_at", "created"), ("compare", "compare")], "",
              {"dataset_id": lambda r: link("datasets", r["dataset_id"]), "status": lambda r: badge(r["status"]),
               "compare": lambda r: _compare_link(detail, r)}, "versions"),
    ])


def _certification(detail: dict) -> str:
    """A master calibration's certification: its status, each QC gate with its value, and who moved it why."""
    if not detail.get("certification"):
        return ""
    gates = [{**g, "result": "passed" if g["passed"] else f"FAILED: {g['failure']}"}
             for g in detail.get("certification_gates") or []]
    return "".join([
        f"<h2>Certification {badge(detail['certification'])}</h2>",
        table(gates, [("metric", "QC gate"), ("min", "min"), ("max", "max"), ("value", "value"), ("result", "result")],
              "no QC gates: a person certifies it", table_id="gates"),
        table(detail.get("certification_history") or [], [("move", "move"), ("to", "to"), ("by", "by"), ("at", "at"),
                                                         ("reason", "why")], "", table_id="certification-history"),
    ])


def _associations(detail: dict) -> str:
    """The master calibrations the dataset was made from, each with its association's score."""
    if not detail.get("calibrations"):
        return ""
    rows = [{"dataset_id": u["dataset_id"], "recipe": u.get("recipe"), "association": describe(u.get("association"))}
            for u in detail["calibrations"]]
    return "<h2>Calibrations used</h2>" + table(
        rows, [("dataset_id", "calibration"), ("recipe", "recipe"), ("association", "association")], "",
        {"dataset_id": lambda r: link("datasets", r["dataset_id"])}, "associations")


def _compare_link(detail: dict, version: dict) -> str:
    """Another version compared with this one, the older as A."""
    if version["dataset_id"] == detail["dataset_id"]:
        return ""
    older_first = sorted([detail, version], key=lambda d: (str(d.get("created_at") or ""), d["dataset_id"]))
    return f'<a href="{escape(compare_path(*(d["dataset_id"] for d in older_first)))}">compare</a>'


def _yes_no(same: bool) -> str:
    return "same" if same else "<strong>differs</strong>"


def compare_page(result: dict) -> str:
    """Two versions of a product side by side: provenance, QC values with B - A, per-frame pixel statistics."""
    a, b = result["a"], result["b"]
    inputs, summary = result["inputs"], result.get("frames_summary") or {}
    changed_frames = [{**f, "change": change} for change in ("added", "removed", "changed") for f in inputs[change]]
    note = f'<p id="compare-note" class="stale">{escape(result["note"])}</p>' if result.get("note") else ""
    only = "".join(
        f"<h3>Only in {side.upper()}</h3>" + table(result[f"frames_only_in_{side}"], [("frame", "frame"), ("file", "file")],
                                                  "", table_id=f"only-in-{side}")
        for side in ("a", "b") if result.get(f"frames_only_in_{side}"))
    return "".join([
        f"<h2>Versions compared: A {link('datasets', a)}, B {link('datasets', b)}</h2>",
        '<p class="muted">every difference is B - A</p>', note,
        table(result["summary"], [("field", "field"), ("a", "A"), ("b", "B"), ("same", "")], "",
              {"same": lambda r: _yes_no(r["same"])}, "compare-summary"),
        "<h2>Parameters and options</h2>",
        table(result["configuration"], [("name", "name"), ("a", "A"), ("b", "B")], "the same", table_id="configuration"),
        "<h2>Code and library versions</h2>",
        table(result["code"], [("task", "task"), ("item", "what"), ("a", "A"), ("b", "B")], "the same", table_id="code"),
        f"<h2>Input frames</h2><p>{len(inputs['added'])} added in B, {len(inputs['removed'])} removed from A, "
        f"{len(inputs['changed'])} in another version, {inputs['unchanged']} the same</p>",
        table(changed_frames, [("change", "change"), ("file_id", "frame"), ("op_id", "OP"), ("role", "role")], "",
              table_id="inputs"),
        "<h2>Made from (calibrations used)</h2>",
        table(result["upstream"], [("role", "role"), ("dataset_id", "dataset"), ("recipe", "recipe"),
                                   ("version_key", "version"), ("used_by", "used by")], "no other dataset",
              {"dataset_id": lambda r: link("datasets", r["dataset_id"])}, "upstream"),
        "<h2>QC values</h2>",
        table(result["qc"], [("name", "QC value"), ("a", "A"), ("b", "B"), ("difference", "B - A"), ("unit", "unit")],
              "no QC values in either (no quality metrics)", table_id="qc-compared"),
        "<h2>Frames</h2>" + (f"<p>{summary['compared']} compared, {summary['identical']} identical, "
                             f"{summary['differing']} differing (largest |B - A| "
                             f"{escape(_text(summary['largest_max_abs']))}); {summary['only_in_a']} only in A, "
                             f"{summary['only_in_b']} only in B</p>" if summary else ""),
        table(result.get("frames", []), [("frame", "observe frame"), ("mean", "mean"), ("rms", "RMS"),
                                         ("max_abs", "max |B - A|"), ("relative", "RMS(B - A) / RMS(A)"),
                                         ("pixels", "pixels"), ("finite_in_one_only", "finite in one only"),
                                         ("error", "not compared")], "no frame in both", table_id="frames"),
        only,
    ])


def document_path(campaign: str, number: int) -> str:
    """Where the monitor serves a campaign's document: by its place in the campaign's record, never by a key."""
    return f"/campaigns/{quote(campaign, safe='')}/documents/{number}"


def campaign_page(detail: dict) -> str:
    fields = [("type", detail.get("campaign_type")), ("definer", detail.get("definer")), ("reason", detail.get("reason")),
              ("created", detail.get("created_at")), ("recipe", detail.get("recipe")), ("plan", detail.get("plan_id")),
              ("why now", detail.get("status_reason")), ("progress", detail.get("progress") or None)]
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(_text(v))}</td></tr>" for k, v in fields if v is not None)
    documents = [{**d, "number": n} for n, d in enumerate(detail.get("documents", []), start=1)]
    return "".join([
        f"<h2>Campaign {escape(detail['name'])} {badge(detail.get('status'))}</h2>", f"<table>{rows}</table>",
        "<h2>Documents</h2>",
        table(documents, [("name", "document"), ("version", "version"), ("size", "bytes"), ("by", "by"), ("at", "at"),
                          ("note", "note"), ("sha256", "SHA-256")], "no documents",
              {"name": lambda d: f'<a href="{document_path(detail["name"], d["number"])}" download>'
                                 f'{escape(d["name"])}</a>'}, "documents"),
        "<h2>Instances</h2>",
        table(detail.get("instances", []), [("instance_id", "instance"), ("recipe", "recipe"), ("state", "state"),
                                            ("state_reason", "why"), ("dataset_id", "dataset")], "none yet",
              {"state": lambda r: badge(r["state"]), "dataset_id": lambda r: link("datasets", r.get("dataset_id"))}),
        "<h2>History</h2>", table(detail.get("history", []), [("at", "at"), ("status", "status"), ("by", "by"),
                                                              ("why", "why")], ""),
    ])


def not_found(message: str) -> str:
    return f'<h2>Not found</h2><p id="not-found" data-problem>{escape(message)}</p>'


def not_answering(message: str) -> str:
    return f'<h2>The stack is not answering</h2><p id="not-answering" data-problem>{escape(message)}</p>'


def _json_value(value):
    """What the tables give that JSON has no type for: times as ISO 8601, string sets as sorted lists. Anything
    else is an error here rather than a Python repr in a string that a script would have to parse."""
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    raise TypeError(f"the monitor's API has no JSON form for a value of type {type(value).__name__}")


def api_json(data: dict) -> str:
    return json.dumps(data, default=_json_value)
