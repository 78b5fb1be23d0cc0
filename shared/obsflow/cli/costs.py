"""What runs cost, summed by day or proposal, and `obsflow capacity`: a day modelled from measured figures."""

from __future__ import annotations

import re

import click

from obsflow import console
from obsflow.cli.app import main
from obsflow.cli.common import JSON_HELP, _action, _actor, _refused, _settings, on_the_stage, operator_command

COLUMNS = ("runs", "frames", "usd", "batch", "lambda", "step_functions", "dynamodb", "s3", "sqs_sns", "outputs",
           "storage_a_month")


def _row(key: str, value: str, total: dict) -> dict:
    by = total["usd_by_service"]
    return {key: value, "runs": total["runs"], "frames": total["frames"], "usd": f"{total['usd']:.4f}",
            **{name: f"{by.get(name, 0):.4f}" for name in ("batch", "lambda", "step_functions", "dynamodb")},
            "s3": f"{by.get('s3_requests', 0) + by.get('s3_work_storage', 0):.4f}",
            "sqs_sns": f"{by.get('sqs', 0) + by.get('sns', 0):.4f}", "outputs": console.size(total["output_bytes"]),
            "storage_a_month": f"{total['storage_usd_month']:.4f}"}


@main.command("costs")
@click.option("--by", type=click.Choice(("day", "proposal")), default="day", show_default=True,
              help="Sum the runs by the UTC day they ended, or by proposal.")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), metavar="YYYY-MM-DD",
              help="Only runs that ended on or after this day (UTC).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
def costs(by, since, as_json):
    """What runs cost, summed by day or by proposal, in USD.

    \b
    Each run that ended (SUCCEEDED or FAILED) recorded what it used and its price:
      batch           Fargate jobs: vCPU- and GiB-seconds, one minute at least per job
                      (per chunk of a data-parallel task), billed from the image pull
      lambda          requests and GB-seconds of its handlers (StartRun, Catalog, FinishRun,
                      OpenTicket, FailRun) and its share of the submitter's passes
      step_functions  state transitions of its execution
      dynamodb        read and write request units
      s3              PUT, GET and LIST requests; its task outputs stored until they expire
      sqs_sns         SQS and SNS requests (the PI's notification)
    storage_a_month: what keeping the outputs those runs catalogued costs each month (not
    in usd). `obsflow runs show RUN` itemises one run. Prices: the price table in settings
    (OBSFLOW_PRICES, its region and date). Ingest (per frame, not per run) is in
    `obsflow capacity`.
    """
    from obsflow.services import costs as cost_report

    rows = cost_report(_settings(click.get_current_context())).summed_by(by, since.date() if since else None)
    if as_json:
        click.echo(console.to_json(rows))
        return
    shown = [_row(by, row[by], row) for row in rows]
    if len(rows) > 1:
        shown.append(_row(by, "TOTAL", summed_rows(rows)))
    console.table(shown, [by, *COLUMNS], "no run has ended" + (f" since {since:%Y-%m-%d}" if since else ""))


def summed_rows(rows: list[dict]) -> dict:
    """The rows' totals (each row already a sum of runs)."""
    from obsflow.runs.costs import summed

    total = summed(rows)
    total["runs"] = sum(row["runs"] for row in rows)
    return total


_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kMGTP]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "pb": 1e15,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "pib": 2**50}


def _a_size(ctx, param, value: str) -> float:
    """40MB, 2.5MiB, 4e7: bytes."""
    match = _SIZE.match(value or "")
    if not match:
        raise click.BadParameter(f"{value!r} is not a size (like 40MB, 2.5MiB or 40000000)")
    return float(match.group(1)) * _UNITS[(match.group(2) or "B").lower()]


