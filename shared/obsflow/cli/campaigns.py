"""Reprocessing plans, campaigns and tags."""

from __future__ import annotations


import click

from obsflow import console, statuses
from obsflow.cli.app import main
from obsflow.cli.common import (
    JSON_HELP,
    _an_id,
    _as_of,
    _actor,
    _campaign_errors,
    _campaigns,
    _key_values,
    _qc_filters,
    _qc_where,
    _read_id_list,
    _read_json_file,
    _refused,
    operator_command,
)


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
@click.option("--bad-frames", is_flag=True, help="Frames marked bad (`obsflow frames mark-bad`): ACTIVE datasets made "
              "from one, each with the bad frames it used; their copies leave them out.")
@click.option("--superseded", metavar="DATASET", help="A dataset data quality deprecated: ACTIVE datasets made from "
              "it (their copies use the version that replaced it).")
@click.option("--datasets", "datasets_file", metavar="FILE.json", help="An explicit list: a JSON list of dataset ids.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Configuration overrides for the copies.")
@click.option("--where", multiple=True, metavar="qc.METRIC<VALUE", callback=_qc_where,
              help="Only the affected datasets whose QC value "
              "passes (operators <, <=, >, >=, =; repeat to AND several): it narrows what the change selects.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@operator_command
@click.pass_context
@_campaign_errors
def reprocess_plan(ctx, recipe, parameter, calibration, frame, bad_frames, superseded, datasets_file, overrides,
                   where, as_json):
    """Print and save what a change would reprocess, running nothing.

    Each affected dataset, the copy of its instance updated to the change, the tasks that re-run
    and those whose outputs are reused, and the estimated CPU time, output size and cost (price
    table: OBSFLOW_PRICES). Several selectors narrow each other. The plan follows the catalogue
    down: every ACTIVE dataset made from one it re-makes (science from a calibration, a summary
    from science) is copied too, made from the copy. Start it with `reprocess start`.
    """
    import getpass

    from obsflow.runs.reprocessing import Change

    service = _campaigns(ctx)
    listed = tuple(_read_json_file(datasets_file, "the dataset list")) if datasets_file else ()
    change = Change(recipe=recipe, parameter=parameter, calibration=calibration, frame=frame, bad_frames=bad_frames,
                    datasets=listed, overrides=_key_values(overrides),
                    supersede=(service.planner.superseded(superseded),) if superseded else (), qc=tuple(map(str, where)))
    plan = service.planner.plan(change, getpass.getuser())
    if as_json:
        click.echo(console.to_json(plan))
        return
    totals = plan["totals"]
    click.echo(f"plan {plan['plan_id']}: {console.cell(plan['change'])}")
    console.table([{**i, "rerun": ",".join(i["tasks_rerun"]), "reused": ",".join(i["tasks_reused"]) or "-",
                    "changes": i["configuration_changes"] or "-", "cpu_s": i["estimated_cpu_s"],
                    "usd": f"{i['estimated_usd']:.4f}"} for i in plan["items"]],
                  ["dataset_id", "kind", "proposal_id", "recipe_from", "recipe_to", "changes",
                   *(["bad_frames"] if bad_frames else []), "made_from", "rerun", "reused", "cpu_s", "usd"],
                  "no ACTIVE dataset is affected")
    click.echo(f"\n{totals['datasets']} dataset(s), {totals['downstream']} of them made from others it re-makes; "
               f"{totals['tasks_rerun']} task run(s), {totals['tasks_reused']} reused; "
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
    started = next((e for e in campaign.history
                    if e["status"] in (statuses.CAMPAIGN_RUNNING, statuses.AWAITING_APPROVAL)), None)
    if started and started["at"] < asked:  # the same start twice: one campaign, and the second is told
        click.echo(f"plan {plan_id} was already started as campaign {campaign.name} by {started['by']} at "
                   f"{started['at']}: nothing more was started")
    click.echo(f"campaign {campaign.name} is {campaign.status}: {len(campaign.instance_ids)} instance(s); "
               f"`obsflow campaigns show {campaign.name}` follows it")
    _say_if_awaiting(campaign)


def _where(where: tuple[str, ...]) -> dict:
    """A selection's --where: catalogue filters FILTER=VALUE (``query``) and QC filters qc.METRIC<VALUE (``qc``)."""
    from obsflow.qc import SYNTAX

    qc = [w for w in where if w.strip().startswith("qc.")]
    pairs = [w for w in where if w not in qc]
    compared = next((w for w in pairs if "<" in w or ">" in w), None)
    if compared is not None:
        raise click.BadParameter(f"{compared!r}: a QC filter starts with qc.: {SYNTAX}", param_hint="--where")
    return {"query": {k.replace("-", "_"): v for k, v in _key_values(tuple(pairs), "--where").items()},
            **({"qc": [str(f) for f in _qc_filters(qc)]} if qc else {})}


def _say_if_awaiting(campaign) -> None:
    if campaign.status == statuses.AWAITING_APPROVAL:
        click.echo(f"no run of it starts until it is approved: {campaign.status_reason}")


def _type_for_role(ctx, campaign_type: str) -> str:
    """A developer creates developer campaigns only: refused as the option is read, before the stage is touched."""
    _refused(_actor(ctx).check_campaign, "campaigns create", campaign_type)
    return campaign_type


def _campaign_as_role(ctx, action: str, name: str) -> None:
    """A developer's campaign actions are for developer campaigns only: refuse before anything changes."""
    actor = _actor(ctx)
    if actor.role is not None:
        _refused(actor.check_campaign, action, _campaigns(ctx).require(name).campaign_type, name)


@main.group()
def campaigns():
    """Campaigns: named groups of runs with a definer, a reason, a selection and a blast radius."""


@campaigns.command("create")
@click.argument("name")
@click.option("--reason", required=True, help="Why (kept with the campaign).")
@click.option("--type", "campaign_type", default="commissioning", show_default=True,
              type=click.Choice(["reprocessing", "developer", "commissioning", "calibration", "test"]),
              callback=lambda ctx, param, value: _type_for_role(ctx, value),
              help="The developer role creates developer campaigns only.")
@click.option("--definer", default=None, help="Who defines it (default: the login name).")
@click.option("--recipe", metavar="NAME[@VERSION]", required=True, help="The recipe (version) to run.")
@click.option("--ids", "ids_file", metavar="FILE.json", help="An ID set: a JSON list of frame, OP, candidate or "
              "dataset ids, or an object with lists under frames, ops, candidates, datasets.")
@click.option("--include-tag", multiple=True, metavar="TAG", help="Add what carries this tag.")
@click.option("--exclude-tag", multiple=True, metavar="TAG", help="Leave out what carries this tag.")
@click.option("--where", multiple=True, metavar="FILTER=VALUE", callback=lambda ctx, param, value: _where(value),
              help="A catalogue query: the datasets `obsflow datasets list` gives for these filters (uses_frame, "
              "recipe, code_version, calibration, status, campaign), and QC filters qc.METRIC<VALUE (operators <, <=, "
              ">, >=, =); several are ANDed.")
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
@click.option("--every", metavar="INTERVAL", help="Recur: evaluate the selection again every 12h, 14d, 2w ... and run "
              "what no earlier occurrence selected (until cancelled).")
@click.option("--cron", metavar="EXPRESSION", help="Recur on a five-field cron expression in UTC instead "
              "('0 3 * * 1': Mondays at 03:00).")
@operator_command
@click.pass_context
@_campaign_errors
def campaigns_create(ctx, name, reason, campaign_type, definer, recipe, ids_file, include_tag, exclude_tag, where,
                     overrides, max_concurrent, pause_after, priority, calibration, task_image, retention_days,
                     keep_intermediates, every, cron):
    """Define a campaign (DRAFT); `campaigns start NAME` runs it.

    A developer campaign (--type developer) writes under dev/<name>/ in the data bucket,
    never touches or deprecates production datasets, never notifies a PI, and is swept
    after its retention.

    A recurring campaign (--every or --cron) has its first occurrence when started; at each
    later one (the campaign-schedule function, every 5 minutes on AWS) it evaluates its
    selection again and runs only what is new. Each occurrence is recorded with what it
    selected (`campaigns show`); `campaigns occur NAME` runs the next one now.
    """
    import getpass

    from obsflow.runs.campaigns import read_id_set
    from obsflow.runs.schedules import schedule_of

    selection = {"ids": read_id_set(_read_json_file(ids_file, "the ID set")) if ids_file else {},
                 "include_tags": list(include_tag), "exclude_tags": list(exclude_tag),
                 **where}
    campaign = _campaigns(ctx).create(name, campaign_type, definer or getpass.getuser(), reason, recipe=recipe,
                                      selection=selection, overrides=_key_values(overrides) or None,
                                      max_concurrent=max_concurrent, pause_after_failures=pause_after, priority=priority,
                                      calibration=calibration, task_image=task_image, retention_days=retention_days,
                                      keep_intermediates=keep_intermediates, schedule=schedule_of(every, cron))
    recurs = f", recurring {campaign.schedule}" if campaign.schedule else ""
    click.echo(f"campaign {campaign.name} ({campaign.campaign_type}, {campaign.recipe}{recurs}) is {campaign.status}; "
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

    _campaign_as_role(ctx, "campaigns edit", name)
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
    "approve": "Let a campaign AWAITING_APPROVAL (estimated above the stage's approval size) run: the data-quality or "
               "operator role; who, when and why are kept. Approving it again changes nothing.",
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

        _campaign_as_role(ctx, f"campaigns {verb}", name)
        service, who, role = _campaigns(ctx), getpass.getuser(), _actor(ctx).role
        campaign = {"start": lambda: service.start(name, who), "pause": lambda: service.pause(name, who, reason),
                    "resume": lambda: service.resume(name, who), "cancel": lambda: service.cancel(name, who, reason),
                    "accept": lambda: service.accept(name, who, reason),
                    "reject": lambda: service.reject(name, who, reason),
                    "approve": lambda: service.approve(name, who, reason, role)}[verb]()
        click.echo(f"campaign {campaign.name} is {campaign.status}" +
                   (f" ({len(campaign.instance_ids)} instance(s))" if verb == "start" else ""))
        if verb == "approve":
            approval = campaign.approval
            click.echo(f"approved by {approval['approved_by']} ({approval['approved_as']}) at "
                       f"{approval['approved_at']}: {approval['reason']}")
        elif verb == "start":
            _say_if_awaiting(campaign)

    return command


for _verb, _reason in (("start", False), ("pause", False), ("resume", False), ("cancel", True), ("accept", True),
                       ("reject", True), ("approve", True)):
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

    from obsflow.runs.campaigns import approval_note

    rows = [{**dataclasses.asdict(c), "instances": len(c.instance_ids), "approval_note": approval_note(c)}
            for c in _campaigns(ctx).store.all_campaigns()]
    console.emit(rows, ["name", "campaign_type", "status", "recipe", "plan_id", "instances", "definer", "reason",
                        "approval_note", "created_at"], as_json, "no campaigns")


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
    for field in ("name", "campaign_type", "status", "status_reason", "approval_note", "definer", "reason",
                  "created_at", "plan_id", "recipe", "overrides", "selection", "max_concurrent",
                  "pause_after_failures", "priority", "schedule", "next_occurrence_at", "progress"):
        if detail.get(field) not in (None, {}, [], ""):
            click.echo(f"{field:<21} {console.cell(detail[field])}")
    cost = detail["cost"]
    click.echo(f"{'cost':<21} ${cost['usd']:.6f} over {cost['runs']} run(s), {cost['tasks_reused']} task(s) reused")
    for line in console.cost_lines(cost, " " * 22):
        click.echo(line)
    if "preview" in detail:  # a DRAFT: what starting it would run
        preview = detail["preview"]
        click.echo(f"\nif started now: {len(preview['instances'])} instance(s), about "
                   f"{console.cpu_time(preview['estimated_cpu_s'])}, {preview['estimated_bytes'] / 1e6:.1f} MB")
        console.table(preview["instances"], ["instance_id", "recipe", "proposal_id", "inputs", "estimated_cpu_s",
                                             "estimated_bytes"], "")
    if detail.get("schedule"):
        click.echo("\noccurrences:")
        console.table(detail["occurrences"], ["number", "at", "by", "frames", "datasets", "instances", "document"],
                      "none yet")
    click.echo("\ninstances:")
    console.table(detail["instances"], ["instance_id", "recipe", "proposal_id", "state", "state_reason"], "")
    click.echo("\noutputs:")
    console.table(detail["outputs"], ["dataset_id", "kind", "product_id", "status", "location"], "none yet")
    click.echo("\nQC metrics over its datasets:")
    console.table([{"value": k, **v} for k, v in detail["metrics"].items()],
                  ["value", "datasets", "min", "median", "max"], "none yet")
    click.echo("\nhistory:")
    console.table(detail["history"], ["at", "status", "by", "why"], "")
    click.echo("\ndocuments:")
    console.table(detail["documents"], ["name", "version", "size", "by", "at", "note"],
                  f"none (`obsflow campaigns attach {name} FILE --note TEXT` keeps one)")


@campaigns.command("attach")
@click.argument("name")
@click.argument("path", metavar="FILE", type=click.Path(exists=True, dir_okay=False))
@click.option("--note", required=True, help="What the document is and why it is kept (kept with it, with your name "
              "and the time).")
@operator_command
@click.pass_context
@_campaign_errors
def campaigns_attach(ctx, name, path, note):
    """Keep a document (a plan, a test report, minutes; at most 50 MiB) with a campaign, in the work bucket under
    campaigns/NAME/documents/, under FILE's own name (letters, digits, ' ', '.', '_', '-', '+', '(', ')').
    The same file again changes nothing; another file of the same name is kept beside it as its next version.
    `campaigns show NAME` and the monitor list them."""
    import getpass
    import os

    from obsflow.runs.campaigns import MAX_DOCUMENT_BYTES

    with open(path, "rb") as handle:
        body = handle.read(MAX_DOCUMENT_BYTES + 1)  # one byte more tells a file too large without reading it all
    service = _campaigns(ctx)
    record, new = service.attach(name, os.path.basename(path), body, note, getpass.getuser())
    if not new:
        click.echo(f"{record['name']} is already kept with campaign {name} (version {record['version']}, by "
                   f"{record['by']} at {record['at']}): nothing changed")
        return
    earlier = f"; the earlier version(s) of {record['name']} stay" if record["version"] > 1 else ""
    click.echo(f"kept {record['name']} (version {record['version']}, {record['size']} bytes) with campaign {name} at "
               f"s3://{service.runs.documents.location('work')}/{record['key']}{earlier}")


@campaigns.command("occur")
@click.argument("name")
@operator_command
@click.pass_context
@_campaign_errors
def campaigns_occur(ctx, name):
    """Run a recurring campaign's next occurrence now: what its selection matches that no earlier occurrence
    selected. Its schedule goes on from now."""
    import getpass

    record = _campaigns(ctx).occur_now(name, getpass.getuser())
    if record is None:
        click.echo(f"campaign {name}: another caller ran that occurrence at the same time; `obsflow campaigns show "
                   f"{name}` has it")
        return
    click.echo(f"campaign {name} occurrence {record['number']}: {record['instances']} instance(s) for "
               f"{record['frames']} new frame(s) and {record['datasets']} new dataset(s)")


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
    ids = _read_id_list(ids_file)
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
