"""The operator's tool: `obsflow`.

Talks to a deployed stack through the usual AWS credential chain, or to the local
stack with --endpoint-url / AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import functools
import json
import os
import signal
from pathlib import Path
import sys
import threading
from typing import TYPE_CHECKING

import click

from obsflow import __version__, console, statuses
from obsflow.errors import NotFound, TransientError
from obsflow.runs.domain import INSTANCE_STATES

if TYPE_CHECKING:
    from obsflow.settings import Settings

# A command imports what it uses when it runs (AWS clients, the catalogue, FITS): `--help` stays instant.

JSON_HELP = "Print a JSON array on stdout (for scripts)."


def _settings(ctx: click.Context) -> Settings:
    return ctx.find_object(dict)["settings"]


def _runs(ctx: click.Context):
    """The run service of the chosen stage (after operator_command has found it)."""
    from obsflow.services import run_service

    return run_service(_settings(ctx))


def _unreachable(settings: Settings, exc: Exception) -> click.ClickException:
    from botocore.exceptions import EndpointConnectionError

    where = settings.endpoint_url or f"AWS region {settings.region}"
    cause = getattr(exc, "cause", None) or exc
    code = getattr(cause, "response", {}).get("Error", {}).get("Code", "")
    if code.endswith(("ValidationException", "ValidationError")):  # it answered: the request was wrong, not the stage
        return click.ClickException(f"stage '{settings.stage}' refused the request ({code}): "
                                    f"{cause.response['Error'].get('Message', cause)}; check the values given")
    if settings.endpoint_url and isinstance(cause, EndpointConnectionError):
        return click.ClickException(
            f"nothing answers at {settings.endpoint_url}: start `obsflow local serve` (it prints its endpoint), "
            "or pass the --endpoint-url it printed"
        )
    return click.ClickException(
        f"cannot read obsflow stage '{settings.stage}' at {where}: {cause}\n"
        "Is `obsflow local serve` running (then pass --endpoint-url), or are your AWS "
        "credentials and --stage right?"
    )


def _discover(settings: Settings) -> Settings:
    from botocore.exceptions import ClientError

    from obsflow import discovery

    try:
        return discovery.discover(settings)
    except ClientError as exc:  # e.g. no permission to read the stage's parameter
        raise _unreachable(settings, exc) from exc


def _with_local_state(settings: Settings, message: str) -> str:
    """On a local stack, why what is asked for may be missing: it started empty, or from a snapshot."""
    if not settings.local_endpoint:
        return message
    from obsflow import aws
    from obsflow.local.state import empty_stack_note

    note = empty_stack_note(settings, aws.client(settings, "ssm"))
    return f"{message}\n{note}" if note else message


def operator_command(func):
    """Find the chosen stage's resources, bind the tables to them and turn AWS failures into advice."""

    @functools.wraps(func)
    @click.pass_context
    def wrapper(ctx, *args, **kwargs):
        from botocore.exceptions import EndpointConnectionError, NoCredentialsError, NoRegionError
        from pynamodb.exceptions import PynamoDBException

        from obsflow import tables

        settings = _settings(ctx)
        try:
            settings = _discover(settings)
            ctx.find_object(dict)["settings"] = settings
            tables.bind(settings)
            return ctx.invoke(func, *args, **kwargs)
        except NotFound as exc:
            raise click.ClickException(_with_local_state(settings, str(exc))) from exc
        except (EndpointConnectionError, NoCredentialsError, NoRegionError, PynamoDBException, TransientError) as exc:
            raise _unreachable(settings, exc) from exc

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="obsflow")
@click.option("--endpoint-url", envvar="AWS_ENDPOINT_URL", help="AWS endpoint (the local stack: http://127.0.0.1:4566).")
@click.option("--stage", envvar="OBSFLOW_STAGE", default="local", show_default=True, help="Deployment stage whose resources to use.")
@click.option("--region", envvar="AWS_DEFAULT_REGION", default="us-east-1", show_default=True, help="AWS region.")
@click.pass_context
def main(ctx, endpoint_url, stage, region):
    """obsflow: observatory science data processing, from raw frames to Level 1 datasets.

    \b
    Quick start:
      obsflow demo                         the whole system locally, on generated data
      obsflow local serve                  a local stack to upload to (Ctrl-C stops it)
      obsflow --endpoint-url http://127.0.0.1:4566 candidates list
    """
    from pydantic import ValidationError

    from obsflow import faults
    from obsflow.settings import Settings

    try:
        settings = Settings(stage=stage, AWS_DEFAULT_REGION=region, AWS_ENDPOINT_URL=endpoint_url)
        faults.plan()  # a malformed fault plan is said here, in one line, not as a traceback in some AWS call
    except ValidationError as exc:
        raise click.UsageError("; ".join(_readable(error) for error in exc.errors())) from exc
    except faults.MalformedFaults as exc:
        raise click.UsageError(f"{exc}; unset it, or fix it") from exc
    if settings.local_endpoint and not (os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")):
        # the local stack accepts any credentials; a newcomer should not need to invent some
        os.environ.update(AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local")
    ctx.ensure_object(dict)["settings"] = settings


OPTION_OF_SETTING = {"AWS_DEFAULT_REGION": "--region", "AWS_ENDPOINT_URL": "--endpoint-url", "stage": "--stage"}


def _readable(error: dict) -> str:
    """One line for one invalid setting: the option, and pydantic's message without its "Value error, "."""
    option = OPTION_OF_SETTING.get(str(error["loc"][0]), str(error["loc"][0])) if error["loc"] else "a setting"
    return f"{option}: {error['msg'].removeprefix('Value error, ')}"


@main.command()
@click.option("--port", type=int, default=0, help="Loopback port for the local stack (default: any free port).")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed for the generated frames.")
@click.option("--output", default="obsflow-demo-output", show_default=True, type=click.Path(file_okay=False),
              help="Folder the products are downloaded to.")
def demo(port, seed, output):
    """Run the whole system locally on generated data, and summarise what happened.

    Starts the embedded local stack (stage 'demo', stopped at the end), generates a small night (three VBI
    candidates of two proposals, 48 observe frames of 512x512 each, and calibration sets of 8 darks and 8
    gains, one set shared by two candidates) as SPEC-0122 frames, and uploads it as the summit would (out of
    order, some twice, one broken, manifests last). The discovery rules plan the master calibrations once
    (vbi-calibration), the science after them (vbi-l1) and a night summary (vbi-night-summary). It downloads
    the products to --output, and summarises the runs, the processing catalogue, the datasets and their
    files, the PI notifications and the embargo (one proposal's data are public at once). Last, the second
    day as a dry run: a parameter changes and the reprocessing plan says what that means.
    """
    from obsflow.demo import run_demo

    run_demo(click.echo, port=port, seed=seed, output=Path(output))


def _an_id(ctx, param, value: str | None) -> str | None:
    """An id that becomes part of a key and a file name (obsflow.ids)."""
    from obsflow.ids import ID_RULE, is_id

    if value is not None and not is_id(value):
        raise click.BadParameter(f"{value!r} is not an id ({ID_RULE})")
    return value


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


@main.command()
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write the observation to, laid out as the ingest bucket's keys.")
@click.option("--frames", "n_observe", type=click.IntRange(1, 10_000), default=16, show_default=True,
              help="Observe frames (one OP); the dark and gain OPs get --calibration-frames each.")
@click.option("--calibration-frames", type=click.IntRange(1, 1_000), default=4, show_default=True,
              help="Frames of each calibration OP (dark, gain).")
@click.option("--size", type=click.IntRange(16, 4096), default=256, show_default=True,
              help="Frame width and height in pixels.")
@click.option("--candidate", "candidate_id", default="sim_0001", show_default=True, callback=_an_id,
              help="Candidate id; its OPs are <candidate>_dark, _gain and _observe.")
@click.option("--proposal", "proposal_id", default="pid_1_23", show_default=True, callback=_an_id,
              help="Proposal id.")
@click.option("--recipe", default=None, help="Recipe the candidate asks for (default: the discovery rules choose).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the pixel data.")
def simulate(out, n_observe, calibration_frames, size, candidate_id, proposal_id, recipe, seed):
    """Write a realistic VBI observation to a folder: SPEC-0122 frames (darks, gains, granulation through
    them), the transfer manifest, the processing candidate and the proposal document.

    `obsflow upload DIR` then sends it as the summit does.
    """
    from obsflow.simulate import simulate_candidate

    click.echo(f"simulating {2 * calibration_frames + n_observe} frames of {size}x{size} ...", err=True)
    try:
        observation = simulate_candidate(candidate_id, proposal_id=proposal_id, n_dark=calibration_frames,
                                         n_gain=calibration_frames, n_observe=n_observe, shape=(size, size), seed=seed,
                                         recipe=recipe)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    written = observation.write(out)
    size_mb = sum(path.stat().st_size for path in written) / 1e6
    click.echo(f"wrote {len(written)} files ({size_mb:.1f} MB) to {out}: OPs "
               f"{', '.join(op.op_id for op in observation.ops)}, candidate {candidate_id}, proposal {proposal_id}")
    click.echo(f"next: obsflow upload {out}")


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@operator_command
@click.pass_context
def upload(ctx, directory):
    """Send an observation folder (as `obsflow simulate` writes it) to the stage's ingest bucket, as the summit
    does: the proposal and the candidate, the frames (8 at a time), then the manifests.

    Files are sent under their path in the folder: raw/<op_id>/<name>.fits, manifests/<id>.json,
    candidates/<id>.json, proposals/<id>.json. Sending a folder again is harmless: ingest counts each frame once.
    """
    from obsflow import aws, summit

    settings = _settings(ctx)
    plan = summit.plan_upload(directory)
    for key in plan.skipped:
        click.echo(f"skipped {key}: not an ingest key (raw/<op_id>/<name>.fits, manifests/*.json, candidates/*.json, "
                   "proposals/*.json)", err=True)
    if not plan.keys:
        raise click.ClickException(f"nothing to upload in {directory}; `obsflow simulate --out {directory}` writes "
                                   "an observation")
    bucket = settings.ingest_bucket_name
    step = max(1, len(plan.keys) // 4)

    def progress(done: int, total: int) -> None:
        if done % step == 0 or done == total:
            click.echo(f"  {done}/{total} objects", err=True)

    sent = summit.upload(aws.client(settings, "s3"), bucket, plan, progress)
    click.echo(f"uploaded {len(plan.keys)} objects ({sent / 1e6:.1f} MB) to s3://{bucket}; "
               "`obsflow candidates list` shows them arrive")


@main.group()
def local():
    """The embedded local stack (moto on loopback, Lambdas in-process)."""


@local.command("serve")
@click.option("--port", type=int, default=4566, show_default=True, help="Loopback port to listen on.")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]), default="INFO",
              show_default=True, help="Log level of the in-process Lambdas (JSON lines on stdout).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the stack keeps its state across restarts [default: obsflow/local/<stage> under the "
                   "user's data directory, $XDG_DATA_HOME or ~/.local/share].")
