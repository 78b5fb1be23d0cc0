"""Read model of the processing catalogue: instances, their edges both ways, trees, calibrations.

Every answer comes from keys and indexes (instances by state or reference, edges by
instance or by input, datasets by kind): no scan.
"""

from __future__ import annotations

from obsflow.errors import NotFound
from obsflow.reads import pages
from obsflow.reads.ports import CatalogueReads
from obsflow.runs.domain import INSTANCE_STATES, Instance, InstanceInput

INSTANCE_COLUMNS = ("instance_id", "recipe", "reference", "state", "state_reason", "candidates", "runs",
                    "estimated_cpu_s", "date_processed", "dataset_id")


def instance_row(instance: Instance) -> dict:
    return {
        "instance_id": instance.instance_id, "recipe": f"{instance.recipe}@{instance.version}", "rule": instance.rule,
        "reference": instance.reference, "state": instance.state, "state_reason": instance.state_reason,
        "candidates": sorted(instance.candidate_ids), "runs": len(instance.run_ids),
        "estimated_cpu_s": instance.estimated_cpu_s, "estimated_bytes": instance.estimated_bytes,
        "release_date": instance.release_date,
        "date_processed": instance.date_processed, "dataset_id": instance.dataset_id, "created_at": instance.created_at,
    }


def _created_then_id(row: dict) -> tuple[str, str]:
    return str(row["created_at"]), row["instance_id"]


def _edge(edge: InstanceInput) -> dict:
    return {"role": edge.role, "kind": edge.kind, "ref": edge.ref}


