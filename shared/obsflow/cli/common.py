"""What every command shares: the chosen stage's settings and services, the error advice, id checks."""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING

import click

from obsflow import console
from obsflow.errors import NotFound, TransientError
from obsflow.reads.pages import DEFAULT_LIMIT, MAX_LIMIT  # standard library alone: --help stays instant

if TYPE_CHECKING:
    from obsflow.settings import Settings


# A command imports what it uses when it runs (AWS clients, the catalogue, FITS): `--help` stays instant.

JSON_HELP = "Print a JSON array on stdout (for scripts)."


def page_options(func):
    """``--limit`` and ``--next`` of a listing that pages: a page costs the same however much is recorded."""
    func = click.option("--next", "next_token", metavar="TOKEN",
                        help="The next page: the token the previous page printed (same command, same filters).")(func)
    return click.option("--limit", type=click.IntRange(1, MAX_LIMIT), default=DEFAULT_LIMIT, show_default=True,
                        help="At most this many rows (a page); the token of the next page is printed on stderr.")(func)


def emit_page(read, columns, as_json: bool, empty: str) -> None:
    """Print a page (``read()`` gives it; a token of another listing, or a filter that is none, is said so), then
    how to ask for the next."""
    try:
        page = read()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    console.emit(page.rows, columns, as_json, empty)
    if page.next:
        click.echo(f"more: the same command with --next {page.next}", err=True)


def _settings(ctx: click.Context) -> Settings:
    return ctx.find_object(dict)["settings"]


def _runs(ctx: click.Context):
    """The run service of the chosen stage (after operator_command has found it)."""
    from obsflow.services import run_service

    return run_service(_settings(ctx))


def _catalogue():
    """The read model of the chosen stage's processing catalogue."""
    from obsflow.services import catalogue

    return catalogue(_settings(click.get_current_context()))


def _provenance():
    """The chosen stage's provenance queries."""
    from obsflow.services import provenance

    return provenance(_settings(click.get_current_context()))


def _queries():
    """What an operator lists and shows of the chosen stage's records."""
    from obsflow.services import queries

    return queries(_settings(click.get_current_context()))


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


def _action(ctx: click.Context) -> str:
    """The command's words after `obsflow`, e.g. "datasets decide" (the key of obsflow.roles.PERMISSIONS)."""
    names = []
    while ctx.parent is not None:
        names.append(ctx.info_name)
        ctx = ctx.parent
    return " ".join(reversed(names))


def _actor(ctx: click.Context):
    """Who the command acts as (obsflow.roles): the role in OBSFLOW_ROLE, None for the local single operator."""
    from obsflow.roles import Actor

    settings = _settings(ctx)
    return Actor(settings.role, settings.proposal)


def _refused(check, *args, **kwargs) -> None:
    """A role's refusal is one readable line and a non-zero exit."""
    from obsflow.roles import Refused

    try:
        check(*args, **kwargs)
    except Refused as exc:
        raise click.ClickException(str(exc)) from exc


def operator_command(func):
    """Refuse what the role (OBSFLOW_ROLE) may not do, before the stage is touched; then find the chosen stage's
    resources, bind the tables to them and turn AWS failures into advice."""

    @functools.wraps(func)
    @click.pass_context
    def wrapper(ctx, *args, **kwargs):
        _refused(_actor(ctx).check, _action(ctx))
        return on_the_stage(ctx, lambda: ctx.invoke(func, *args, **kwargs))

    wrapper.checks_role = True  # tests/unit/test_roles.py: every such command is in the role table
    return wrapper


def on_the_stage(ctx: click.Context, call):
    """``call()`` on the chosen stage: its resources found, the tables bound to them, AWS failures turned into
    advice (what operator_command does once the role may act; a command that reaches the stage only for some of
    its options calls this itself)."""
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError, NoRegionError
    from pynamodb.exceptions import PynamoDBException

    from obsflow import tables

    settings = _settings(ctx)
    try:
        settings = _discover(settings)
        ctx.find_object(dict)["settings"] = settings
        tables.bind(settings)
        return call()
    except NotFound as exc:
        raise click.ClickException(_with_local_state(settings, str(exc))) from exc
    except (EndpointConnectionError, NoCredentialsError, NoRegionError, PynamoDBException, TransientError) as exc:
        raise _unreachable(settings, exc) from exc


def _an_id(ctx, param, value: str | None) -> str | None:
    """An id that becomes part of a key and a file name (obsflow.ids)."""
    from obsflow.ids import ID_RULE, is_id

    if value is not None and not is_id(value):
        raise click.BadParameter(f"{value!r} is not an id ({ID_RULE})")
    return value


def _ids(ctx, param, values: tuple[str, ...]) -> list[str]:
    return [_an_id(ctx, param, value) for value in values]


def _history(events: list[dict], none: str = "no conflicts") -> None:
    click.echo("history:" if events else f"history: {none}")
    console.table(events, ["at", "kind", "detail"], "")


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


QC_WHERE_HELP = ("A QC filter, qc.METRIC<VALUE (operators <, <=, >, >=, =): only datasets whose QC value passes; "
                 "repeat to AND several. An unknown metric is refused, naming those recorded.")


def _qc_filters(texts, option: str = "--where") -> tuple:
    """--where qc.METRIC<VALUE ...: the QC filters (obsflow.qc), each checked as it is read."""
    from obsflow.qc import parse_filters

    try:
        return parse_filters(texts)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from exc


def _qc_where(ctx, param, values: tuple[str, ...]) -> tuple:
    """An option's callback: QC filters refused as the option is read, before the stage is touched."""
    return _qc_filters(values)


def _campaigns(ctx: click.Context):
    from obsflow.services import campaign_service

    return campaign_service(_settings(ctx))


def _read_id_list(path: str) -> list[str]:
    """--ids FILE.json: a JSON list of ids, each following the one id rule, at most as many as an ID set holds."""
    from obsflow.runs.campaigns import read_id_set

    listed = _read_json_file(path, "the ID list")
    if not isinstance(listed, list) or not listed:
        raise click.BadParameter(f"{path} is not a JSON list of ids", param_hint="--ids")
    try:
        return read_id_set(listed)["ids"]
    except ValueError as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--ids") from exc


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