@click.option("--no-state", is_flag=True, help="Keep nothing: start empty, and forget everything at Ctrl-C.")
@click.pass_context
def local_serve(ctx, port, log_level, state_dir, no_state):
    """Run the local stack until Ctrl-C.

    Any AWS client can use it: point boto3 or the AWS CLI at the printed endpoint.
    Uploads to the ingest bucket flow through S3 notifications, the ingest queue and
    the ingest handler, exactly as on AWS.

    \b
    Its state (objects, tables, queues, topics and subscriptions, state machines and
    run history, tickets) is saved every few seconds and at Ctrl-C, and restored at the
    next start; after a crash the last snapshot is restored and the banner says what
    may be missing. Runs that were running fail with a ticket saying to redrive them.
    """
    from obsflow.local.stack import LocalStack
    from obsflow.local.state import default_state_dir

    stage = _settings(ctx).stage
    if state_dir and no_state:
        raise click.UsageError("--state-dir and --no-state contradict each other: choose one")
    kept = None if no_state else (state_dir or default_state_dir(stage))
    stack = LocalStack(port=port, stage=stage, log_level=log_level, state_dir=kept)
    try:
        stack.start()
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    info = stack.settings.describe()
    click.echo(f"obsflow local stack ready at {stack.endpoint_url} (stage '{stack.stage}'): every resource exists")
    if stack.restored is not None:
        click.echo(f"  {stack.restored.describe()}")
    elif kept is not None:
        click.echo(f"  started empty; its state is kept in {kept} (--no-state keeps nothing)")
    else:
        click.echo("  started empty; nothing is kept after Ctrl-C (--no-state)")
    click.echo(f"  ingest bucket: s3://{info['buckets']['ingest']}  ingest queue: {info['queues']['ingest']}")
    click.echo(f"  try: export AWS_ENDPOINT_URL={stack.endpoint_url} AWS_DEFAULT_REGION={stack.settings.region} "
               "AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local")
    click.echo("       obsflow candidates list")
    click.echo(f"  obsflow's log lines follow here; metrics (EMF) and moto's own log are in {stack.side_logs}")
    click.echo(f"  hosted pipelines (`obsflow pipelines add`): scratch inventory {stack.pipeline_services.redis_kind}, "
               f"metadata store at {stack.pipeline_services.addresses['metadata-store']}")
    click.echo("Ctrl-C stops it.", err=False)
    sys.stdout.flush()
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    click.echo("stopping the local stack ...")
    stack.stop()
    click.echo("stopped.")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object on stdout.")
@operator_command
def info(as_json):
    """Endpoint and resource names (buckets, queues, tables, ...) of the chosen stage.

    The names come from the stage's SSM parameter /obsflow/<stage>/resources, which the
    deployed stack and the local stack both write.
    """
    description = _settings(click.get_current_context()).describe()
    if as_json:
        click.echo(console.to_json(description))
        return
    click.echo(f"stage     {description['stage']}")
    click.echo(f"region    {description['region']}")
    click.echo(f"endpoint  {description['endpoint_url'] or '(AWS default)'}")
    for group in ("buckets", "queues", "tables", "topics", "functions"):
        for name, value in description[group].items():
            click.echo(f"{group[:-1]:<9} {name:<20} {value}")


@main.group()
def frames():
    """Raw frames received, and objects quarantined."""


