"""Recipes as data, the discovery rules, hosted pipelines and the generated documentation."""

from __future__ import annotations

from pathlib import Path

import click

from obsflow import console
from obsflow.cli.app import main
from obsflow.cli.common import JSON_HELP, _queries, _register_recipe, _runs, _settings, operator_command


@main.group()
def recipes():
    """Recipes: versioned DAGs of tasks, one state machine each."""


@recipes.command("list")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@operator_command
def recipes_list(as_json):
    """Registered recipes with their versions, instrument, priority and tasks."""
    queries = _queries()

    console.emit(queries.recipe_rows(), ["name", "version", "instrument", "automated", "priority", "tasks"], as_json,
                 "no recipes registered; `obsflow recipes register` registers this release's recipes")


@recipes.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object on stdout.")
@operator_command
def recipes_show(name, as_json):
    """One recipe: its DAG, parameters with valid and dated values, run configuration."""
    queries = _queries()

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
