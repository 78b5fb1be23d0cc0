"""The `obsflow` command group and its global options (the stage, the endpoint, the region)."""

from __future__ import annotations

import os

import click

from obsflow import __version__


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

    \b
    Roles: the command acts as the role in OBSFLOW_ROLE (operator, data-quality,
    developer, pipeline-manager, pi-read; a PI names its proposal in OBSFLOW_PROPOSAL)
    and refuses what that role may not do. Unset, it acts as the single operator of a
    local stack, who may do everything. On AWS the stage's IAM roles decide.
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


OPTION_OF_SETTING = {"AWS_DEFAULT_REGION": "--region", "AWS_ENDPOINT_URL": "--endpoint-url", "stage": "--stage",
                     "role": "OBSFLOW_ROLE", "proposal": "OBSFLOW_PROPOSAL"}


def _readable(error: dict) -> str:
    """One line for one invalid setting: the option, and pydantic's message without its "Value error, "."""
    option = OPTION_OF_SETTING.get(str(error["loc"][0]), str(error["loc"][0])) if error["loc"] else "a setting"
    return f"{option}: {error['msg'].removeprefix('Value error, ')}"
