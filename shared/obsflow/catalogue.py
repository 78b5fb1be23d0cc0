"""Read model of the processing catalogue: instances, their edges both ways, trees, calibrations.

Every answer comes from keys and indexes (instances by state or reference, edges by
instance or by input, datasets by kind): no scan.
"""

from __future__ import annotations

from obsflow.errors import NotFound
from obsflow.runs.domain import INSTANCE_STATES
from obsflow.tables import candidates, catalogue_edges, datasets, frames, recipe_instances, runs

INSTANCE_COLUMNS = ("instance_id", "recipe", "reference", "state", "state_reason", "candidates", "runs",
                    "estimated_cpu_s", "date_processed", "dataset_id")


def _instance(instance_id: str):
    item = recipe_instances.get(instance_id)
    if item is None:
        raise NotFound(f"no recipe instance {instance_id!r}; `obsflow catalogue list` shows the known ones")
    return item


def instance_row(item) -> dict:
    return {
        "instance_id": item.instance_id, "recipe": f"{item.recipe}@{item.version}", "rule": item.rule,
        "reference": item.reference, "state": item.state, "state_reason": item.state_reason,
        "candidates": sorted(item.candidate_ids or ()), "runs": len(item.run_ids or ()),
        "estimated_cpu_s": item.estimated_cpu_s, "estimated_bytes": item.estimated_bytes,
        "release_date": item.release_date,
        "date_processed": item.date_processed, "dataset_id": item.dataset_id, "created_at": item.created_at,
    }


def instance_rows(state: str | None = None, reference: str | None = None, uses: str | None = None) -> list[dict]:
    if uses:
        items = [_instance(i) for i in users_of(uses)]
        items = [i for i in items if (state is None or i.state == state) and (reference is None or i.reference == reference)]
    elif reference:
        items = [i for i in recipe_instances.of_reference(reference) if state is None or i.state == state]
    else:
        items = [i for s in ([state] if state else INSTANCE_STATES) for i in recipe_instances.with_state(s)]
    return [instance_row(item) for item in sorted(items, key=lambda i: i.created_at)]


def users_of(identifier: str) -> list[str]:
    """The instances that use a frame (by file id, or through its OP), an OP, a dataset (directly, or as the
    dataset of the upstream instance they were planned on) or an instance: all from the reverse index."""
    if identifier.startswith("ri-"):
        return catalogue_edges.users_of(f"instance:{identifier}")
    if identifier.startswith("ds-"):
        dataset = datasets.get(identifier)
        if dataset is None:
            raise NotFound(f"no dataset {identifier!r}; `obsflow datasets list` shows the catalogued ones")
        found = set(catalogue_edges.users_of(f"dataset:{identifier}"))
        for user in catalogue_edges.users_of(f"instance:{dataset.instance_id}") if dataset.instance_id else []:
            if (_instance(user).planned_upstream or {}).get(dataset.instance_id) == identifier:
                found.add(user)
        return sorted(found)
    frame = frames.get(identifier)
    if frame is not None:
        return sorted(set(catalogue_edges.users_of(f"frame:{identifier}")) | set(catalogue_edges.users_of(f"op:{frame.op_id}")))
    return catalogue_edges.users_of(f"op:{identifier}")


def inputs(instance_id: str) -> list[dict]:
    return [{"role": e.role, "kind": e.kind, "ref": e.ref} for e in catalogue_edges.inputs_of(instance_id)]


def upstream_ids(instance_id: str) -> list[str]:
    return [e["ref"] for e in inputs(instance_id) if e["kind"] == "instance"]


def downstream_ids(instance_id: str) -> list[str]:
    return catalogue_edges.users_of(f"instance:{instance_id}")


def instance_detail(instance_id: str) -> dict:
    """Inputs by role, upstream and downstream instances, runs with estimates and actuals."""
    item = _instance(instance_id)
    run_items = sorted(runs.RunItem.batch_get(sorted(item.run_ids or ())), key=lambda r: r.created_at)
    by_role: dict[str, list[str]] = {}
    for edge in inputs(instance_id):
        by_role.setdefault(edge["role"], []).append(f"{edge['kind']}:{edge['ref']}")
    return {
        **instance_row(item),
        "inputs": by_role,
        "upstream": [instance_row(_instance(i)) for i in upstream_ids(instance_id)],
        "downstream": [instance_row(_instance(i)) for i in downstream_ids(instance_id)],
        "planned_upstream": item.planned_upstream or {},
        "input_dataset": item.input_dataset_key,
        "runs": [{"run_id": r.run_id, "status": r.status, "created_at": r.created_at, "finished_at": r.finished_at,
                  "estimated_cpu_s": r.estimated_cpu_s, "measured_cpu_s": r.measured_cpu_s,
                  "output_bytes": r.output_bytes, "dataset_id": r.dataset_id, "retry_of": r.retry_of}
                 for r in run_items],
    }


