"""Datasets, data-quality decisions, the processing catalogue, master calibrations and the release job."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from obsflow import console, statuses
from obsflow.cli.app import main
from obsflow.cli.common import (
    JSON_HELP,
    QC_WHERE_HELP,
    _actor,
    _an_id,
    _as_of,
    _catalogue,
    _provenance,
    _qc_where,
    _queries,
    _refused,
    _runs,
    _settings,
    emit_page,
    operator_command,
    page_options,
)
from obsflow.errors import NotFound
from obsflow.runs.domain import INSTANCE_STATES


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
@click.option("--where", multiple=True, metavar="qc.METRIC<VALUE", callback=_qc_where, help=QC_WHERE_HELP)
@page_options
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
@click.pass_context
def datasets_list(ctx, uses_frame, recipe, code_version, calibration, status, campaign, embargoed, where, limit,
                  next_token, as_json):
    """Datasets, newest first (with --embargoed alone: soonest release first), a page at a time, with kind, product,
    version, status and release date; filters combine (each is an index query). The pi-read role sees its own
    proposal's (OBSFLOW_PROPOSAL) and released ones only.

    \b
    QC filters select by the QC values recorded when each dataset was catalogued, e.g.
      obsflow datasets list --where 'qc.median_granulation_rms_contrast<0.05' --where qc.warnings=0
    (quote them: the shell reads < and > as redirections); each filtered metric is shown as a column.
    """
    provenance = _provenance()
    from obsflow.embargo import EMBARGOED

    qc = where
    filters = (uses_frame, recipe, code_version, calibration, status, campaign, EMBARGOED if embargoed else None)
    actor = _actor(ctx)
    metrics = list(dict.fromkeys(f"qc.{f.metric}" for f in qc))

    def read():
        page = provenance.dataset_page(*filters, qc=qc, limit=limit, next_token=next_token)
        return dataclasses.replace(page, rows=[
            {**row, **{m: (row.get("qc") or {}).get(m[3:]) for m in metrics}} for row in page.rows
            if actor.may_read(row.get("proposal_id"), released=not row.get("embargo"))])

    emit_page(read, ["dataset_id", "kind", "proposal_id", "product_id", "version_key", "status", "frame_count",
                     "recipe", "campaign", *metrics, "release_date", "created_at"], as_json,
              "no datasets" + (" match" if any(filters) or qc else " yet"))


@datasets.command("reindex-qc")
@operator_command
@click.pass_context
def datasets_reindex_qc(ctx):
    """Record the QC values of the datasets catalogued before QC values were recorded, so QC filters select them
    (once, after the upgrade; again, it finds nothing more to do). It reads each one's quality metrics in the data
    bucket: on AWS, as a data steward of the stage (its dataStewards)."""
    report = _runs(ctx).reindex_qc()
    done = report["reindexed"]
    click.echo(f"recorded the QC values of {len(done)} dataset(s)" + (f": {', '.join(done[:10])}" if done else "")
               + (f" and {len(done) - 10} more" if len(done) > 10 else "")
               + "; every dataset's QC values are now indexed (`obsflow datasets list --where qc.METRIC<VALUE`)")


@datasets.command("show")
@click.argument("dataset_id", callback=_an_id)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object on stdout.")
@operator_command
@click.pass_context
def datasets_show(ctx, dataset_id, as_json):
    """One dataset: where it is, its files with SHA-256, and the other versions of its product."""
    queries = _queries()

    detail = queries.dataset_detail(dataset_id)
    _check_read(ctx, detail)
    actor = _actor(ctx)  # the other versions of the product: only those the role may read
    detail["versions"] = [v for v in detail["versions"] if v["dataset_id"] == dataset_id or _readable(actor, v)]
    if as_json:
        click.echo(console.to_json(detail))
        return
    console.fields(detail, ("dataset_id", "proposal_id", "product_id", "version_key", "status", "superseded_by", "recipe",
                            "run_id", "candidate_id", "frame_count", "input_frames", "created_at", "access"), 14)
    click.echo(f"location       s3://{detail['bucket']}/{detail['prefix']}")
    if detail.get("cost"):
        click.echo(f"cost           {console.cost(detail['cost'])} (the run that made it)")
        for line in console.cost_lines(detail["cost"], " " * 15):
            click.echo(line)
    console.table(detail["files"], ["name", "size", "sha256", "task"], "")
    click.echo("\nversions of this product:")
    console.table(detail["versions"], ["dataset_id", "status", "version_key", "created_at"], "")
    if len(detail["versions"]) > 1:
        click.echo("(`obsflow datasets compare OLD NEW` shows what differs between two of them)")
    if detail.get("decisions"):
        click.echo("\ndata-quality decisions:")
        console.table(detail["decisions"], ["decision", "deprecated", "by", "at", "reason"], "")
    if detail.get("certification"):
        click.echo(f"\ncertification: {detail['certification']}")
        console.table([{**g, "result": "passed" if g["passed"] else f"FAILED: {g['failure']}"}
                       for g in detail.get("certification_gates") or []],
                      ["metric", "min", "max", "value", "result"], "  no QC gates: a person certifies it")
        console.table(detail.get("certification_history") or [], ["move", "to", "by", "at", "reason"], "")
        if detail["certification"] != statuses.CERTIFIED:
            click.echo(f"(`obsflow calibrations certify {dataset_id} --reason TEXT` or `obsflow calibrations reject "
                       f"{dataset_id} --reason TEXT`)")
    if detail.get("calibrations"):
        from obsflow.runs.association import describe

        click.echo("\ncalibrations used:")
        for upstream in detail["calibrations"]:
            click.echo(f"  {upstream['dataset_id']} ({upstream['recipe']}): {describe(upstream.get('association'))}")


@datasets.command("compare")
@click.argument("a_id", metavar="A", callback=_an_id)
@click.argument("b_id", metavar="B", callback=_an_id)
@click.option("--no-pixels", is_flag=True, help="Leave out the per-frame pixel statistics (they read every FITS "
              "product of both datasets, one pair at a time).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object on stdout (for scripts).")
@operator_command
@click.pass_context
def datasets_compare(ctx, a_id, b_id, no_pixels, as_json):
    """Compare two versions of a product, to decide which to keep (give the older as A).

    \b
    Shows, with every difference taken as B - A:
      provenance   the fields that differ (recipe version, version key, code version, ...),
                   the parameters and options that differ, code and library versions per task,
                   input frames added in B, removed from A or re-sent, and the datasets each was
                   made from (its master calibrations) with which version used them;
      QC values    each value of both (the quality metrics' QC table, and the medians over
                   frames, as `campaigns show` aggregates them), with B - A;
      frames       for each FITS product in both, matched by the observe frame it came from:
                   mean, RMS and largest |B - A| over the pixels finite in both, RMS(B - A)/RMS(A),
                   and the pixels finite in one version only; the frames in one only are listed.

    Datasets of different products are said to be so, and compared anyway. The pi-read role compares only
    datasets it may read (its own proposal's and released ones).
    """
    from obsflow.services import version_comparison

    comparison = version_comparison(_settings(ctx))
    a, b = comparison.records(a_id, b_id)
    _check_read(ctx, a)
    _check_read(ctx, b)
    if not as_json:
        click.echo(f"comparing {a_id} (A) with {b_id} (B)" + ("" if no_pixels else
                   ": reading the FITS products of both, a pair at a time ..."), err=True)
    result = comparison.compare(a, b, pixels=not no_pixels)
    if as_json:
        click.echo(console.to_json(result))
    else:
        _print_comparison(result)


def _print_comparison(result: dict) -> None:
    a, b = result["a"], result["b"]
    click.echo(f"A {a}\nB {b}\ndifferences are B - A")
    if result["note"]:
        click.echo(f"note: {result['note']}")
    click.echo("")
    console.table([{**row, "same": "yes" if row["same"] else "NO"} for row in result["summary"]],
                  ["field", "a", "b", "same"], "")
    click.echo("\nparameters and options:")
    console.table(result["configuration"], ["name", "a", "b"], "  the same")
    click.echo("\ncode and library versions:")
    console.table(result["code"], ["task", "item", "a", "b"], "  the same")
    inputs = result["inputs"]
    click.echo(f"\ninput frames: {len(inputs['added'])} added in B, {len(inputs['removed'])} removed from A, "
               f"{len(inputs['changed'])} in another version, {inputs['unchanged']} the same")
    changed = [{**f, "change": change} for change in ("added", "removed", "changed") for f in inputs[change]]
    if changed:
        console.table(changed, ["change", "file_id", "op_id", "role", "task_type"], "")
    click.echo("\nmade from (calibrations used):")
    console.table(result["upstream"], ["role", "dataset_id", "recipe", "version_key", "used_by"], "  no other dataset")
    click.echo("\nQC values:")
    console.table(result["qc"], ["name", "a", "b", "difference", "unit"], "  none in either (no quality metrics)")
    if "frames" in result:
        summary = result["frames_summary"]
        click.echo(f"\nframes: {summary['compared']} compared, {summary['identical']} identical, "
                   f"{summary['differing']} differing (largest |B - A| {console.cell(summary['largest_max_abs'])}); "
                   f"{summary['only_in_a']} only in A, {summary['only_in_b']} only in B")
        console.table(result["frames"], ["frame", "mean", "rms", "max_abs", "relative", "pixels", "finite_in_one_only",
                                         *(["error"] if summary["not_comparable"] else [])], "")
        for side in ("a", "b"):
            if result[f"frames_only_in_{side}"]:
                click.echo(f"\nonly in {side.upper()}:")
                console.table(result[f"frames_only_in_{side}"], ["frame", "file"], "")
    if result["same_product"]:
        click.echo(f"\nto decide: `obsflow datasets decide {b} --deprecate {a} | --keep-both | --reject --reason TEXT`")


def _readable(actor, version: dict) -> bool:
    from obsflow.tables import datasets as datasets_table

    item = datasets_table.get(version["dataset_id"])
    return item is not None and actor.may_read(item.proposal_id, released=not item.embargo)


def _check_read(ctx, dataset: dict) -> None:
    """The pi-read role reads its own proposal's datasets and released ones only."""
    _refused(_actor(ctx).check_read, dataset["dataset_id"], dataset.get("proposal_id"),
             released=not dataset.get("embargo"), release_date=dataset.get("release_date"))


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
    _check_read(ctx, dataset.attribute_values)
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
@click.pass_context
def datasets_provenance(ctx, dataset_id, as_json):
    """How a dataset was made: runs, tasks with code versions and manual influence, input frames."""
    queries = _queries()
    from obsflow.tables import datasets as datasets_table

    item = datasets_table.get(dataset_id)
    if item is not None:
        _check_read(ctx, item.attribute_values)

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


@main.group()
def catalogue():
    """The processing catalogue: recipe instances as a dependency graph, and their states."""


@catalogue.command("list")
@click.option("--state", type=click.Choice(INSTANCE_STATES), help="Only instances in this state.")
@click.option("--reference", metavar="NIGHT/PROPOSAL", help="Only the instances of this reference, e.g. 2026-11-20/pid_1_23.")
@click.option("--uses", metavar="ID", help="Only the instances that use this frame (file id), OP, dataset or instance.")
@page_options
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
def catalogue_list(state, reference, uses, limit, next_token, as_json):
    """Recipe instances, newest first, a page at a time, with their state and why, estimates and when last
    processed.

    \b
    States (derived from each instance's runs, after the Gemini archive's catalogue):
      NEVER_EXECUTED, WAITING (for an upstream instance, named in the reason),
      QUEUED, QUEUED_FOR_REEXECUTION (an input changed after it succeeded), RUNNING,
      SUCCEEDED (at least once), ERROR (an error expected to persist until someone acts).
    """
    read = _catalogue()

    emit_page(lambda: read.instance_page(state, reference, uses, limit, next_token),
              ["instance_id", "recipe", "reference", "state", "state_reason", "runs", "estimated_cpu_s",
               "date_processed"], as_json, "no recipe instances" + (f" in state {state}" if state else ""))


@catalogue.command("show")
@click.argument("instance_id", callback=_an_id)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object on stdout.")
@operator_command
def catalogue_show(instance_id, as_json):
    """One instance: inputs by role, upstream and downstream instances, runs with estimates and actuals."""
    read = _catalogue()

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
    read = _catalogue()

    for line in read.tree(identifier):
        click.echo(line)


@main.group()
def calibrations():
    """Master calibrations: made once per calibration set, certified by their QC gates or by data quality, and
    shared by the science that needs them."""


@calibrations.command("list")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
def calibrations_list(as_json):
    """Calibration datasets, oldest first: master darks per exposure time, gain and bad-pixel mask."""
    read = _catalogue()

    console.emit(read.calibration_rows(), ["dataset_id", "proposal_id", "reference", "status", "certification",
                                           "recipe", "files", "created_at"], as_json, "no calibration datasets yet")


def _certification_move(ctx, dataset_id: str, reason: str, move: str) -> None:
    import getpass

    from obsflow.runs.service import NotAllowed

    try:
        service = _runs(ctx)
        act = service.certify if move == "certify" else service.reject_calibration
        dataset = act(dataset_id, getpass.getuser(), reason)
    except (NotAllowed, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    last = dataset.certification_history[-1]
    click.echo(f"calibration {dataset_id} is {dataset.certification} ({last['by']} at {last['at']}: {last['reason']})")
    click.echo("the science waiting for it is planned at the next submitter pass" if move == "certify" else
               "the science waiting for it stays waiting, with a ticket each: make the calibration again")


@calibrations.command("certify")
@click.argument("dataset_id", callback=_an_id)
@click.option("--reason", required=True, help="Why it may be used (kept with the calibration, with who and when).")
@operator_command
@click.pass_context
def calibrations_certify(ctx, dataset_id, reason):
    """Certify a master calibration by hand (data-quality role): the science waiting for it is planned.

    \b
    A calibration is CERTIFIED by itself when catalogued with every QC gate of its recipe passed;
    one with a gate failed, or of a recipe without gates, is UNCERTIFIED and a `review:certification`
    ticket says which gate failed. `obsflow datasets show DATASET` shows its gates and QC values.
    A REJECTED calibration may be certified again.
    """
    _certification_move(ctx, dataset_id, reason, "certify")


@calibrations.command("reject")
@click.argument("dataset_id", callback=_an_id)
@click.option("--reason", required=True, help="Why it must not be used (kept with the calibration, with who and when).")
@operator_command
@click.pass_context
def calibrations_reject(ctx, dataset_id, reason):
    """Reject a master calibration (data-quality role): science not yet planned on it waits, with a ticket.

    Science already made from it is left as it is (`obsflow datasets list --calibration DATASET` lists it).
    """
    _certification_move(ctx, dataset_id, reason, "reject")


@calibrations.command("for")
@click.argument("candidate_id", callback=_an_id)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
def calibrations_for(candidate_id, as_json):
    """Which calibration files a candidate's datasets need, whether they exist and are certified yet, and the
    association's score: hours between science and calibration frames, and the setup matched (exposure time,
    filter, camera); 1.0 is the same setup at the same time, 0.5 the same setup a day away."""
    read = _catalogue()
    from obsflow.runs.association import describe as describe_association

    needed = read.calibrations_for(candidate_id)
    if as_json:
        click.echo(console.to_json(needed))
        return
    if not needed:
        click.echo(f"candidate {candidate_id} uses no calibration instance")
    for entry in needed:
        click.echo(f"{entry['instance_id']} ({entry['recipe']}) {entry['state']} from "
                   f"{', '.join(entry['calibration_inputs'])}; needed by {entry['for_instance']}")
        if entry["dataset_id"]:
            gates = ", ".join(f"{g['metric']} {g['value']} {'passed' if g['passed'] else 'FAILED'}"
                              for g in entry["certification_gates"]) or "no QC gates"
            click.echo(f"  dataset {entry['dataset_id']}: {entry['certification'] or 'not certified'} ({gates})")
            click.echo(f"  association: {describe_association(entry['association'])}"
                       + ("" if entry["association"] else " (the science has not been made from it yet)"))
        console.table(entry["files"], ["name", "key", "sha256"], "  no dataset yet")


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
    try:
        early = EarlyRelease(getpass.getuser(), reason) if reason is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--release-early") from exc
    report = release_service(_settings(ctx)).release(now, early)
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
