"""What ingest recorded: frames, OPs, proposals, candidates, and the dead-letter queue."""

from __future__ import annotations


import click

from obsflow import console, statuses
from obsflow.cli.app import main
from obsflow.cli.common import (
    JSON_HELP,
    _an_id,
    _catalogue,
    _history,
    _provenance,
    _queries,
    _read_id_list,
    _runs,
    _settings,
    operator_command,
)


@main.group()
def dlq():
    """The ingest dead-letter queue: notifications that failed every delivery."""


def _queue_urls(settings) -> tuple:
    from obsflow import aws

    sqs = aws.client(settings, "sqs")
    return (sqs, sqs.get_queue_url(QueueName=settings.ingest_dlq_name)["QueueUrl"],
            sqs.get_queue_url(QueueName=settings.ingest_queue_name)["QueueUrl"])


@dlq.command("list")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
@click.pass_context
def dlq_list(ctx, as_json):
    """The messages in the dead-letter queue and the objects they name (read without consuming them)."""
    from obsflow import dead_letters

    sqs, dlq_url, _ = _queue_urls(_settings(ctx))
    rows = [letter.row() for letter in dead_letters.peek(sqs, dlq_url)]
    console.emit(rows, ["message_id", "sent_at", "receives", "keys"], as_json,
                 "the dead-letter queue is empty")
    if rows and not as_json:
        click.echo("\n`obsflow dlq redrive` sends them back to be ingested (a frame already counted is not "
                   "counted again)")


@dlq.command("redrive")
@operator_command
@click.pass_context
def dlq_redrive(ctx):
    """Send every dead-lettered notification back to the ingest queue (ingest counts each frame once)."""
    from obsflow import dead_letters

    sqs, dlq_url, queue_url = _queue_urls(_settings(ctx))
    moved = dead_letters.redrive(sqs, dlq_url, queue_url)
    click.echo(f"{moved} message(s) sent back to the ingest queue" + (
        "; `obsflow frames list --quarantined` shows any the ingest rejects" if moved else ""))


@main.group()
def frames():
    """Raw frames received, and objects quarantined."""


@frames.command("list")
@click.option("--op", "op_id", help="Only the frames of this observing program.")
@click.option("--quarantined", is_flag=True, help="List quarantined objects and why, instead of frames.")
@click.option("--bad", is_flag=True, help="List the frames marked bad (who, when, why), instead of all frames.")
@click.option("--history", is_flag=True, help="With --bad: every mark ever made, those taken back too (who, when, "
              "why they were unmarked).")