def instances_of(identifier: str) -> list[str]:
    """The instances a candidate, instance or dataset id names."""
    if identifier.startswith("ri-"):
        return [_instance(identifier).instance_id]
    if identifier.startswith("ds-"):
        dataset = datasets.get(identifier)
        if dataset is None or not dataset.instance_id:
            raise NotFound(f"no dataset {identifier!r} with a recipe instance; `obsflow datasets list` shows them")
        return [dataset.instance_id]
    candidate = candidates.get(identifier)
    if candidate is None:
        raise NotFound(f"{identifier!r} is not a known candidate, instance (ri-...) or dataset (ds-...)")
    if not candidate.instance_ids and not candidate.instance_id:
        raise NotFound(f"candidate {identifier} is {candidate.status}: no recipe instance yet")
    return list(candidate.instance_ids or [candidate.instance_id])


def processing_of(candidate_id: str) -> list[dict]:
    """What became of a candidate: its recipe instances, their state and dataset (none before it is planned)."""
    candidate = candidates.get(candidate_id)
    ids = list(candidate.instance_ids or ([candidate.instance_id] if candidate.instance_id else [])) if candidate else []
    return sorted((instance_row(_instance(i)) for i in ids), key=lambda row: row["created_at"])


def tree(identifier: str) -> list[str]:
    """The dependency tree around ``identifier``, as lines: roots first, each consumer indented below its input."""
    start = instances_of(identifier)
    component, pending, edges = set(), list(start), {}
    while pending:  # everything upstream of the start, and everything downstream of that
        current = pending.pop()
        if current not in component:
            component.add(current)
            edges[current] = inputs(current)
            pending.extend(e["ref"] for e in edges[current] if e["kind"] == "instance")
    pending = list(component)
    while pending:
        current = pending.pop()
        for user in downstream_ids(current):
            if user not in component:
                component.add(user)
                pending.append(user)
    rows = {i: instance_row(_instance(i)) for i in component}
    edges.update({i: inputs(i) for i in component - set(edges)})
    children = {i: sorted(u for u in component if any(e["kind"] == "instance" and e["ref"] == i for e in edges[u]))
                for i in component}
    roots = sorted((i for i in component if not any(e["kind"] == "instance" for e in edges[i])),
                   key=lambda i: rows[i]["created_at"])
    lines, drawn = [], set()

    def describe(instance_id: str) -> str:
        row = rows[instance_id]
        frames = ", ".join(f"{e['role']} {e['ref']}" for e in edges[instance_id] if e["kind"] == "op")
        marker = "*" if instance_id in start else " "
        return (f"{marker}{instance_id}  {row['recipe']}  {row['state']}"
                + (f"  [{frames}]" if frames else "") + (f"  -> {row['dataset_id']}" if row["dataset_id"] else ""))

    def draw(instance_id: str, prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else ("└── " if last else "├── ")
        if instance_id in drawn:
            lines.append(f"{prefix}{branch} {instance_id}  (drawn above)")
            return
        drawn.add(instance_id)
        lines.append(f"{prefix}{branch}{describe(instance_id)}")
        below = prefix + ("" if top else ("    " if last else "│   "))
        for index, child in enumerate(children[instance_id]):
            draw(child, below, index == len(children[instance_id]) - 1, False)

    for root in roots:
        draw(root, "", True, True)
    return lines


def calibration_rows() -> list[dict]:
    return [{k: v for k, v in d.attribute_values.items() if k not in ("files_inline", "provenance_inline", "spilled")}
            | {"files": [f["name"] for f in d.files]}
            for d in sorted(datasets.of_kind("calibration"), key=lambda d: d.created_at)]


def calibrations_for(candidate_id: str) -> list[dict]:
    """The master calibrations a candidate's science needs: each calibration instance its instances consume,
    its state, its latest dataset's certification and files, and the association's score once the science was
    made from it (as the Gemini archive's calibration association answers)."""
    needed = []
    for instance_id in instances_of(candidate_id):
        science = None
        for edge in inputs(instance_id):
            if edge["kind"] != "instance" or edge["role"] != "calibration":
                continue
            upstream = _instance(edge["ref"])
            dataset = datasets.get(upstream.dataset_id) if upstream.dataset_id else None
            if science is None:
                science = _instance(instance_id)
            needed.append({
                "for_instance": instance_id, "role": edge["role"], "instance_id": upstream.instance_id,
                "recipe": f"{upstream.recipe}@{upstream.version}", "state": upstream.state,
                "calibration_inputs": [f"{e['role']} {e['ref']}" for e in inputs(upstream.instance_id)],
                "dataset_id": upstream.dataset_id,
                "certification": dataset.certification if dataset else None,
                "certification_gates": list(dataset.certification_gates or []) if dataset else [],
                "association": _association(science.dataset_id, upstream.dataset_id) if dataset else None,
                "files": [{"name": f["name"], "key": f"s3://{dataset.bucket}/{f['key']}", "sha256": f["sha256"]}
                          for f in dataset.files] if dataset else [],
            })
    return needed


def _association(science_dataset_id: str | None, calibration_dataset_id: str) -> dict | None:
    """The association score the science dataset recorded for the calibration (None: not made from it yet)."""
    science = datasets.get(science_dataset_id) if science_dataset_id else None
    for upstream in (science.provenance.get("upstream_datasets", []) if science else []):
        if upstream["dataset_id"] == calibration_dataset_id:
            return upstream.get("association")
    return None