class Catalogue:
    def __init__(self, reads: CatalogueReads):
        self.reads = reads

    def _record(self, instance_id: str) -> Instance:
        instance = self.reads.instance_record(instance_id)
        if instance is None:
            raise NotFound(f"no recipe instance {instance_id!r}; `obsflow catalogue list` shows the known ones")
        return instance

    def _with_inputs(self, instance_id: str) -> Instance:
        instance = self.reads.instance(instance_id)
        if instance is None:
            raise NotFound(f"no recipe instance {instance_id!r}; `obsflow catalogue list` shows the known ones")
        return instance

    def instance_rows(self, state: str | None = None, reference: str | None = None, uses: str | None = None) -> list[dict]:
        if uses:
            found = [self._record(i) for i in self.users_of(uses)]
            found = [i for i in found if (state is None or i.state == state) and (reference is None or i.reference == reference)]
        elif reference:
            found = [i for i in self.reads.instance_records_of_reference(reference) if state is None or i.state == state]
        else:
            found = [i for s in ([state] if state else INSTANCE_STATES) for i in self.reads.instance_records_with_state(s)]
        return [instance_row(instance) for instance in sorted(found, key=lambda i: i.created_at)]

    def instance_page(self, state: str | None = None, reference: str | None = None, uses: str | None = None,
                      limit: int = pages.DEFAULT_LIMIT, next_token: str | None = None) -> pages.Page:
        """A page of instances, newest first: what the index gives for a state and/or a reference (or all); the
        users of an input, found whole from the reverse index, a page of them."""
        listing = f"instances:{state or ''}:{reference or ''}:{uses or ''}"
        start = pages.position(listing, next_token)
        if uses:
            rows = sorted(self.instance_rows(state, reference, uses), key=_created_then_id, reverse=True)
            rows, following = pages.rows_after(rows, _created_then_id, limit, start)
            return pages.Page(rows, pages.token(listing, following))
        instances, following = self.reads.instance_records_page(state, reference, limit, start)
        return pages.Page([instance_row(i) for i in instances], pages.token(listing, following))

    def users_of(self, identifier: str) -> list[str]:
        """The instances that use a frame (by file id, or through its OP), an OP, a dataset (directly, or as the
        dataset of the upstream instance they were planned on) or an instance: all from the reverse index."""
        if identifier.startswith("ri-"):
            return self.reads.users_of(f"instance:{identifier}")
        if identifier.startswith("ds-"):
            dataset = self.reads.dataset(identifier)
            if dataset is None:
                raise NotFound(f"no dataset {identifier!r}; `obsflow datasets list` shows the catalogued ones")
            found = set(self.reads.users_of(f"dataset:{identifier}"))
            for user in self.reads.users_of(f"instance:{dataset.instance_id}") if dataset.instance_id else []:
                if self._record(user).planned_upstream.get(dataset.instance_id) == identifier:
                    found.add(user)
            return sorted(found)
        frame = next(iter(self.reads.frames_by_id([identifier])), None)
        if frame is not None:
            return sorted(set(self.reads.users_of(f"frame:{identifier}")) | set(self.reads.users_of(f"op:{frame.op_id}")))
        return self.reads.users_of(f"op:{identifier}")

    def downstream_ids(self, instance_id: str) -> list[str]:
        return self.reads.users_of(f"instance:{instance_id}")

    def instance_detail(self, instance_id: str) -> dict:
        """Inputs by role, upstream and downstream instances, runs with estimates and actuals."""
        instance = self._with_inputs(instance_id)
        by_role: dict[str, list[str]] = {}
        for edge in instance.inputs:
            by_role.setdefault(edge.role, []).append(f"{edge.kind}:{edge.ref}")
        return {
            **instance_row(instance),
            "inputs": by_role,
            "upstream": [instance_row(self._record(e.ref)) for e in instance.inputs if e.kind == "instance"],
            "downstream": [instance_row(self._record(i)) for i in self.downstream_ids(instance_id)],
            "planned_upstream": instance.planned_upstream,
            "input_dataset": instance.input_dataset_key,
            "runs": [{"run_id": r.run_id, "status": r.status, "created_at": r.created_at, "finished_at": r.finished_at,
                      "estimated_cpu_s": r.estimated_cpu_s, "measured_cpu_s": r.measured_cpu_s,
                      "output_bytes": r.output_bytes, "dataset_id": r.dataset_id, "retry_of": r.retry_of}
                     for r in sorted(self.reads.runs_of(instance), key=lambda r: r.created_at)],
        }

    def instances_of(self, identifier: str) -> list[str]:
        """The instances a candidate, instance or dataset id names."""
        if identifier.startswith("ri-"):
            return [self._record(identifier).instance_id]
        if identifier.startswith("ds-"):
            dataset = self.reads.dataset(identifier)
            if dataset is None or not dataset.instance_id:
                raise NotFound(f"no dataset {identifier!r} with a recipe instance; `obsflow datasets list` shows them")
            return [dataset.instance_id]
        candidate = self.reads.candidate(identifier)
        if candidate is None:
            raise NotFound(f"{identifier!r} is not a known candidate, instance (ri-...) or dataset (ds-...)")
        if not candidate.instance_ids and not candidate.instance_id:
            raise NotFound(f"candidate {identifier} is {candidate.status}: no recipe instance yet")
        return list(candidate.instance_ids or [candidate.instance_id])

    def processing_of(self, candidate_id: str) -> list[dict]:
        """What became of a candidate: its recipe instances, their state and dataset (none before it is planned)."""
        candidate = self.reads.candidate(candidate_id)
        ids = (candidate.instance_ids or ([candidate.instance_id] if candidate.instance_id else [])) if candidate else []
        return sorted((instance_row(self._record(i)) for i in ids), key=lambda row: row["created_at"])

    def tree(self, identifier: str) -> list[str]:
        """The dependency tree around ``identifier``, as lines: roots first, each consumer indented below its input."""
        start = self.instances_of(identifier)
        component: dict[str, Instance] = {}
        pending = list(start)
        while pending:  # everything upstream of the start, and everything downstream of that
            current = pending.pop()
            if current not in component:
                component[current] = self._with_inputs(current)
                pending.extend(e.ref for e in component[current].inputs if e.kind == "instance")
        pending = list(component)
        while pending:
            for user in self.downstream_ids(pending.pop()):
                if user not in component:
                    component[user] = self._with_inputs(user)
                    pending.append(user)
        rows = {i: instance_row(instance) for i, instance in component.items()}
        edges = {i: instance.inputs for i, instance in component.items()}
        children = {i: sorted(u for u in component if any(e.kind == "instance" and e.ref == i for e in edges[u]))
                    for i in component}
        roots = sorted((i for i in component if not any(e.kind == "instance" for e in edges[i])),
                       key=lambda i: rows[i]["created_at"])
        lines, drawn = [], set()

        def describe(instance_id: str) -> str:
            row = rows[instance_id]
            frames = ", ".join(f"{e.role} {e.ref}" for e in edges[instance_id] if e.kind == "op")
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

    def calibration_rows(self) -> list[dict]:
        return [{k: v for k, v in record.items() if k != "provenance"} | {"files": [f["name"] for f in record["files"]]}
                for record in self.reads.dataset_records_of_kind("calibration")]

    def calibrations_for(self, candidate_id: str) -> list[dict]:
        """The master calibrations a candidate's science needs: each calibration instance its instances consume,
        its state, its latest dataset's certification and files, and the association's score once the science was
        made from it (as the Gemini archive's calibration association answers)."""
        needed = []
        for instance_id in self.instances_of(candidate_id):
            science = self._with_inputs(instance_id)
            for edge in science.inputs:
                if edge.kind != "instance" or edge.role != "calibration":
                    continue
                upstream = self._with_inputs(edge.ref)
                dataset = self.reads.dataset(upstream.dataset_id) if upstream.dataset_id else None
                needed.append({
                    "for_instance": instance_id, "role": edge.role, "instance_id": upstream.instance_id,
                    "recipe": f"{upstream.recipe}@{upstream.version}", "state": upstream.state,
                    "calibration_inputs": [f"{e.role} {e.ref}" for e in upstream.inputs],
                    "dataset_id": upstream.dataset_id,
                    "certification": dataset.certification if dataset else None,
                    "certification_gates": list(dataset.certification_gates) if dataset else [],
                    "association": self._association(science.dataset_id, upstream.dataset_id) if dataset else None,
                    "files": [{"name": f["name"], "key": f"s3://{dataset.bucket}/{f['key']}", "sha256": f["sha256"]}
                              for f in dataset.files] if dataset else [],
                })
        return needed

    def _association(self, science_dataset_id: str | None, calibration_dataset_id: str) -> dict | None:
        """The association score the science dataset recorded for the calibration (None: not made from it yet)."""
        science = self.reads.dataset(science_dataset_id) if science_dataset_id else None
        for upstream in (science.provenance.get("upstream_datasets", []) if science else []):
            if upstream["dataset_id"] == calibration_dataset_id:
                return upstream.get("association")
        return None
