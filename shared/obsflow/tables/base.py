"""What every table model shares: names bound from Settings, on-demand billing, errors."""

from __future__ import annotations

from pynamodb.models import Model

from obsflow.settings import Settings

_MODELS: dict[str, type[Model]] = {}


def table(name: str):
    """Register a model under its logical table name so ``bind`` can name it per stage."""

    def register(model: type[Model]) -> type[Model]:
        model.Meta.billing_mode = "PAY_PER_REQUEST"
        _MODELS[name] = model
        return model

    return register


def bind(settings: Settings) -> None:
    """Point every model at the tables of ``settings``' stage, region and endpoint."""
    for name, model in _MODELS.items():
        model.Meta.table_name = settings.table_name(name)
        model.Meta.region = settings.region
        model.Meta.host = settings.endpoint_url
        model._connection = None


def create_tables() -> None:
    """Create every table with the keys and indexes its model declares (local stack, tests)."""
    for model in _MODELS.values():
        if not model.exists():
            model.create_table(wait=True)


def models() -> dict[str, type[Model]]:
    return dict(_MODELS)