@frames.command("list")
@click.option("--op", "op_id", help="Only the frames of this observing program.")
@click.option("--quarantined", is_flag=True, help="List quarantined objects and why, instead of frames.")
@click.option("--used-by", "used_by", metavar="DATASET",
              help="The raw frames a dataset was made from, with those of the datasets it consumed (calibrations).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
def frames_list(op_id, quarantined, used_by, as_json):
    """List frames (optionally of one OP or used by a dataset), or the quarantined objects with their reasons."""
    from obsflow import queries

    if used_by:
        from obsflow import provenance

        console.emit(provenance.frames_used_by(used_by), ["file_id", "op_id", "role", "task_type", "dataset_id", "via"],
                     as_json, f"dataset {used_by} lists no input frames")
    elif quarantined:
        console.emit(queries.quarantine_rows(), ["key", "version_id", "code", "reason", "quarantined_at"], as_json,
                     "no quarantined objects")
    else:
        rows = queries.frame_rows(op_id, _settings(click.get_current_context()).default_embargo_days)
        console.emit(rows, ["file_id", "op_id", "task_type", "date_obs", "release_date", "key", "size"], as_json,
                     "no frames" + (f" for OP {op_id}" if op_id else ""))


@main.group()
def ops():
    """Observing programs: expected against received frames."""


@ops.command("list")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
def ops_list(as_json):
    """Expected vs received frames per observing program."""
    from obsflow import queries

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
    from obsflow import queries

    detail = queries.op_detail(op_id)
    if as_json:
        click.echo(console.to_json(detail))
        return
    console.fields(detail, ("op_id", "task_type", "proposal_id", "instrument", "expected", "received", "complete",
                            "late_frames", "candidate_ids", "manifest_ids", "first_frame_at"), 15)
    _history(detail["events"])


def _history(events: list[dict], none: str = "no conflicts") -> None:
    click.echo("history:" if events else f"history: {none}")
    console.table(events, ["at", "kind", "detail"], "")


@main.group()
def proposals():
    """Proposals: their PI, and when their data become public (embargo)."""


@proposals.command("list")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
def proposals_list(as_json):
    """Every proposal whose document has come, with its embargo rule. A proposal without one gets the
    configured default embargo (`obsflow info` shows it)."""
    from obsflow import queries

    console.emit(queries.proposal_rows(), ["proposal_id", "pi_name", "pi_email", "release_date", "embargo_days",
                                           "modified_at"], as_json, "no proposal documents yet")


@proposals.command("show")
@click.argument("proposal_id", callback=_an_id)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object on stdout.")
@operator_command
@click.pass_context
def proposals_show(ctx, proposal_id, as_json):
    """One proposal: its PI, its embargo rule, its datasets still under embargo and the history of its document."""
    from obsflow import queries

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
    from obsflow import queries

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
    from obsflow import catalogue, queries

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


@main.group()
def recipes():
    """Recipes: versioned DAGs of tasks, one state machine each."""


@recipes.command("list")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
def recipes_list(as_json):
    """Registered recipes with their versions, instrument, priority and tasks."""
    from obsflow import queries

    console.emit(queries.recipe_rows(), ["name", "version", "instrument", "automated", "priority", "tasks"], as_json,
                 "no recipes registered; `obsflow recipes register` registers this release's recipes")


@recipes.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object on stdout.")
@operator_command
def recipes_show(name, as_json):
    """One recipe: its DAG, parameters with valid and dated values, run configuration."""
    from obsflow import queries

    detail = queries.recipe_detail(name)
    if as_json:
        click.echo(console.to_json(detail))
        return
    console.fields(detail, ("name", "version", "versions", "instrument", "modes", "automated", "priority", "state_machine",
                            "documentation_url", "description"), 17)
    if detail.get("pipeline"):
        source = detail["pipeline"]
        click.echo(f"pipeline          {source['package']}=={source['version']}, workflow {source['workflow']} "
                   f"({source['module']}), run unchanged; code: {source['source_url']}")
    click.echo("\ntasks (in dependency order; a group runs side by side):")
    for i, level in enumerate(detail["levels"], 1):
        click.echo(f"  {i}. {' | '.join(level)}")
    console.table([{**t, "code": t.get("pipeline_task") or t["entrypoint"]} for t in detail["tasks"]],
                  ["name", "upstreams", "resource_class", "code"], "")
    click.echo("\nparameters:")
    console.table(
        [{**p, "valid": _valid_values(p), "values": ", ".join(f"{v['value']} from {v['effective_from']}" for v in p["values"])}
         for p in detail["parameters"]], ["name", "type", "valid", "values", "description"], "  (none)")
    if detail["set_values"]:
        click.echo("\nvalues set as data:")
        console.table(detail["set_values"], ["parameter", "value", "effective_from", "set_by", "set_at", "reason"], "")
    click.echo("\nrun configuration:")
    console.table([{**o, "valid": _valid_values(o)} for o in detail["run_configuration"]],
                  ["name", "type", "valid", "default", "description"], "  (none)")


def _valid_values(option: dict) -> str:
    if option.get("choices") is not None:
        return " | ".join(repr(c) for c in option["choices"])
    low, high = option.get("minimum"), option.get("maximum")
    return f"[{'' if low is None else low}, {'' if high is None else high}]" if low is not None or high is not None else "any"


@recipes.command("register")
@click.argument("file", type=click.Path(exists=True, dir_okay=False), required=False)
@operator_command
@click.pass_context
def recipes_register(ctx, file):
    """Register a recipe version from a YAML or JSON FILE, and create its state machine.

    \b
    FILE holds name, version, instrument, kind (science, calibration or summary), description,
    documentation_url, tasks (name, entrypoint module:Class of a registered task, upstreams,
    resource_class), parameters (type, valid values, dated values), run_configuration (options)
    and estimates; the shipped recipes (shared/obsflow/recipes/shipped/recipes/) are examples.
    A version is never overwritten: registering it again with the same content changes nothing,
    with other content is refused. The running system starts using it at once (no release):
    candidates that name it, and discovery rules that name the recipe, get its latest version.
    Without FILE: register this release's shipped recipes (deployments do this).
    """
    from obsflow.recipes import registry
    from obsflow.recipes.definitions import parse_recipe
    from obsflow.recipes.model import RecipeError

    settings = _settings(ctx)
    if file is None:
        for key in registry.register(settings):
            click.echo(f"registered {key}")
        return
    try:
        recipe = parse_recipe(Path(file).read_text(), file)
    except RecipeError as exc:
        raise click.ClickException(str(exc)) from exc
    unknown = _unknown_entrypoints(recipe)
    if unknown:
        raise click.ClickException(f"{recipe.key} names task entrypoints the task image does not have: "
                                   f"{', '.join(unknown)}; a file can only use registered tasks")
    click.echo(f"registering {recipe.key} ({len(recipe.tasks)} tasks) ...")
    result = _register_recipe(settings, recipe)
    click.echo(f"{recipe.key} {'registered' if result['new'] else 'was already registered (same definition)'}; "
               f"state machine {result['state_machine']}")


def _register_recipe(settings: Settings, recipe) -> dict:
    """Record a recipe version and make its state machine, through the stage's register-recipes function."""
    import getpass

    from obsflow import aws

    response = aws.client(settings, "lambda").invoke(
        FunctionName=settings.function_name("register-recipes"), InvocationType="RequestResponse",
        Payload=console.to_json({"definition": recipe.model_dump(mode="json"), "registered_by": getpass.getuser()}),
    )
    result = json.loads(response["Payload"].read() or b"{}")
    if response.get("FunctionError"):
        raise click.ClickException(f"{recipe.key} was not registered: {result.get('errorMessage', result)}")
    return result


def _unknown_entrypoints(recipe) -> list[str]:
    """The tasks' module:Class entrypoints that the task package (as installed here) does not define (read from
    its source: nothing is imported to check)."""
    from obsflow.recipes import task_package

    unknown = []
    for task in recipe.tasks:
        if task.pipeline_task:
            unknown.append(f"{task.pipeline_task} (a pipeline's task: `obsflow pipelines add` registers those)")
        elif not task_package.defines(task.entrypoint):
            unknown.append(task.entrypoint)
    return unknown


@recipes.command("set-value")
@click.argument("name")
@click.argument("parameter")
@click.argument("value")
@click.option("--effective-from", "effective_from", required=True, type=click.DateTime(formats=["%Y-%m-%d"]),
              help="The first observation date (YYYY-MM-DD) the value applies to.")
@click.option("--reason", default="", help="Why (kept with the value, for the next person).")
@operator_command
def recipes_set_value(name, parameter, value, effective_from, reason):
    """Set a parameter's value for observations from a date on, checked against its valid values.

    Runs planned afterwards for observations on or after --effective-from use it; earlier
    observations keep the value effective on their date. Who set it, when and why is kept.
    """
    import getpass

    from obsflow.recipes import registry
    from obsflow.recipes.model import RecipeError

    try:
        result = registry.set_value(name, parameter, value, effective_from.date(), getpass.getuser(), reason)
    except RecipeError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{name} {parameter} = {result['value']!r} for observations from {result['effective_from']} on "
               f"(versions {', '.join(result['versions'])}; set by {result['set_by']})")


