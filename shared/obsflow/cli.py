"""The operator's tool: `obsflow`.

Talks to a deployed stack through the usual AWS credential chain, or to the local
stack with --endpoint-url / AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import functools
import signal
import sys
import threading

import click
from botocore.exceptions import EndpointConnectionError, NoCredentialsError, NoRegionError
from pynamodb.exceptions import PynamoDBException

from obsflow import __version__, console, queries, tables
from obsflow.errors import NotFound
from obsflow.settings import Settings

JSON_HELP = "Print a JSON array on stdout (for scripts)."


def _settings(ctx: click.Context) -> Settings:
    return ctx.find_object(dict)["settings"]


def operator_command(func):
    """Bind the tables to the chosen stack and turn AWS failures into advice."""

    @functools.wraps(func)
    @click.pass_context
    def wrapper(ctx, *args, **kwargs):
        settings = _settings(ctx)
        tables.bind(settings)
        try:
            return ctx.invoke(func, *args, **kwargs)
        except NotFound as exc:
            raise click.ClickException(str(exc)) from exc
        except (EndpointConnectionError, NoCredentialsError, NoRegionError, PynamoDBException) as exc:
            where = settings.endpoint_url or f"AWS region {settings.region}"
            cause = getattr(exc, "cause", None) or exc
            raise click.ClickException(
                f"cannot read obsflow stage '{settings.stage}' at {where}: {cause}\n"
                "Is `obsflow local serve` running (then pass --endpoint-url), or are your AWS "
                "credentials and --stage right?"
            ) from exc

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
    try:
        settings = Settings(stage=stage, AWS_DEFAULT_REGION=region, AWS_ENDPOINT_URL=endpoint_url)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    ctx.ensure_object(dict)["settings"] = settings


@main.command()
@click.option("--port", type=int, default=0, help="Loopback port for the local stack (default: any free port).")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed for the generated frames.")
def demo(port, seed):
    """Run the whole system locally on generated data, and summarise what happened.

    Starts the embedded local stack, generates realistic SPEC-0122 frames for one
    candidate (dark, gain and observe OPs), uploads them as the summit would (out of
    order, some twice, one broken, the manifest last) and ends when the candidate is READY.
    """
    from obsflow.demo import run_demo

    run_demo(click.echo, port=port, seed=seed)


@main.group()
def local():
    """The embedded local stack (moto on loopback, Lambdas in-process)."""


@local.command("serve")
@click.option("--port", type=int, default=4566, show_default=True, help="Loopback port to listen on.")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]), default="INFO",
              show_default=True, help="Log level of the in-process Lambdas (JSON lines on stdout).")
@click.pass_context
def local_serve(ctx, port, log_level):
    """Run the local stack until Ctrl-C.

    Any AWS client can use it: point boto3 or the AWS CLI at the printed endpoint.
    Uploads to the ingest bucket flow through S3 notifications, the ingest queue and
    the ingest handler, exactly as on AWS.
    """
    from obsflow.local.stack import LocalStack

    stack = LocalStack(port=port, stage=_settings(ctx).stage, log_level=log_level)
    try:
        stack.start()
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    info = stack.settings.describe()
    click.echo(f"obsflow local stack at {stack.endpoint_url} (stage '{stack.stage}')")
    click.echo(f"  ingest bucket: s3://{info['buckets']['ingest']}  ingest queue: {info['queues']['ingest']}")
    click.echo(f"  try: export AWS_ENDPOINT_URL={stack.endpoint_url} AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local")
    click.echo("       obsflow candidates list")
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
@click.pass_context
def info(ctx, as_json):
    """Endpoint and resource names (buckets, queues, tables) of the chosen stage."""
    description = _settings(ctx).describe()
    if as_json:
        click.echo(console.to_json(description))
        return
    click.echo(f"stage     {description['stage']}")
    click.echo(f"region    {description['region']}")
    click.echo(f"endpoint  {description['endpoint_url'] or '(AWS default)'}")
    for group in ("buckets", "queues", "tables"):
        for name, value in description[group].items():
            click.echo(f"{group[:-1]:<9} {name:<20} {value}")


@main.group()
def frames():
    """Raw frames received, and objects quarantined."""


@frames.command("list")
@click.option("--op", "op_id", help="Only the frames of this observing program.")
@click.option("--quarantined", is_flag=True, help="List quarantined objects and why, instead of frames.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
def frames_list(op_id, quarantined, as_json):
    """List frames (optionally of one OP), or the quarantined objects with their reasons."""
    if quarantined:
        console.emit(queries.quarantine_rows(), ["key", "version_id", "code", "reason", "quarantined_at"], as_json,
                     "no quarantined objects")
    else:
        console.emit(queries.frame_rows(op_id), ["file_id", "op_id", "task_type", "date_obs", "key", "size"], as_json,
                     "no frames" + (f" for OP {op_id}" if op_id else ""))


@main.group()
def ops():
    """Observing programs: expected against received frames."""


@ops.command("list")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
def ops_list(as_json):
    """Expected vs received frames per observing program."""
    console.emit(queries.op_rows(), ["op_id", "task_type", "expected", "received", "complete", "candidate_ids"], as_json,
                 "no observing programs yet")


@main.group()
def candidates():
    """Processing candidates: an observe OP and its calibration OPs."""


@candidates.command("list")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
def candidates_list(as_json):
    """Every candidate with its status and, when READY, when and why."""
    console.emit(queries.candidate_rows(),
                 ["candidate_id", "proposal_id", "instrument", "status", "ops", "ready_at", "ready_reason"], as_json,
                 "no candidates yet")


@candidates.command("show")
@click.argument("candidate_id")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object on stdout.")
@operator_command
def candidates_show(candidate_id, as_json):
    """One candidate, OP by OP: what has arrived and what is missing."""
    detail = queries.candidate_detail(candidate_id)
    if as_json:
        click.echo(console.to_json(detail))
        return
    for field in ("candidate_id", "proposal_id", "instrument", "recipe", "priority", "status", "created_at",
                  "ready_at", "ready_reason"):
        click.echo(f"{field:<13} {console.cell(detail.get(field))}")
    console.table(detail["ops"], ["op_id", "role", "task_type", "expected", "received", "complete", "missing"], "")


if __name__ == "__main__":
    main()
