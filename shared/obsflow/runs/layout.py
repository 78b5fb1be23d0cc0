"""Where a run's documents live in the work bucket, and how its ids are made.

Ids are derived from what they identify, so planning the same candidate twice,
or retrying the same failed run twice, names the same records (idempotency).
"""

from __future__ import annotations

import hashlib
import json
import re


def _digest(*parts: str, length: int = 12) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:length]


def instance_id(candidate_id: str, recipe: str, version: str) -> str:
    return f"ri-{_digest(candidate_id, recipe, version)}"


def group_instance_id(group: str, recipe: str, version: str, *members: str) -> str:
    """The one instance of a rule's group: a calibration set, or a night of a proposal."""
    return f"ri-{_digest(group, recipe, version, *members)}"


def copy_instance_id(instance_id: str, dataset_id: str, plan_id: str) -> str:
    """A reprocessing plan's copy of the instance that made the dataset."""
    return f"ri-{_digest(instance_id, dataset_id, plan_id)}"


def run_id(instance_id: str, retry_of: str | None = None, attempt: str = "") -> str:
    return f"run-{_digest(instance_id, retry_of or 'first', attempt)}"


def dataset_id(run_id: str) -> str:
    return f"ds-{_digest(run_id)}"


def product_id(observe_file_ids) -> str:
    """Stable across reprocessing: it names the observe frames, not the run."""
    return f"prod-{_digest(*sorted(observe_file_ids))}"


def product_id_of(input_dataset: dict) -> str:
    """What a dataset is a product of: its observe frames; else all its frames (a calibration set);
    else its recipe and the products it summarises (a night summary)."""
    frames = input_dataset["frames"]
    observe = [f["file_id"] for f in frames if f["role"] == "observe"]
    if observe or frames:
        return product_id(observe or [f["file_id"] for f in frames])
    return product_id([input_dataset["recipe"], *(u["product_id"] for u in input_dataset.get("upstream", []))])


def digest_of(document) -> str:
    """SHA-256 of a JSON document in canonical form."""
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()


def input_dataset_key(instance_id: str, digest: str | None = None) -> str:
    """The first plan's input dataset; a re-execution's has the digest of its content in its name."""
    return f"input-datasets/{instance_id}.json" if digest is None else f"input-datasets/{instance_id}/{digest[:16]}.json"


def run_document_key(run_id: str) -> str:
    return f"runs/{run_id}/run.json"


def task_record_key(run_id: str, task: str) -> str:
    """The task's provenance record for the run and its tagged outputs (kept after the run: `runs outputs`)."""
    return f"runs/{run_id}/tasks/{task}.json"


def chunk_record_key(run_id: str, task: str, index: int) -> str:
    """One chunk's record of a data-parallel task; the last chunk to finish merges them into the task's record."""
    return f"runs/{run_id}/tasks/{task}/chunk-{index:05d}.json"


def usage_prefix(run_id: str) -> str:
    """Where the run's Lambda invocations and Batch jobs record what each used (``runs.accounting``)."""
    return f"runs/{run_id}/usage/"


def usage_key(run_id: str, source: str) -> str:
    """One invocation's or job's usage: ``source`` names it uniquely (its function or task, and request or job)."""
    return f"{usage_prefix(run_id)}{source}.json"


def task_output_prefix(digest: str) -> str:
    """Where a task writes its outputs: addressed by its digest (``runs.digests``), so an unchanged task's
    outputs are found and reused by a later run; they expire after ``TASK_OUTPUT_RETENTION_DAYS``."""
    return f"task-outputs/{digest}/"


def task_output_record_key(digest: str) -> str:
    """The record of the run whose task made the outputs under the digest: present once it succeeded."""
    return f"{task_output_prefix(digest)}_record.json"


DISCOVERY_RULES_KEY = "discovery-rules.json"  # rules registered as data: in force instead of the shipped ones


def fault_key(run_id: str, task: str) -> str:
    """A fault injected into one task of one run (tests, demos and game days): the task fails as told."""
    return f"faults/{run_id}/{task}.json"


def dataset_prefix(proposal_id: str, dataset_id: str, kind: str = "science", developer_campaign: str | None = None) -> str:
    """Science and summary datasets under their proposal; master calibrations under calibrations/; a developer
    campaign's datasets apart from production, under dev/<campaign>/."""
    if developer_campaign:
        return f"dev/{developer_campaign}/{proposal_id}/{dataset_id}/"
    return f"calibrations/{proposal_id}/{dataset_id}/" if kind == "calibration" else f"{proposal_id}/{dataset_id}/"


def occurrence_key(campaign: str, number: int) -> str:
    """What occurrence ``number`` of a recurring campaign selected (work bucket)."""
    return f"campaigns/{campaign}/occurrences/{number:05d}.json"


def campaign_document_key(campaign: str, sha256: str, name: str) -> str:
    """A document kept with a campaign (in the work bucket), addressed by its content: the same file attached twice
    is one object, and another file of the same name is kept beside it, never over it."""
    return f"campaigns/{campaign}/documents/{sha256[:16]}/{name}"


def decision_ticket_id(dataset_id: str) -> str:
    """The review ticket that asks data quality to decide on a new version of a product."""
    return f"TKT-{dataset_id}-decision"


def compare_path(a: str, b: str) -> str:
    """The monitor's page comparing dataset ``b`` with ``a`` (differences B - A), linked from the decision ticket."""
    return f"/compare/{a}/{b}"


def share_identifier(proposal_id: str) -> str:
    """The Batch fair-share identifier of a proposal's jobs (letters, digits and '_' only)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", proposal_id)[:255] or "unknown"