@main.group()
def runs():
    """Recipe runs: status, task-by-task progress, history."""


@runs.command("list")
@click.option("--status", type=click.Choice(statuses.RUN_STATUSES),
              help="Only runs with this status.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
def runs_list(status, as_json):
    """Runs, oldest first (with --status READY: in the order they will start)."""
    from obsflow import queries

    console.emit(queries.run_rows(status),
                 ["run_id", "recipe", "candidate_id", "priority", "status", "created_at", "duration_s", "waiting_reason"],
                 as_json, "no runs" + (f" with status {status}" if status else ""))


@runs.command("show")
@click.argument("run_id", callback=_an_id)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object on stdout.")
@operator_command
@click.pass_context
def runs_show(ctx, run_id, as_json):
    """One run: status, configuration, task-by-task progress and history."""
    from obsflow import aws, queries

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


def _as_of(as_of: str | None):
    """--now: an ISO-8601 time (UTC unless it says), or now."""
    import datetime as dt

    try:
        now = dt.datetime.fromisoformat(as_of) if as_of else dt.datetime.now(dt.timezone.utc)
    except ValueError as exc:
        raise click.BadParameter(f"{as_of!r} is not an ISO-8601 time, e.g. 2026-12-04T00:00:00+00:00",
                                 param_hint="--now") from exc
    return now if now.tzinfo else now.replace(tzinfo=dt.timezone.utc)


def _key_values(pairs: tuple[str, ...], option: str = "--set") -> dict[str, str]:
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint=option)
        values[key] = value
    return values


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
def datasets():
    """Catalogued datasets: Level 1 products, their versions and provenance."""


@datasets.command("list")
@click.option("--uses-frame", metavar="FILE_ID", help="Made from this raw frame (directly, or from a dataset that was).")
@click.option("--recipe", metavar="NAME[@VERSION]", help="Made by this recipe (version).")
@click.option("--code-version", metavar="V", help="Made by tasks of this obsflow code version.")
@click.option("--calibration", metavar="DATASET", help="Made on this calibration dataset.")
@click.option("--status", type=click.Choice(statuses.DATASET_STATUSES), help="Only datasets with this status.")
@click.option("--campaign", metavar="NAME", help="Made by this campaign's runs.")
@click.option("--embargoed", is_flag=True, help="Only datasets still under embargo (private to their proposal).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
def datasets_list(uses_frame, recipe, code_version, calibration, status, campaign, embargoed, as_json):
    """Datasets, oldest first, with kind, product, version, status and release date; filters combine (each is an
    index query)."""
    from obsflow import provenance
    from obsflow.embargo import EMBARGOED

    filters = (uses_frame, recipe, code_version, calibration, status, campaign, EMBARGOED if embargoed else None)
    console.emit(provenance.dataset_rows(*filters),
                 ["dataset_id", "kind", "proposal_id", "product_id", "version_key", "status", "frame_count", "recipe",
                  "campaign", "release_date", "created_at"], as_json,
                 "no datasets" + (" match" if any(filters) else " yet"))


@datasets.command("show")
@click.argument("dataset_id", callback=_an_id)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object on stdout.")
@operator_command
def datasets_show(dataset_id, as_json):
    """One dataset: where it is, its files with SHA-256, and the other versions of its product."""
    from obsflow import queries

    detail = queries.dataset_detail(dataset_id)
    if as_json:
        click.echo(console.to_json(detail))
        return
    console.fields(detail, ("dataset_id", "proposal_id", "product_id", "version_key", "status", "superseded_by", "recipe",
                            "run_id", "candidate_id", "frame_count", "input_frames", "created_at", "access"), 14)
    click.echo(f"location       s3://{detail['bucket']}/{detail['prefix']}")
    if detail.get("cost"):
        click.echo(f"cost           {console.cost(detail['cost'])}")
    console.table(detail["files"], ["name", "size", "sha256", "task"], "")
    click.echo("\nversions of this product:")
    console.table(detail["versions"], ["dataset_id", "status", "version_key", "created_at"], "")
    if detail.get("decisions"):
        click.echo("\ndata-quality decisions:")
        console.table(detail["decisions"], ["decision", "deprecated", "by", "at", "reason"], "")


@datasets.command("download")
@click.argument("dataset_id", callback=_an_id)
@click.option("--to", "folder", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
              help="Folder to download into (the dataset lands under its S3 prefix there).")
@operator_command
@click.pass_context
def datasets_download(ctx, dataset_id, folder):
    """Download a dataset's files, SHA256SUMS and provenance.json, each checked against its recorded SHA-256."""
    from obsflow import aws, products
    from obsflow.tables import datasets as datasets_table

    dataset = datasets_table.get(dataset_id)
    if dataset is None:
        raise NotFound(f"no dataset {dataset_id!r}; `obsflow datasets list` shows the catalogued ones")
    click.echo(f"downloading {len(dataset.files) + 2} files of {dataset_id} ...", err=True)
    try:
        target = products.download(aws.client(_settings(ctx), "s3"), dataset, folder)
    except products.ChecksumMismatch as exc:
        raise click.ClickException(f"{exc}: download it again; if it differs again, open a ticket") from exc
    except products.MissingFile as exc:
        raise click.ClickException(f"{exc}: check its run's outputs (`obsflow runs outputs {dataset.run_id}`) and "
                                   f"reprocess it (`obsflow runs retry {dataset.run_id}`) if they are gone") from exc
    click.echo(f"{target}: {', '.join(sorted(p.name for p in target.iterdir()))}")


@datasets.command("decide")
@click.argument("dataset_id", callback=_an_id)
@click.option("--keep-both", "action", flag_value="keep-both", help="Keep this version and the others ACTIVE.")
@click.option("--deprecate", "old_id", metavar="OLD", help="DEPRECATE the older version OLD in favour of this one.")
@click.option("--reject", "action", flag_value="reject", help="REJECT this version (its consumers go back to the "
              "previous ACTIVE one).")
@click.option("--reason", required=True, help="Why (kept with the dataset, with who and when).")
@operator_command
@click.pass_context
def datasets_decide(ctx, dataset_id, action, old_id, reason):
    """Record the data-quality decision on a new version of a product.

    A new version never replaces an ACTIVE one by itself: both stay ACTIVE and a review
    ticket asks for this decision.
    """
    import getpass

    from obsflow.runs.service import NotAllowed

    if bool(action) == bool(old_id):
        raise click.UsageError("give exactly one of --keep-both, --deprecate OLD, --reject")
    try:
        dataset = _runs(ctx).decide(dataset_id, action or "deprecate", reason, getpass.getuser(), old_id)
    except (NotAllowed, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"dataset {dataset_id} is {dataset.status}" + (f"; {old_id} is DEPRECATED" if old_id else ""))


@datasets.command("provenance")
@click.argument("dataset_id", callback=_an_id)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object on stdout.")
@operator_command
def datasets_provenance(dataset_id, as_json):
    """How a dataset was made: runs, tasks with code versions and manual influence, input frames."""
    from obsflow import queries

    detail = queries.dataset_provenance(dataset_id)
    if as_json:
        click.echo(console.to_json(detail))
        return
    for field in ("dataset_id", "product_id", "version_key", "recipe", "configuration"):
        click.echo(f"{field:<13} {console.cell(detail[field])}")
    click.echo("\nruns (newest first):")
    console.table(detail["runs"], ["run_id", "status", "retry_of", "overrides", "created_at"], "")
    click.echo("\ntasks:")
    console.table([{**t, "numpy": t["libraries"].get("numpy"), "astropy": t["libraries"].get("astropy")}
                   for t in detail["tasks"]],
                  ["task", "code_version", "numpy", "astropy", "started_at", "finished_at", "manual", "operator"], "")
    click.echo(f"\ninput frames: {len(detail['input_frames'])}")
    console.table(detail["input_frames"], ["file_id", "op_id", "task_type", "key"], "")


def _campaigns(ctx: click.Context):
    from obsflow.services import campaign_service

    return campaign_service(_settings(ctx))


def _read_json_file(path: str, what: str):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"cannot read {what} {path}: {exc}") from exc


