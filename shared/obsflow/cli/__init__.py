"""The operator's tool: `obsflow`.

Talks to a deployed stack through the usual AWS credential chain, or to the local stack with --endpoint-url /
AWS_ENDPOINT_URL. A module per resource; each command imports what it uses when it runs (AWS clients, the
catalogue, FITS), so `--help` stays instant.
"""

from obsflow.cli import campaigns, costs, datasets, ingest, recipes, runs, stack, windows  # noqa: F401 (their commands join main)
from obsflow.cli.app import main

__all__ = ["main"]
