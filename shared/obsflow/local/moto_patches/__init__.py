"""The local stack's changes to moto's internals, one module per service (DynamoDB's queries apart from its
writes; what each write changed, in changes; moto's models, in core; its request dispatch, in server; S3's
notifications to SQS, in notifications); each module says what moto does and what AWS does instead. They touch
private members of one pinned moto release, so `apply` refuses any other."""

from __future__ import annotations

PINNED_MOTO = "5.2.5"  # as pyproject.toml pins it


class UnsupportedMoto(RuntimeError):
    pass


def check_version(installed: str | None = None) -> None:
    if installed is None:
        from importlib.metadata import version

        installed = version("moto")
    if installed != PINNED_MOTO:
        raise UnsupportedMoto(
            f"obsflow's local stack changes internals of moto {PINNED_MOTO}, and moto {installed} is installed: "
            f"install the pinned release (`pip install moto=={PINNED_MOTO}`, or `make .venv/.installed`), or port "
            "obsflow/local/moto_patches/ to the new release and update the pin in pyproject.toml"
        )


def apply() -> None:
    """Install every patch (idempotent), after checking the moto release."""
    from obsflow.local.moto_patches import (awslambda, batch, changes, core, dynamodb, dynamodb_queries,
                                            notifications, s3, server, sqs, stepfunctions)

    check_version()
    # changes before dynamodb: dynamodb's lock then holds what listeners do after each write
    for service in (core, server, changes, dynamodb_queries, dynamodb, s3, notifications, sqs, stepfunctions, batch,
                    awslambda):
        service.apply()