def _campaign_errors(func):
    """A refused campaign or plan operation is one readable line."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from obsflow.recipes.model import RecipeError
        from obsflow.runs.service import NotAllowed

        try:
            return func(*args, **kwargs)
        except (NotAllowed, RecipeError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


@main.group()
def reprocess():
    """Reprocessing, plan first: what a change affects, what re-runs, what it costs; then run it as a campaign."""


@reprocess.command("plan")
@click.option("--recipe", metavar="NAME@VERSION", help="A new recipe version: its ACTIVE datasets of other versions.")
@click.option("--parameter", metavar="P", help="A changed parameter value: ACTIVE datasets made with another value "
              "than the one now effective for their observation date.")
@click.option("--calibration", metavar="DATASET", help="A new calibration: ACTIVE datasets made on another version "
              "of its product (their copies use this one).")
@click.option("--frame", metavar="FILE_ID", help="A new version of an input frame: ACTIVE datasets made from an older one.")
@click.option("--datasets", "datasets_file", metavar="FILE.json", help="An explicit list: a JSON list of dataset ids.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Configuration overrides for the copies.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@operator_command
@click.pass_context
@_campaign_errors
def reprocess_plan(ctx, recipe, parameter, calibration, frame, datasets_file, overrides, as_json):
    """Print and save what a change would reprocess, running nothing.

    Each affected dataset, the copy of its instance updated to the change, the tasks that re-run
    and those whose outputs are reused, and the estimated CPU time, output size and cost (price
    table: OBSFLOW_PRICES). Several selectors narrow each other. Start it with `reprocess start`.
    """
    import getpass

    from obsflow.runs.reprocessing import Change

    listed = tuple(_read_json_file(datasets_file, "the dataset list")) if datasets_file else ()
    change = Change(recipe=recipe, parameter=parameter, calibration=calibration, frame=frame, datasets=listed,
                    overrides=_key_values(overrides))
    plan = _campaigns(ctx).planner.plan(change, getpass.getuser())
    if as_json:
        click.echo(console.to_json(plan))
        return
    totals = plan["totals"]
    click.echo(f"plan {plan['plan_id']}: {console.cell(plan['change'])}")
    console.table([{**i, "rerun": ",".join(i["tasks_rerun"]), "reused": ",".join(i["tasks_reused"]) or "-",
                    "changes": i["configuration_changes"] or "-", "cpu_s": i["estimated_cpu_s"],
                    "usd": f"{i['estimated_usd']:.4f}"} for i in plan["items"]],
                  ["dataset_id", "proposal_id", "recipe_from", "recipe_to", "changes", "rerun", "reused", "cpu_s", "usd"],
                  "no ACTIVE dataset is affected")
    click.echo(f"\n{totals['datasets']} dataset(s); {totals['tasks_rerun']} task run(s), {totals['tasks_reused']} reused; "
               f"estimated {console.cpu_time(totals['cpu_seconds'])}, {totals['output_bytes'] / 1e6:.1f} MB, "
               f"${totals['usd']:.4f}. Nothing has run.")
    if plan["items"]:
        click.echo(f"start it: obsflow reprocess start {plan['plan_id']} --name NAME --reason TEXT")


@reprocess.command("start")
@click.argument("plan_id", callback=_an_id)
@click.option("--name", required=True, help="The campaign's name (lower-case letters, digits, '-').")
@click.option("--reason", required=True, help="Why (kept with the campaign).")
@click.option("--max-concurrent", default=2, show_default=True, help="At most this many of its runs at once.")
@click.option("--pause-after", default=3, show_default=True, help="Pause itself after this many failed instances.")
@click.option("--priority", default=0, show_default=True,
              help="Run priority (0-99); the shipped recipes run new observations at 10-60.")
@operator_command
@click.pass_context
@_campaign_errors
def reprocess_start(ctx, plan_id, name, reason, max_concurrent, pause_after, priority):
    """Run a saved plan as a reprocessing campaign: new datasets of the same products; the old stay ACTIVE
    until `obsflow datasets decide`."""
    import getpass

    import datetime as dt

    asked = dt.datetime.now(dt.timezone.utc).isoformat()
    campaign = _campaigns(ctx).start_plan(plan_id, name, getpass.getuser(), reason, max_concurrent=max_concurrent,
                                          pause_after_failures=pause_after, priority=priority)
    started = next((e for e in campaign.history if e["status"] == statuses.CAMPAIGN_RUNNING), None)
    if started and started["at"] < asked:  # the same start twice: one campaign, and the second is told
        click.echo(f"plan {plan_id} was already started as campaign {campaign.name} by {started['by']} at "
                   f"{started['at']}: nothing more was started")
    click.echo(f"campaign {campaign.name} is {campaign.status}: {len(campaign.instance_ids)} instance(s); "
               f"`obsflow campaigns show {campaign.name}` follows it")


@main.group()
def campaigns():
    """Campaigns: named groups of runs with a definer, a reason, a selection and a blast radius."""


@campaigns.command("create")
@click.argument("name")
@click.option("--reason", required=True, help="Why (kept with the campaign).")
@click.option("--type", "campaign_type", default="commissioning", show_default=True,
              type=click.Choice(["reprocessing", "developer", "commissioning", "calibration", "test"]))
@click.option("--definer", default=None, help="Who defines it (default: the login name).")
@click.option("--recipe", metavar="NAME[@VERSION]", required=True, help="The recipe (version) to run.")
@click.option("--ids", "ids_file", metavar="FILE.json", help="An ID set: a JSON list of frame, OP, candidate or "
              "dataset ids, or an object with lists under frames, ops, candidates, datasets.")
@click.option("--include-tag", multiple=True, metavar="TAG", help="Add what carries this tag.")
@click.option("--exclude-tag", multiple=True, metavar="TAG", help="Leave out what carries this tag.")
@click.option("--where", multiple=True, metavar="FILTER=VALUE", help="A catalogue query: the datasets `obsflow datasets "
              "list` gives for these filters (uses_frame, recipe, code_version, calibration, status, campaign).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Configuration overrides.")
@click.option("--max-concurrent", default=2, show_default=True, help="At most this many of its runs at once.")
@click.option("--pause-after", default=3, show_default=True, help="Pause itself after this many failed instances.")
@click.option("--priority", default=0, show_default=True, help="Run priority (0-99); new observations run at 10-60.")
@click.option("--calibration", metavar="DATASET", help="An experimental calibration dataset the runs use instead.")
@click.option("--task-image", metavar="IMAGE", help="Developer: another task image (on AWS a job definition revision; "
              "locally path:DIR, a directory holding an obsflow_tasks package).")
@click.option("--retention-days", type=int, help="Developer: keep its outputs this long (default 14), then the sweep "
              "deletes them unless something uses them.")
@click.option("--keep-intermediates", is_flag=True, help="Developer: keep every task output in its datasets.")
@operator_command
@click.pass_context
@_campaign_errors
def campaigns_create(ctx, name, reason, campaign_type, definer, recipe, ids_file, include_tag, exclude_tag, where,
                     overrides, max_concurrent, pause_after, priority, calibration, task_image, retention_days,
                     keep_intermediates):
    """Define a campaign (DRAFT); `campaigns start NAME` runs it.

    A developer campaign (--type developer) writes under dev/<name>/ in the data bucket,
    never touches or deprecates production datasets, never notifies a PI, and is swept
    after its retention.
    """
    import getpass

    from obsflow.runs.campaigns import read_id_set

    selection = {"ids": read_id_set(_read_json_file(ids_file, "the ID set")) if ids_file else {},
                 "include_tags": list(include_tag), "exclude_tags": list(exclude_tag),
                 "query": {k.replace("-", "_"): v for k, v in _key_values(where, "--where").items()}}
    campaign = _campaigns(ctx).create(name, campaign_type, definer or getpass.getuser(), reason, recipe=recipe,
                                      selection=selection, overrides=_key_values(overrides) or None,
                                      max_concurrent=max_concurrent, pause_after_failures=pause_after, priority=priority,
                                      calibration=calibration, task_image=task_image, retention_days=retention_days,
                                      keep_intermediates=keep_intermediates)
    click.echo(f"campaign {campaign.name} ({campaign.campaign_type}, {campaign.recipe}) is {campaign.status}; "
               f"`obsflow campaigns start {campaign.name}` runs it")


@campaigns.command("edit")
@click.argument("name")
@click.option("--reason", help="A new reason.")
@click.option("--max-concurrent", type=int, help="At most this many of its runs at once.")
@click.option("--pause-after", type=int, help="Pause itself after this many failed instances.")
@click.option("--priority", type=int, help="Run priority (0-99); a DRAFT's only.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Configuration overrides (replace them); a DRAFT's only.")
@operator_command
@click.pass_context
@_campaign_errors
def campaigns_edit(ctx, name, reason, max_concurrent, pause_after, priority, overrides):
    """Change a DRAFT or PAUSED campaign (pause a running one first). Once started, its reason and blast radius
    can change; its inputs, recipe, overrides and priority are in its instances."""
    import getpass

    changes = {k: v for k, v in (("reason", reason), ("max_concurrent", max_concurrent),
                                 ("pause_after_failures", pause_after), ("priority", priority),
                                 ("overrides", _key_values(overrides) or None if overrides else None)) if v is not None}
    if not changes:
        raise click.UsageError("nothing to change: give --reason, --max-concurrent, --pause-after, --priority or --set")
    campaign = _campaigns(ctx).edit(name, getpass.getuser(), **changes)
    click.echo(f"campaign {campaign.name} edited ({', '.join(sorted(changes))}); it is {campaign.status}")


CAMPAIGN_MOVES = {
    "start": "Insert a DRAFT campaign's instances and let the submitter run them.",
    "pause": "Start none of its runs until it is resumed (runs already going finish).",
    "resume": "Let a PAUSED campaign's runs start again.",
    "cancel": "Start none of its runs, ever: the unstarted ones end CANCELLED with who and why (runs already "
              "going finish).",
    "accept": "Data quality keeps what a COMPLETED campaign (every instance ended) made.",
    "reject": "Data quality does not keep what a COMPLETED campaign made (decide its datasets one by one).",
}


def _campaign_move(verb: str, needs_reason: bool):
    @campaigns.command(verb, help=CAMPAIGN_MOVES[verb])
    @click.argument("name")
    @click.option("--reason", default="", required=needs_reason, help="Why (kept in the campaign's history).")
    @operator_command
    @click.pass_context
    @_campaign_errors
    def command(ctx, name, reason):
        import getpass

        service, who = _campaigns(ctx), getpass.getuser()
        campaign = {"start": lambda: service.start(name, who), "pause": lambda: service.pause(name, who, reason),
                    "resume": lambda: service.resume(name, who), "cancel": lambda: service.cancel(name, who, reason),
                    "accept": lambda: service.accept(name, who, reason),
                    "reject": lambda: service.reject(name, who, reason)}[verb]()
        click.echo(f"campaign {campaign.name} is {campaign.status}" +
                   (f" ({len(campaign.instance_ids)} instance(s))" if verb == "start" else ""))

    return command


for _verb, _reason in (("start", False), ("pause", False), ("resume", False), ("cancel", True), ("accept", True),
                       ("reject", True)):
    _campaign_move(_verb, _reason)


@campaigns.command("sweep")
@click.option("--now", "as_of", metavar="ISO-8601", help="Sweep as of this time (default: now).")
@operator_command
@click.pass_context
def campaigns_sweep(ctx, as_of):
    """Delete developer datasets past their retention; one still used by another campaign or dataset is kept,
    and the user is named. The backstop's schedule runs it too."""
    report = _campaigns(ctx).sweep(_as_of(as_of))
    click.echo(f"checked {report['checked']} developer dataset(s); deleted {len(report['deleted'])}: "
               f"{', '.join(report['deleted']) or '-'}")
    for dataset_id, users in report["refused"].items():
        click.echo(f"refused to delete {dataset_id}: in use by {'; '.join(users)}")


