"""Data access: one module per DynamoDB table, each with its pynamodb model."""

from obsflow.tables import candidates, frames, manifests, observing_programs, quarantine  # noqa: F401  (registers models)
from obsflow.tables.base import bind, create_tables, models

__all__ = ["bind", "create_tables", "models"]