@click.option("--used-by", "used_by", metavar="DATASET",
              help="The raw frames a dataset was made from, with those of the datasets it consumed (calibrations).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
def frames_list(op_id, quarantined, bad, history, used_by, as_json):
    """List frames (optionally of one OP or used by a dataset), the frames marked bad, or the quarantined objects
    with their reasons."""
    queries = _queries()

    if history and not bad:
        raise click.UsageError("--history goes with --bad: `obsflow frames list --bad --history`")
    if bad:
        from obsflow.runs.domain import BAD_FRAME
        from obsflow.tables import tags as tags_table

        marked = ["target_id", "tagged_by", "tagged_at", "reason"]
        if history:
            console.emit(tags_table.history(BAD_FRAME), [*marked, "withdrawn_by", "withdrawn_at", "withdrawn_reason"],
                         as_json, "no frame was ever marked bad")
        else:
            console.emit([t.attribute_values for t in tags_table.tagged(BAD_FRAME)], marked, as_json,
                         "no frames are marked bad")
    elif used_by:
        provenance = _provenance()

        console.emit(provenance.frames_used_by(used_by), ["file_id", "op_id", "role", "task_type", "dataset_id", "via"],
                     as_json, f"dataset {used_by} lists no input frames")
    elif quarantined:
        console.emit(queries.quarantine_rows(), ["key", "version_id", "code", "reason", "quarantined_at"], as_json,
                     "no quarantined objects")
    else:
        rows = queries.frame_rows(op_id, _settings(click.get_current_context()).default_embargo_days)
        console.emit(rows, ["file_id", "op_id", "task_type", "date_obs", "release_date", "key", "size"], as_json,
                     "no frames" + (f" for OP {op_id}" if op_id else ""))


def _frame_ids_and_reason(reason_help: str):
    """FILE_ID... | --ids FILE.json, and --reason: what marking and unmarking frames take."""

    def decorate(command):
        command = click.option("--reason", required=True, help=reason_help)(command)
        command = click.option("--ids", "ids_file", type=click.Path(exists=True, dir_okay=False),
                               help="A JSON list of file ids (for many).")(command)
        return click.argument("file_ids", nargs=-1, metavar="[FILE_ID]...",
                              callback=lambda ctx, param, ids: [_an_id(ctx, param, i) for i in ids])(command)

    return decorate


def _change_bad_marks(ctx, file_ids, ids_file, reason, change: str) -> tuple[int, int]:
    """Mark or unmark (``change``: the RunService method) the named frames as who runs this; (changed, named)."""
    import getpass

    from obsflow.errors import NotFound

    ids = list(file_ids) + (_read_id_list(ids_file) if ids_file else [])
    if not ids:
        raise click.UsageError("name the frames: FILE_ID... or --ids FILE.json (a JSON list of file ids)")
    try:
        return getattr(_runs(ctx), change)(ids, getpass.getuser(), reason), len(set(ids))
    except (NotFound, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc


@frames.command("mark-bad")
@_frame_ids_and_reason("Why they are bad (kept with each, with your name and the time).")
@operator_command
@click.pass_context
def frames_mark_bad(ctx, file_ids, ids_file, reason):
    """Mark frames found bad after ingest: every input dataset planned from now on leaves them out (and says so).
    Datasets already made keep them: `obsflow reprocess plan --bad-frames` plans their reprocessing."""
    added, named = _change_bad_marks(ctx, file_ids, ids_file, reason, "mark_bad_frames")
    click.echo(f"{added} frame(s) marked bad" + (f" ({named - added} were already)" if added < named else "")
               + "; `obsflow frames list --bad` lists them")


@frames.command("unmark-bad")
@_frame_ids_and_reason("Why they are no longer bad (kept with each mark, with your name and the time).")
@operator_command
@click.pass_context
def frames_unmark_bad(ctx, file_ids, ids_file, reason):
    """Take back marks of frames as bad: input datasets planned from now on use them again. The marks are kept,
    taken back with who, when and why: `obsflow frames list --bad --history` shows them."""
    unmarked, named = _change_bad_marks(ctx, file_ids, ids_file, reason, "unmark_bad_frames")
    click.echo(f"{unmarked} frame(s) unmarked" + (f" ({named - unmarked} were not marked bad)" if unmarked < named else "")
               + "; `obsflow frames list --bad --history` shows every mark")


@main.group()
def ops():
    """Observing programs: expected against received frames."""


@ops.command("list")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
def ops_list(as_json):
    """Expected vs received frames per observing program."""
    queries = _queries()

    console.emit(queries.op_rows(), ["op_id", "task_type", "expected", "received", "complete", "candidate_ids"], as_json,
                 "no observing programs yet")


@ops.command("show")
@click.argument("op_id", callback=_an_id)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object on stdout.")
@operator_command
def ops_show(op_id, as_json):
    """One observing program: expected and received frames, its candidates, and its conflict history
    (expected counts changed by a later manifest, frames after its candidates were released, a file id under
    two keys, a key overwritten)."""
    queries = _queries()

    detail = queries.op_detail(op_id)
    if as_json:
        click.echo(console.to_json(detail))
        return
    console.fields(detail, ("op_id", "task_type", "proposal_id", "instrument", "expected", "received", "complete",
                            "late_frames", "candidate_ids", "manifest_ids", "first_frame_at"), 15)
    _history(detail["events"])


@main.group()
def proposals():
    """Proposals: their PI, and when their data become public (embargo)."""


@proposals.command("list")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
def proposals_list(as_json):
    """Every proposal whose document has come, with its embargo rule. A proposal without one gets the
    configured default embargo (`obsflow info` shows it)."""
    queries = _queries()

    console.emit(queries.proposal_rows(), ["proposal_id", "pi_name", "pi_email", "release_date", "embargo_days",
                                           "modified_at"], as_json, "no proposal documents yet")


@proposals.command("show")
@click.argument("proposal_id", callback=_an_id)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object on stdout.")
@operator_command
@click.pass_context
def proposals_show(ctx, proposal_id, as_json):
    """One proposal: its PI, its embargo rule, its datasets still under embargo and the history of its document."""
    queries = _queries()

    detail = queries.proposal_detail(proposal_id, _settings(ctx).default_embargo_days)
    if as_json:
        click.echo(console.to_json(detail))
        return
    console.fields(detail, ("proposal_id", "pi_name", "pi_email", "rule", "key", "version_id", "modified_at"), 12)
    click.echo("under embargo:" if detail["under_embargo"] else "under embargo: none")
    console.table(detail["under_embargo"], ["dataset_id", "kind", "release_date"], "")
    _history(detail["events"], "no revisions")


@main.group()
def candidates():
    """Processing candidates: an observe OP and its calibration OPs."""


@candidates.command("list")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
def candidates_list(as_json):
    """Every candidate with its status and, when READY, when and why."""
    queries = _queries()

    console.emit(queries.candidate_rows(),
                 ["candidate_id", "proposal_id", "instrument", "status", "ops", "ready_at", "ready_reason"], as_json,
                 "no candidates yet")


@candidates.command("show")
@click.argument("candidate_id", callback=_an_id)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object on stdout.")
@operator_command
def candidates_show(candidate_id, as_json):
    """One candidate, OP by OP: what has arrived and what is missing; then its processing: each recipe instance
    planned for it, its state (and why) and its dataset."""
    catalogue, queries = _catalogue(), _queries()

    detail = {**queries.candidate_detail(candidate_id), "instances": catalogue.processing_of(candidate_id)}
    if as_json:
        click.echo(console.to_json(detail))
        return
    console.fields(detail, ("candidate_id", "proposal_id", "instrument", "recipe", "priority", "status", "created_at",
                            "ready_at", "ready_reason", "processing", "run_ids"), 13)
    console.table(detail["ops"], ["op_id", "role", "task_type", "expected", "received", "complete", "missing"], "")
    click.echo("\nprocessing (`obsflow catalogue tree " + candidate_id + "` draws it):")
    console.table(detail["instances"], ["instance_id", "recipe", "state", "state_reason", "dataset_id"],
                  "  nothing planned yet" + ("" if detail["status"] != statuses.WAITING else ": it waits for frames"))
    _history(detail["events"])