@campaigns.command("list")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
@click.pass_context
def campaigns_list(ctx, as_json):
    """Every campaign, oldest first."""
    import dataclasses

    rows = [{**dataclasses.asdict(c), "instances": len(c.instance_ids)} for c in _campaigns(ctx).store.all_campaigns()]
    console.emit(rows, ["name", "campaign_type", "status", "recipe", "plan_id", "instances", "definer", "reason",
                        "created_at"], as_json, "no campaigns")


@campaigns.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object on stdout.")
@operator_command
@click.pass_context
def campaigns_show(ctx, name, as_json):
    """One campaign: definition, progress (instances by state), outputs, QC metrics and cost."""
    detail = _campaigns(ctx).detail(name)
    if as_json:
        click.echo(console.to_json(detail))
        return
    for field in ("name", "campaign_type", "status", "status_reason", "definer", "reason", "created_at", "plan_id",
                  "recipe", "overrides", "selection", "max_concurrent", "pause_after_failures", "priority", "progress"):
        if detail.get(field) not in (None, {}, []):
            click.echo(f"{field:<21} {console.cell(detail[field])}")
    cost = detail["cost"]
    click.echo(f"{'cost':<21} ${cost['usd']:.6f} over {cost['runs']} run(s) ({cost['batch_vcpu_s']:g} vCPU-s of Batch, "
               f"{cost['tasks_reused']} task(s) reused)")
    click.echo("\ninstances:")
    console.table(detail["instances"], ["instance_id", "recipe", "proposal_id", "state", "state_reason"], "")
    click.echo("\noutputs:")
    console.table(detail["outputs"], ["dataset_id", "kind", "product_id", "status", "location"], "none yet")
    click.echo("\nQC metrics over its datasets:")
    console.table([{"value": k, **v} for k, v in detail["metrics"].items()],
                  ["value", "datasets", "min", "median", "max"], "none yet")
    click.echo("\nhistory:")
    console.table(detail["history"], ["at", "status", "by", "why"], "")


@main.group()
def tags():
    """Tags: human statements about frames, OPs, candidates or datasets (who, when, why) that select campaign inputs."""


@tags.command("add")
@click.argument("tag")
@click.option("--ids", "ids_file", metavar="FILE.json", required=True, help="A JSON list of the ids to tag.")
@click.option("--reason", required=True, help="Why, e.g. 'bad seeing' (kept with each statement).")
@operator_command
@click.pass_context
def tags_add(ctx, tag, ids_file, reason):
    """Tag ids (idempotent: an id tagged before keeps its first statement)."""
    import getpass

    from obsflow.runs.campaigns import check_name

    try:
        check_name(tag)
    except ValueError as exc:
        raise click.BadParameter(str(exc).replace("campaign name", "tag"), param_hint="TAG") from exc
    ids = _read_json_file(ids_file, "the ID list")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i.strip() for i in ids):
        raise click.BadParameter(f"{ids_file} is not a JSON list of ids", param_hint="--ids")
    service = _campaigns(ctx)
    added = service.store.add_tags(tag, ids, getpass.getuser(), reason, service.runs.clock())
    click.echo(f"tagged {added} id(s) {tag!r}" + (f" ({len(set(ids)) - added} were already)" if added < len(set(ids)) else ""))


