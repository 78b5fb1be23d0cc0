"""Data access: one module per DynamoDB table, each with its pynamodb model."""

from obsflow.tables import (  # noqa: F401  (registers models)
    campaigns,
    candidates,
    capacity,
    catalogue_edges,
    datasets,
    frames,
    manifests,
    observing_programs,
    parameter_values,
    proposals,
    qc_values,
    quarantine,
    recipe_instances,
    recipe_measurements,
    recipes,
    run_counts,
    runs,
    tags,
    tickets,
)
from obsflow.tables.base import bind, create_tables, models

__all__ = ["bind", "create_tables", "models"]
