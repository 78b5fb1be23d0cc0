"""The embedded local stack and the whole system on it: `local serve`, `demo`, `simulate`, `upload`, `info`,
`monitor`."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click

from obsflow import console
from obsflow.cli.app import main
from obsflow.cli.common import _an_id, _settings, operator_command


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
    quality plots and QC values, two versions of a product compared (/compare/OLD/NEW), the processing
    catalogue and campaigns. Ctrl-C stops it.

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