def _a_mix(ctx, param, value: str) -> tuple[dict[str, float], dict[str, float]]:
    """recipe=runs per candidate[:frames per run], comma-separated."""
    mix, frames = {}, {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        match = re.fullmatch(r"([a-z][a-z0-9-]*)=([0-9]*\.?[0-9]+)(?::([0-9]*\.?[0-9]+))?", part)
        if not match:
            raise click.BadParameter(f"{part!r} is not RECIPE=RUNS_PER_CANDIDATE[:FRAMES_PER_RUN] (like vbi-l1=1 or "
                                     "vbi-calibration=0.2:500)")
        mix[match.group(1)] = float(match.group(2))
        if match.group(3):
            frames[match.group(1)] = float(match.group(3))
    if not mix:
        raise click.BadParameter("name at least one recipe")
    return mix, frames


@main.command("capacity")
@click.option("--frames-per-day", type=click.FloatRange(min=1), required=True, help="Raw frames arriving in a day.")
@click.option("--frame-size", default="40MB", show_default=True, callback=_a_size,
              help="Bytes of a raw frame (40MB, 2.5MiB, 4e7); a DKIST day of 12 TB in 300,000 frames is 40MB.")
@click.option("--frames-per-candidate", type=click.FloatRange(min=1), default=5000, show_default=True,
              help="Frames of one processing candidate: one observation, one dataset's frames (a DKIST dataset is one "
                   "camera, one passband, one continuous observation: thousands of frames).")
@click.option("--mix", default="vbi-l1=1,vbi-calibration=0.2:500,vbi-night-summary=0.1", show_default=True,
              callback=_a_mix, metavar="RECIPE=RUNS[:FRAMES],...",
              help="The recipes' mix: runs of each recipe per candidate, and the frames of each run where they are "
                   "not the candidate's (a calibration set's darks and gains; a recipe of datasets, like the night "
                   "summary, reads none).")
@click.option("--reprocessing", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Reprocessing share: more runs, as a share of the day's (0.1: one run in ten again).")
@click.option("--observing-hours", type=click.FloatRange(min=0.1, max=24), default=10.0, show_default=True,
              help="Hours over which the frames arrive (ingest's peak rates follow them); runs spread over the day.")
@click.option("--max-vcpus", type=click.FloatRange(min=1), default=256, show_default=True,
              help="The stage's Fargate compute environment ceiling (prod's; the account's Fargate vCPU quota too).")
@click.option("--figures", "figures_from", type=click.Choice(("stage", "shipped")), default="stage",
              show_default=True,
              help="stage: each recipe's figures from its runs recorded on the stage (the shipped ones for a recipe "
                   "with none); shipped: the figures measured for this release only, without a stage.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object on stdout.")
@click.pass_context
def capacity(ctx, frames_per_day, frame_size, frames_per_candidate, mix, reprocessing, observing_hours, max_vcpus,
             figures_from, as_json):
    """A day of obsflow on AWS, from measured figures: per service the requests, units, storage growth, what runs
    at once, dollars a day and a year; and the first AWS quota the day would reach.

    \b
    The figures (each says where it comes from): per frame, the ingest function's seconds
    and requests, as measured; per run and per input frame of each recipe, the usage its
    runs recorded (`obsflow runs show`): Fargate jobs, their seconds and the one-minute
    minimum, Lambda, Step Functions, DynamoDB, S3, SQS and SNS. What depends on pixels
    (job seconds, bytes) scales with --frame-size from the size measured; requests do not.
    Prices: the price table in settings (OBSFLOW_PRICES). Quotas: obsflow.quotas, each
    with its source. A model: it says where the money goes and what to change first,
    not the bill to the cent.

    \b
    Example, a DKIST day:
      obsflow capacity --frames-per-day 300000 --frame-size 40MB --figures shipped
    """
    from obsflow import capacity as model
    from obsflow.settings import Settings

    settings: Settings = _settings(ctx)
    figures = model.shipped_figures()
    if figures_from == "stage":
        _refused(_actor(ctx).check, _action(ctx))
        from obsflow.services import costs as cost_report

        measured = on_the_stage(ctx, lambda: cost_report(_settings(ctx)).recipe_figures())
        figures = figures.model_copy(update={"recipes": {**figures.recipes, **measured}})
    recipes, run_frames = mix
    try:
        day = model.Day(frames_per_day=frames_per_day, frame_bytes=frame_size,
                        frames_per_candidate=frames_per_candidate, mix=recipes, run_frames=run_frames,
                        reprocessing_share=reprocessing, observing_hours=observing_hours)
        result = model.model_day(day, figures, settings.prices, settings.modelled_pull_s, max_vcpus)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(console.to_json(result))
        return
    _echo_day(result)


def _units(units: dict) -> str:
    return ", ".join(f"{console.size(v) if 'bytes' in k else f'{v:,.0f}'} {' '.join(k.replace('bytes', '').split())}"
                     for k, v in units.items())


def _echo_day(result: dict) -> None:
    day = result["day"]
    click.echo(f"a day of {day['frames_per_day']:,.0f} frames of {console.size(day['frame_bytes'])} "
               f"({console.size(day['frames_per_day'] * day['frame_bytes'])}) arriving over {day['observing_hours']:g} h "
               f"(peak {result['peak_frames_per_s']:g} frames/s): {result['candidates']:,.0f} candidates of "
               f"{day['frames_per_candidate']:,.0f} frames, reprocessing {day['reprocessing_share']:.0%}")
    console.table([{"recipe": name, **r} for name, r in result["recipes"].items()],
                  ["recipe", "runs", "frames_per_run", "jobs_per_run", "job_s_per_run", "billed_s_per_run"], "")
    click.echo("")
    console.table([{"service": s["service"],
                    "requests_a_day": f"{s['requests_per_day']:,.0f} {s['requests_are']}" if s["requests_are"] else "-",
                    "units_a_day": _units(s["units_per_day"]),
                    "storage_per_month": console.size(s["storage_growth_bytes_per_month"])
                    if s["storage_growth_bytes_per_month"] else "-",
                    "at_once": s["concurrency"], "usd_a_day": f"{s['usd_per_day']:,.2f}",
                    "usd_a_year": f"{s['usd_per_year']:,.0f}"} for s in result["services"]],
                  ["service", "requests_a_day", "units_a_day", "storage_per_month", "at_once", "usd_a_day",
                   "usd_a_year"], "")
    click.echo(f"total: ${result['usd_per_day']:,.2f} a day, ${result['usd_per_year']:,.0f} the first year "
               "(S3 storage: the first year's bill, which grows each month)")
    first = result["first_quota"]
    verdict = "HITS" if first["hit"] else "comes nearest to"
    click.echo(f"\nthe day {verdict}: {first['quota']}: {first['demand']:,.3g} of {first['limit']:,.0f} "
               f"{first['unit']} ({first['share']:.0%}; {first['of']})")
    console.table([{**q, "share": f"{q['share']:.1%}", "demand": f"{q['demand']:,.3g}", "limit": f"{q['limit']:,.0f}"}
                   for q in result["quotas"]], ["quota", "demand", "limit", "unit", "share", "of"], "")
    click.echo("\nfigures:")
    for what, source in result["figures"].items():
        click.echo(f"  {what}: {source}")
    click.echo(f"  image pull: {result['image_pull_s']:g} s a job, modelled (OBSFLOW_TASK_IMAGE_MB / "
               "OBSFLOW_IMAGE_PULL_MB_PER_S)")
    click.echo(f"  prices: {result['prices']}")
