"""Runs and what operators do with them (retry, redrive, manual execution), tickets, the submitter switch and
the backstop."""

from __future__ import annotations

import json

import click

from obsflow import console, statuses
from obsflow.cli.app import main
from obsflow.cli.common import (
    JSON_HELP,
    _an_id,
    _as_of,
    _campaigns,
    _ids,
    _key_values,
    _queries,
    _runs,
    _settings,
    emit_page,
    operator_command,
    page_options,
)


@main.group()
def runs():
    """Recipe runs: status, task-by-task progress, history."""


@runs.command("list")
@click.option("--status", type=click.Choice(statuses.RUN_STATUSES),
              help="Only runs with this status.")
@page_options
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
def runs_list(status, limit, next_token, as_json):
    """Runs, newest first, a page at a time (with --status: in start order, so READY lists the queue as it will
    start)."""
    queries = _queries()

    emit_page(lambda: queries.run_page(status, limit, next_token),
              ["run_id", "recipe", "candidate_id", "priority", "status", "created_at", "duration_s", "waiting_reason"],
              as_json, "no runs" + (f" with status {status}" if status else ""))


@runs.command("show")
@click.argument("run_id", callback=_an_id)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object on stdout.")
@operator_command
@click.pass_context
def runs_show(ctx, run_id, as_json):
    """One run: status, configuration, task-by-task progress and history."""
    from obsflow import aws

    queries = _queries()

    settings = _settings(ctx)
    detail = queries.ended_run_detail(run_id, aws.client(settings, "stepfunctions"), _runs(ctx),
                                      console_links=settings.endpoint_url is None)
    if as_json:
        click.echo(console.to_json(detail))
        return
    for field in ("run_id", "recipe", "version", "candidate_id", "proposal_id", "status", "priority", "waiting_reason",
                  "created_at", "started_at", "finished_at", "duration_s", "execution_arn", "console", "dataset_id",
                  "retry_of", "configuration"):
        if detail.get(field) is not None:
            click.echo(f"{field:<15} {console.cell(detail[field])}")
    if detail.get("cost"):
        click.echo(f"{'cost':<15} {console.cost(detail['cost'])}")
        for line in console.cost_lines(detail["cost"], " " * 16):
            click.echo(line)
    if detail.get("failure"):
        _echo_failure(detail["failure"])
    click.echo("\ntasks:")
    console.table(detail["tasks"], ["task", "resource_class", "upstreams", "status", "started", "ended"], "")
    click.echo("\nhistory:")
    console.table(detail["history"], ["at", "status", "detail"], "")


def _echo_failure(failure: dict) -> None:
    click.echo("\nfailure:")
    for field in ("failed_task", "kind", "exit_code", "error", "ticket_id"):
        if failure.get(field) is not None:
            click.echo(f"  {field:<13} {console.cell(failure[field])}")
    if failure.get("task_log"):
        click.echo("  the task's last log lines:")
        for line in failure["task_log"]:
            click.echo(f"    {line}")
    click.echo(f"  what to do    {failure['suggested_action']}")


@runs.command("retry")
@click.argument("run_id", callback=_an_id)
@click.option("--set", "settings_", multiple=True, metavar="KEY=VALUE",
              help="Override a parameter or run option (repeatable); checked against the recipe's valid values.")
@operator_command
@click.pass_context
def runs_retry(ctx, run_id, settings_):
    """A new run of a FAILED run (or a SUCCEEDED one: reprocessing), with adjusted configuration, linked to it."""
    from obsflow.recipes.model import RecipeError
    from obsflow.runs.service import NotAllowed

    try:
        run = _runs(ctx).retry(run_id, _key_values(settings_))
    except (RecipeError, NotAllowed) as exc:
        raise click.ClickException(str(exc)) from exc
    as_run = {**run.configuration.get("options", {}), **run.configuration.get("parameters", {})}
    checked = {name: as_run.get(name, value) for name, value in (run.overrides or {}).items()}  # typed, as it runs
    click.echo(f"run {run.run_id} (retry of {run_id}) is {run.status} with {json.dumps(checked)}; "
               f"`obsflow runs show {run.run_id}` follows it")