@tags.command("list")
@click.argument("tag", required=False)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
def tags_list(tag, as_json):
    """Tag statements: what is tagged, by whom, when and why (one TAG, or all)."""
    from obsflow.tables import tags as tags_table

    items = tags_table.tagged(tag) if tag else tags_table.all_tags()
    console.emit([t.attribute_values for t in items], ["tag", "target_id", "tagged_by", "tagged_at", "reason"],
                 as_json, "no tags")


@main.group()
def catalogue():
    """The processing catalogue: recipe instances as a dependency graph, and their states."""


@catalogue.command("list")
@click.option("--state", type=click.Choice(INSTANCE_STATES), help="Only instances in this state.")
@click.option("--reference", metavar="NIGHT/PROPOSAL", help="Only the instances of this reference, e.g. 2026-11-20/pid_1_23.")
@click.option("--uses", metavar="ID", help="Only the instances that use this frame (file id), OP, dataset or instance.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
def catalogue_list(state, reference, uses, as_json):
    """Recipe instances, oldest first, with their state and why, estimates and when last processed.

    \b
    States (derived from each instance's runs, after the Gemini archive's catalogue):
      NEVER_EXECUTED, WAITING (for an upstream instance, named in the reason),
      QUEUED, QUEUED_FOR_REEXECUTION (an input changed after it succeeded), RUNNING,
      SUCCEEDED (at least once), ERROR (an error expected to persist until someone acts).
    """
    from obsflow import catalogue as read

    console.emit(read.instance_rows(state, reference, uses),
                 ["instance_id", "recipe", "reference", "state", "state_reason", "runs", "estimated_cpu_s",
                  "date_processed"], as_json, "no recipe instances" + (f" in state {state}" if state else ""))


@catalogue.command("show")
@click.argument("instance_id", callback=_an_id)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object on stdout.")
@operator_command
def catalogue_show(instance_id, as_json):
    """One instance: inputs by role, upstream and downstream instances, runs with estimates and actuals."""
    from obsflow import catalogue as read

    detail = read.instance_detail(instance_id)
    if as_json:
        click.echo(console.to_json(detail))
        return
    console.fields(detail, ("instance_id", "recipe", "rule", "reference", "state", "state_reason", "candidates",
                            "estimated_cpu_s", "estimated_bytes", "release_date", "date_processed", "dataset_id",
                            "input_dataset"), 16)
    click.echo("\ninputs:")
    for role, refs in detail["inputs"].items():
        click.echo(f"  {role:<12} {', '.join(refs)}")
    for direction in ("upstream", "downstream"):
        click.echo(f"\n{direction}:")
        console.table(detail[direction], ["instance_id", "recipe", "state", "dataset_id"], "  none")
    click.echo("\nruns:")
    console.table(detail["runs"], ["run_id", "status", "estimated_cpu_s", "measured_cpu_s", "output_bytes",
                                   "dataset_id", "finished_at"], "  none yet")


@catalogue.command("replan")
@click.argument("instance_id", callback=_an_id)
@operator_command
@click.pass_context
def catalogue_replan(ctx, instance_id):
    """Plan again an instance that could not be planned (state ERROR, with a "planning" ticket saying why), once
    what its ticket names is fixed: the next submitter pass plans it."""
    from obsflow.runs.service import NotAllowed

    try:
        instance = _runs(ctx).replan(instance_id)
    except NotAllowed as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{instance_id} is {instance.state} again: the next submitter pass plans it "
               f"(`obsflow catalogue show {instance_id}`)")


@catalogue.command("tree")
@click.argument("identifier", metavar="ID", callback=_an_id)
@operator_command
def catalogue_tree(identifier):
    """The dependency tree of a candidate, instance (ri-...) or dataset (ds-...), drawn as text.

    Inputs at the top, each consumer indented below what it consumes; * marks the instances ID names.
    """
    from obsflow import catalogue as read

    for line in read.tree(identifier):
        click.echo(line)


@main.group()
def calibrations():
    """Master calibrations: made once per calibration set and shared by the science that needs them."""


@calibrations.command("list")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
def calibrations_list(as_json):
    """Calibration datasets, oldest first: master darks per exposure time, gain and bad-pixel mask."""
    from obsflow import catalogue as read

    console.emit(read.calibration_rows(), ["dataset_id", "proposal_id", "reference", "status", "recipe", "files",
                                           "created_at"], as_json, "no calibration datasets yet")


@calibrations.command("for")
@click.argument("candidate_id", callback=_an_id)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
def calibrations_for(candidate_id, as_json):
    """Which calibration files a candidate's datasets need, and whether they exist yet."""
    from obsflow import catalogue as read

    needed = read.calibrations_for(candidate_id)
    if as_json:
        click.echo(console.to_json(needed))
        return
    if not needed:
        click.echo(f"candidate {candidate_id} uses no calibration instance")
    for entry in needed:
        click.echo(f"{entry['instance_id']} ({entry['recipe']}) {entry['state']} from "
                   f"{', '.join(entry['calibration_inputs'])}; needed by {entry['for_instance']}")
        console.table(entry["files"], ["name", "key", "sha256"], "  no dataset yet")


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
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="Port to serve on (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Name or address to listen on; requests must name it (Host: HOST:PORT). The monitor has no "
                   "authentication: on anything but loopback it must sit behind a proxy with authentication.")
@operator_command
@click.pass_context
def monitor(ctx, port, host):
    """A read-only web page of the stage, refreshing itself: OPs filling up, candidates and why they wait,
    runs with each recipe's DAG, task states and durations, tickets with what to do, datasets with their
    quality plots and QC values, the processing catalogue and campaigns. Ctrl-C stops it.

    The monitor has no authentication: whoever reaches it reads the stage with your credentials. It answers
    only requests addressed to its own host name and port (421 otherwise, so a web page cannot read it by DNS
    rebinding); with a --host other than loopback it must sit behind a proxy with authentication."""
    import errno

    from obsflow.monitor.reads import StageReads
    from obsflow.monitor.server import Monitor, is_loopback

    settings = _settings(ctx)
    if not is_loopback(host):
        click.echo(f"warning: the monitor has no authentication: on {host} it lets anyone who reaches it read stage "
                   f"'{settings.stage}' (tickets, proposals, datasets) with your credentials. It must sit behind a "
                   f"proxy with authentication (one that sends Host: {host}:<port>), or keep --host on loopback.",
                   err=True)
    try:
        served = Monitor(StageReads(settings), settings.stage, port=port, host=host)
    except OSError as exc:
        advice = "choose another --port" if exc.errno == errno.EADDRINUSE else "is --host an address of this machine?"
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}; {advice}") from exc
    click.echo(f"obsflow monitor of stage '{settings.stage}' at {served.url} (read-only; Ctrl-C stops it)")
    try:
        served.serve_forever()
    except KeyboardInterrupt:
        click.echo("monitor stopped")


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
@click.option("--now", "as_of", metavar="ISO-8601",
              help="Run the job as of this time (default: now). A day still to come is a dry run: nothing changes.")
@click.option("--release-early", "reason", metavar="REASON",
              help="With a --now still to come: release what is due by then now, recorded on each dataset with your "
                   "name and this reason (embargo is the PI's: have their agreement).")
