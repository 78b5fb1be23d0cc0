"""Hosted pipelines: an instrument team's published package of workflows (DKIST's ``dkist-processing-vbi``,
``-visp``, ``-test``, ...), run unchanged in its own environment, each workflow a recipe version.

- ``environments``: the pipeline's own environment (a venv from the package's pinned set), never obsflow's;
- ``workflows``: its workflows, read from the package, as obsflow recipes;
- ``metadata_store``, ``records``: the metadata-store calls its tasks make, answered from obsflow's records;
- ``host/``: what runs with the pipeline's own Python (reading workflows, running one node);
- ``service``: ``obsflow pipelines add|list|show``.
"""