@runs.command("redrive")
@click.argument("run_id", callback=_an_id)
@operator_command
@click.pass_context
def runs_redrive(ctx, run_id):
    """Resume a FAILED run from the failed task: tasks that succeeded are not run again."""
    from obsflow.runs.service import NotAllowed

    try:
        run = _runs(ctx).redrive(run_id)
    except NotAllowed as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"run {run_id} is {run.status} again (redrive {run.redrives}); it starts when a run slot is free")


@runs.command("cancel")
@click.argument("run_id", callback=_an_id)
@click.option("--reason", required=True, help="Why (kept in the run's history, with your name).")
@operator_command
@click.pass_context
def runs_cancel(ctx, run_id, reason):
    """Stop a run for good: its execution and Batch jobs are stopped, its slots freed, nothing is catalogued. The
    run ends CANCELLED; its instance and candidate say so. A queued (READY, MANUAL or SKIPPED) run simply never starts."""
    import getpass

    from obsflow.errors import TransientError
    from obsflow.runs.service import NotAllowed

    try:
        run = _runs(ctx).cancel(run_id, getpass.getuser(), reason)
    except (NotAllowed, ValueError, TransientError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"run {run_id} is {run.status}: {run.waiting_reason}")


@runs.command("prioritize")
@click.argument("run_id", callback=_an_id)
@click.argument("priority", type=click.IntRange(0, 99))
@click.option("--reason", required=True, help="Why (kept in the run's history, with your name).")
@operator_command
@click.pass_context
def runs_prioritize(ctx, run_id, priority, reason):
    """Change a queued (READY) run's priority, 0-99 (higher starts first): the submitter's order follows."""
    import getpass

    from obsflow.runs.service import NotAllowed

    try:
        run = _runs(ctx).prioritize(run_id, priority, getpass.getuser(), reason)
    except (NotAllowed, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"run {run_id} is READY at priority {run.priority}; `obsflow runs list --status READY` shows the "
               "order they start in")


@runs.command("requeue")
@click.argument("run_ids", nargs=-1, callback=_ids)
@click.option("--skipped", "every_skipped", is_flag=True, help="Every SKIPPED run (instead of naming runs).")
@click.option("--reason", required=True, help="Why (kept in each run's history, with your name).")
@operator_command
@click.pass_context
def runs_requeue(ctx, run_ids, every_skipped, reason):
    """Queue SKIPPED runs again (skipped with the backlog by `obsflow resume --skip-backlog`): they start in
    priority order, within the run slots and their windows."""
    import getpass

    from obsflow.runs.service import NotAllowed

    if bool(run_ids) == every_skipped:
        raise click.UsageError("name the runs (RUN...) or give --skipped, not both")
    try:
        moved = _runs(ctx).requeue(None if every_skipped else list(run_ids), getpass.getuser(), reason)
    except (NotAllowed, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"queued {len(moved)} run(s) again: {', '.join(moved) or '-'}")


@runs.command("execute")
@click.argument("run_id", callback=_an_id)
@click.option("--manual", is_flag=True, required=True, help="Run the tasks here, by hand (required: says you mean it).")
@click.option("--note", required=True, help="Why it is run by hand (kept in every task's provenance).")
@operator_command
@click.pass_context
def runs_execute(ctx, run_id, manual, note):
    """Run a MANUAL (or FAILED) run's tasks on this machine, then catalogue, notify and finish it."""
    import getpass

    from obsflow.runs.service import ManualRunFailed

    try:
        run = _runs(ctx).execute_manually(run_id, note, getpass.getuser(), echo=click.echo)
    except ManualRunFailed as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"run {run_id} {run.status}; dataset {run.dataset_id}")


@runs.command("rerun")
@click.argument("dataset_id", callback=_an_id)
@click.option("--keep-intermediates", is_flag=True, required=True,
              help="Keep every task output in the new dataset (required: says what the rerun is for).")
@click.option("--from-task", metavar="T", help="Run this task and those below it again, even if reusable.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Change a value of the as-run configuration.")
@click.option("--retention-days", default=14, show_default=True, help="Keep the outputs this long.")
@operator_command
@click.pass_context
def runs_rerun(ctx, dataset_id, keep_intermediates, from_task, overrides, retention_days):
    """Rebuild a dataset's run from its provenance (inputs, recipe version, as-run configuration) as a developer
    campaign under dev/, keeping every intermediate product; `runs outputs RUN` lists them."""
    import getpass

    from obsflow.recipes.model import RecipeError
    from obsflow.runs.service import NotAllowed

    try:
        campaign = _campaigns(ctx).rerun(dataset_id, getpass.getuser(), from_task, _key_values(overrides) or None,
                                         keep_intermediates, retention_days)
    except (NotAllowed, RecipeError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"developer campaign {campaign.name} is {campaign.status}: a rerun of {dataset_id}"
               + (f" from {from_task}" if from_task else "") + f"; `obsflow campaigns show {campaign.name}` follows it")