@operator_command
@click.pass_context
def release(ctx, as_of, reason):
    """Run the daily release job: datasets whose embargo has ended are re-tagged public (the archive's public
    role may read them), and those still under embargo are dated again from the proposal documents in force."""
    import getpass

    from obsflow.runs.releases import EarlyRelease
    from obsflow.services import release_service

    now = _as_of(as_of)
    if reason is not None and not reason.strip():
        raise click.BadParameter("say why the datasets are released before their release date", param_hint="--release-early")
    report = release_service(_settings(ctx)).release(now, EarlyRelease(getpass.getuser(), reason) if reason else None)
    click.echo(f"as of {now.date().isoformat()}: {'would release' if report.dry_run else 'released'} "
               f"{len(report.released)} dataset(s): "
               f"{', '.join(report.released) or '-'}; {report.under_embargo} still under embargo"
               + "".join(f"\n  {r['dataset_id']}: release date {r['was']} -> {r['now']} (its proposal changed)"
                         for r in report.redated))
    if report.dry_run:
        click.echo(f"dry run: {now.date().isoformat()} is still to come, so nothing was changed. "
                   "`--release-early REASON` releases them now, recorded with your name and the reason")
    if report.failed:
        raise click.ClickException(
            f"{len(report.failed)} dataset(s) stay under embargo, their objects could not all be tagged: "
            + "; ".join(f"{f['dataset_id']} ({f['error']})" for f in report.failed)
            + "; run `obsflow release` again (tagging twice is harmless)")


@main.command()
@click.option("--reason", default="", help="Why (kept with the setting, for the next operator).")
@operator_command
@click.pass_context
def pause(ctx, reason):
    """Stop starting runs. Candidates still become READY; their runs wait in priority order."""
    _runs(ctx).pause(reason)
    click.echo(f"automated submission paused for stage '{_settings(ctx).stage}'; `obsflow resume` restarts it")


@main.command()
@operator_command
@click.pass_context
def resume(ctx):
    """Start runs again: the waiting READY runs start in priority order, within the run slots."""
    from obsflow import queries

    settings = _settings(ctx)
    _runs(ctx).resume()
    waiting = len(queries.run_rows(statuses.READY))
    click.echo(f"automated submission resumed for stage '{settings.stage}'; {waiting} run(s) waiting to start")


@main.group()
def pipelines():
    """Instrument teams' published pipelines (DKIST's dkist-processing-vbi, -visp, -test, ...), run unchanged.

    \b
    `add PACKAGE==VERSION` builds the pipeline's own environment (a venv from the package's pinned set,
    never obsflow's own; on AWS a task image per pipeline version) and registers each of its workflows as
    a recipe version, named after the workflow and versioned as the package. A candidate names one in its
    "recipe" field, or a discovery rule chooses it. obsflow hosts its tasks: scratch, Redis, the metadata
    store, staging from S3 and collecting the outputs into the catalogue.
    """


def _pipelines(ctx):
    from obsflow import aws
    from obsflow.pipelines.service import PipelineService
    from obsflow.runs.platform import BatchJobDefinitions

    settings = _settings(ctx)
    return PipelineService(settings, aws.client(settings, "s3"), lambda recipe: _register_recipe(settings, recipe),
                           BatchJobDefinitions(settings).for_pipeline)


@pipelines.command("add")
@click.argument("requirement", metavar="PACKAGE==VERSION")
@operator_command
@click.pass_context
def pipelines_add(ctx, requirement):
    """Build PACKAGE==VERSION's environment (once) and register its workflows as recipes."""
    import getpass

    from obsflow.errors import NotFound
    from obsflow.pipelines.environments import EnvironmentError_

    try:
        record = _pipelines(ctx).add(requirement, getpass.getuser(), log=click.echo)
    except (EnvironmentError_, NotFound) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{record['name']}: {len(record['workflows'])} workflow(s) registered as recipes; "
               f"`obsflow pipelines show {record['package']}` lists them")


@pipelines.command("list")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
@click.pass_context
def pipelines_list(ctx, as_json):
    """Pipelines added to this stage, with their environments and workflows."""
    rows = [{**p, "workflows": len(p["workflows"]), "size_gb": round((p.get("size_bytes") or 0) / 1e9, 2)}
            for p in _pipelines(ctx).list()]
    console.emit(rows, ["package", "version", "workflows", "size_gb", "build_seconds", "added_by", "added_at"], as_json,
                 "no pipelines added; `obsflow pipelines add dkist-processing-vbi==1.23.4` adds DKIST's VBI pipeline")


@pipelines.command("show")
@click.argument("name", metavar="PACKAGE[==VERSION]")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object on stdout.")
@operator_command
@click.pass_context
def pipelines_show(ctx, name, as_json):
    """One pipeline: its environment and each workflow's recipe."""
    record = _pipelines(ctx).show(name)
    if as_json:
        click.echo(console.to_json(record))
        return
    console.fields(record, ("name", "environment", "python", "build_seconds", "size_bytes", "parameters", "added_by",
                            "added_at"), 14)
    click.echo("\nworkflows (each a recipe; `obsflow recipes show RECIPE` draws its DAG):")
    console.table(record["workflows"], ["workflow", "recipe", "version", "instrument", "tasks", "resource_classes"], "")


@main.group()
def rules():
    """The discovery rules in force: which recipe applies to which candidate, with the role of each input.

    \b
    obsflow ships rules for its own recipes; `register FILE` puts a stage's own in force instead (for example
    rules that choose a hosted pipeline's recipe for an instrument), `register --shipped` goes back.
    """


@rules.command("show")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
@click.pass_context
def rules_show(ctx, as_json):
    """The rules in force, in dependency order, and where they come from."""
    recipes = _runs(ctx).recipes
    registered = recipes.registered_rules()
    rows = [{"name": r.name, "instrument": r.instrument, "task_types": ",".join(r.task_types), "recipe": r.recipe,
             "group_by": r.group_by, "inputs": ", ".join(i.rule or i.source for i in r.inputs)} for r in recipes.rules()]
    if not as_json:
        click.echo("registered by " + f"{registered['registered_by']} at {registered['registered_at']}"
                   if registered else "the rules obsflow ships (none registered)")
    console.emit(rows, ["name", "instrument", "task_types", "recipe", "group_by", "inputs"], as_json, "no rules")


@rules.command("register")
@click.argument("file", type=click.Path(exists=True, dir_okay=False), required=False)
@click.option("--shipped", is_flag=True, help="Put the shipped rules back in force.")
@operator_command
@click.pass_context
def rules_register(ctx, file, shipped):
    """Put the rules of FILE (YAML or JSON, as shared/obsflow/recipes/shipped/discovery-rules.yaml) in force
    instead of the shipped ones, for candidates that become READY from now on; every recipe a rule names must be
    registered."""
    import datetime as dt
    import getpass

    from obsflow.recipes.definitions import parse_rules
    from obsflow.recipes.model import RecipeError

    recipes = _runs(ctx).recipes
    if shipped == bool(file):
        raise click.UsageError("give FILE, or --shipped")
    if shipped:
        recipes.shipped_rules_again()
        click.echo("the shipped discovery rules are in force")
        return
    try:
        parsed = parse_rules(Path(file).read_text(), file)
    except RecipeError as exc:
        raise click.ClickException(str(exc)) from exc
    recipes.register_rules(parsed, getpass.getuser(), dt.datetime.now(dt.timezone.utc).isoformat())
    click.echo(f"{len(parsed)} discovery rule(s) of {file} in force: {', '.join(r.name for r in parsed)}")


@main.group()
def docs():
    """Algorithm documentation of the registered recipes."""


@docs.command("build")
@click.argument("directory", type=click.Path(file_okay=False))
@operator_command
def docs_build(directory):
    """Write static pages to DIRECTORY: one per recipe version and one per task, each task documented once and
    linked from every recipe version that runs it (a hosted pipeline's task links to DKIST's documentation and the
    package version's source; obsflow's carry their documentation and code)."""
    from obsflow import __version__, docs as documentation
    from obsflow.recipes import registry
    from obsflow.tables import recipes

    versions = [registry.registered(item.name, item.version) for item in recipes.all_recipes()]
    files = documentation.build(versions, __version__)
    root = Path(directory)
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, encoding="utf-8")
    tasks = sum(p.startswith("tasks/") for p in files)
    click.echo(f"{len(versions)} recipe version(s) and {tasks} task(s) documented in {root}/ (open {root}/index.html)")


if __name__ == "__main__":
    main()