@runs.command("outputs")
@click.argument("run_id", callback=_an_id)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
@click.pass_context
def runs_outputs(ctx, run_id, as_json):
    """Every output of the run's tasks: tags, size, whether reused, where it is and where its dataset keeps it."""
    console.emit(_runs(ctx).run_outputs(run_id), ["task", "name", "tags", "size", "reused_from", "kept", "work"],
                 as_json, f"run {run_id} has recorded no outputs")


@main.group()
def tickets():
    """Service-desk tickets: failures and manual reviews."""


@tickets.command("list")
@click.option("--status", type=click.Choice(statuses.TICKET_STATUSES), help="Only tickets with this status.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
def tickets_list(status, as_json):
    """Tickets, oldest first, with what to do about each."""
    from obsflow.tables import tickets as tickets_table

    items = tickets_table.with_status(status) if status else tickets_table.all_tickets()
    console.emit([t.attribute_values for t in items],
                 ["ticket_id", "status", "kind", "run_id", "failed_task", "summary", "suggested_action"], as_json,
                 "no tickets")


@tickets.command("resolve")
@click.argument("ticket_id", callback=_an_id)
@click.option("--note", required=True, help="What was done (kept with the ticket).")
@operator_command
def tickets_resolve(ticket_id, note):
    """Close a ticket, recording the action taken and who took it."""
    import getpass

    _runs(click.get_current_context()).resolve_ticket(ticket_id, note, getpass.getuser())
    click.echo(f"ticket {ticket_id} resolved: {note}")


@main.command()
@click.option("--now", "as_of", metavar="ISO-8601", help="Run the check as of this time (default: now).")
@operator_command
@click.pass_context
def backstop(ctx, as_of):
    """Release candidates still incomplete N days (13) after their first frame, with a review ticket each."""
    now = _as_of(as_of)
    report = _runs(ctx).backstop(now)
    click.echo(f"checked {report.checked} waiting candidate(s) as of {now.isoformat()}; "
               f"released {len(report.released)}: {', '.join(report.released) or '-'}")


@main.command()
@click.option("--reason", default="", help="Why (kept with the setting, for the next operator).")
@operator_command
@click.pass_context
def pause(ctx, reason):
    """Stop starting runs. Candidates still become READY; their runs wait in priority order."""
    _runs(ctx).pause(reason)
    click.echo(f"automated submission paused for stage '{_settings(ctx).stage}'; `obsflow resume` restarts it")


@main.command()
@click.option("--skip-backlog", is_flag=True, help="Do not process the backlog (of a paused stage only): the runs "
              "queued now (READY, of no campaign) end SKIPPED, listed on one ticket, until `obsflow runs requeue`.")
@click.option("--reason", default=None, help="Why the backlog is skipped (required with --skip-backlog; kept with "
              "each run and on the ticket).")
@operator_command
@click.pass_context
def resume(ctx, skip_backlog, reason):
    """Start runs again: the waiting READY runs start in priority order, within the run slots and their windows."""
    import getpass

    queries = _queries()

    if skip_backlog and not (reason or "").strip():
        raise click.UsageError("--skip-backlog needs --reason TEXT (kept with each skipped run)")
    from obsflow.runs.service import NotAllowed

    settings = _settings(ctx)
    try:
        skipped = _runs(ctx).resume(getpass.getuser(), reason if skip_backlog else None)
    except NotAllowed as exc:
        raise click.ClickException(str(exc)) from exc
    if skip_backlog:
        click.echo(f"skipped {len(skipped)} queued run(s)" + ("; `obsflow tickets list` has the ticket that lists "
                                                               "them, `obsflow runs requeue --skipped` queues them again"
                                                               if skipped else ""))
    waiting = len(queries.run_rows(statuses.READY))
    click.echo(f"automated submission resumed for stage '{settings.stage}'; {waiting} run(s) waiting to start")
