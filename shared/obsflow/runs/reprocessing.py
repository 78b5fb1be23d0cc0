"""Reprocessing, plan first: what a change affects, what it would re-run and reuse, and what it would cost.

A plan selects the ACTIVE datasets a change affects (a new recipe version, a changed
parameter value, a new calibration, a new version of an input frame, frames marked bad, a dataset superseded
by a decision, or a list), copies each dataset's recipe instance updated to the change, predicts every task's
digest to tell the tasks that re-run from those whose outputs are reused, and estimates CPU-hours,
output size and cost. It follows the catalogue down: every ACTIVE dataset made from one it re-makes
(calibration, then science, then summaries) is copied too, its copy taking the producer's copy as input, so
a started plan runs the chain in dependency order and never feeds a consumer the old dataset. Planning runs
nothing; the plan is saved under an id derived from its content, and ``start`` runs it as a campaign
(``runs.campaigns``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field

import obsflow
from obsflow.errors import NotFound
from obsflow.qc import parse_filters
from obsflow.recipes.jobs import VCPUS
from obsflow.recipes.model import Recipe
from obsflow.runs import layout, records
from obsflow.runs.costs import estimated_usd
from obsflow.runs.digests import inputs_digest, recorded_under, task_digests
from obsflow.runs.domain import ACTIVE, BAD_FRAME, DEPRECATED, Dataset, Instance, InstanceInput
from obsflow.runs.ports import DatasetQuery

PLANNED_RUN = "(planned run)"  # tasks that do not declare reuse name their run: they always re-run
MAX_DEPTH = 20  # levels of the catalogue a plan follows down (calibration, science, summary: 3)


@dataclass(frozen=True)
class Change:
    """What changed; several selectors narrow each other. ``recipe`` names the version to move to and
    ``calibration`` the calibration to use; each also selects (the datasets of the recipe's other versions,
    those made on another version of the calibration) unless ``datasets`` lists them."""

    recipe: str | None = None  # NAME@VERSION
    parameter: str | None = None
    calibration: str | None = None  # the new calibration dataset
    frame: str | None = None  # a frame id whose object has a new version
    bad_frames: bool = False  # the frames marked bad now: their copies leave them out (planning does)
    datasets: tuple[str, ...] = ()
    # (old, new): a decision superseded old by new; selects what was made from old, its copies made from new
    supersede: tuple[tuple[str, str], ...] = ()
    only_selected: bool = False  # not what is made from the selection (a developer's copies are no products)
    overrides: dict = field(default_factory=dict)
    qc: tuple[str, ...] = ()  # QC filters (obsflow.qc) the affected datasets must pass: they narrow, never select

    def describe(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v}


def plan_key(plan_id: str) -> str:
    return f"plans/{plan_id}.json"


class Planner:
    def __init__(self, runs, dataset_query: DatasetQuery | None = None):
        """``runs``: the RunService, whose store, documents, recipes and estimates the plan uses; ``dataset_query``:
        what a change's QC filters select by (a planner for changes without QC filters needs none)."""
        self.runs, self.store, self.documents, self.recipes = runs, runs.store, runs.documents, runs.recipes
        self.dataset_query = dataset_query

    # -- selection ---------------------------------------------------------------------------
    def affected(self, change: Change) -> list[Dataset]:
        selections = []
        if change.datasets:
            selections.append(self._explicit(change.datasets))
        if change.recipe:
            name, version = _split(change.recipe)
            self.recipes.get(name, version)  # NotFound for an unknown version
        if change.recipe and not change.datasets:
            selections.append([d for d in self.store.datasets_of_recipe(name) if d.status == ACTIVE and d.recipe != change.recipe])
        if change.parameter:
            selections.append([d for d in self.store.datasets_with_status(ACTIVE) if self._value_changed(d, change)])
        if change.calibration:
            calibration = self.runs.require_dataset(change.calibration)
            if not change.datasets:
                selections.append(self._on_other_calibrations(calibration))
        if change.frame:
            selections.append(self._using_older_frame(change.frame))
        if change.bad_frames:
            bad = self._bad_frame_ids()
            selections.append([d for d in self.store.datasets_with_status(ACTIVE) if _frames_used(d, bad)])
        if change.supersede:
            selections.append([d for old, new in change.supersede for d in self.consumers(old)
                               if not self.remade_from(d, new)])
        if not selections:
            if change.overrides:
                raise ValueError("--set needs a selection: --datasets FILE, --recipe, --parameter, --calibration, "
                                 "--frame or --bad-frames")
            raise ValueError("say what changed: --recipe NAME@VERSION, --parameter P, --calibration DATASET, "
                             "--frame FILE_ID, --bad-frames, --superseded DATASET or --datasets FILE")
        chosen = {d.dataset_id: d for d in selections[0]}
        for selection in selections[1:]:
            chosen = {d.dataset_id: d for d in selection if d.dataset_id in chosen}
        if change.qc:
            passing = self.dataset_query.dataset_ids(parse_filters(change.qc))
            chosen = {k: d for k, d in chosen.items() if k in passing}
        return sorted(chosen.values(), key=lambda d: (d.proposal_id, d.created_at))

    def _explicit(self, dataset_ids) -> list[Dataset]:
        return [self.runs.require_dataset(d) for d in dict.fromkeys(dataset_ids)]

    def _value_changed(self, dataset: Dataset, change: Change) -> bool:
        used = dataset.provenance.get("configuration", {}).get("parameters", {})
        if change.parameter not in used or dataset.instance_id is None:
            return False
        instance = self.store.instance(dataset.instance_id)
        name, version = _split(dataset.recipe)
        current = self.recipes.get(name, version).as_run_configuration(dt.date.fromisoformat(instance.observed_on))
        return current["parameters"][change.parameter] != used[change.parameter]

    def _on_other_calibrations(self, calibration: Dataset) -> list[Dataset]:
        """ACTIVE datasets made on another version of the calibration's product."""
        others = {d.dataset_id: d for d in self.store.datasets_of_product(calibration.product_id)
                  if d.dataset_id != calibration.dataset_id}
        found = {}
        for other in others.values():
            users = {*self.store.users_of(f"dataset:{other.dataset_id}"),
                     *(self.store.users_of(f"instance:{other.instance_id}") if other.instance_id else ())}
            for user in users:
                for dataset in self.store.datasets_of_instance(user):
                    upstream = {u["dataset_id"] for u in dataset.provenance.get("upstream_datasets", [])}
                    if dataset.status == ACTIVE and other.dataset_id in upstream:
                        found[dataset.dataset_id] = dataset
        return list(found.values())

    def _using_older_frame(self, file_id: str) -> list[Dataset]:
        [frame] = self.store.frames_by_id([file_id]) or [None]
        if frame is None:
            raise NotFound(f"no frame {file_id!r} in the inventory; `obsflow frames list` shows them")
        current = (frame.version_id or "", frame.etag or "")
        return [d for d in self.store.datasets_with_status(ACTIVE)
                if any(f["file_id"] == file_id and (f.get("version_id") or "", f.get("etag") or "") != current
                       for f in d.provenance.get("input_frames", []))]

    def _bad_frame_ids(self) -> set[str]:
        return set(self.store.tagged(BAD_FRAME))

    def superseded(self, dataset_id: str) -> tuple[str, str]:
        """(old, new) for a dataset data quality deprecated in favour of another."""
        old = self.runs.require_dataset(dataset_id)
        if old.status != DEPRECATED or not old.superseded_by:
            raise ValueError(f"dataset {dataset_id} is {old.status}, not superseded: `obsflow datasets decide NEW "
                             f"--deprecate {dataset_id}` supersedes it")
        return old.dataset_id, old.superseded_by

    def consumers(self, dataset_id: str) -> list[Dataset]:
        """The ACTIVE datasets made from the dataset (it is among their upstream datasets), through the reverse
        index of the instances that take it or its instance as an input."""
        dataset = self.runs.require_dataset(dataset_id)
        users = {*self.store.users_of(f"dataset:{dataset_id}"),
                 *(self.store.users_of(f"instance:{dataset.instance_id}") if dataset.instance_id else ())}
        found = {}
        for user in sorted(users):
            for made in self.store.datasets_of_instance(user):
                if made.status == ACTIVE and dataset_id in _upstream_ids(made):
                    found[made.dataset_id] = made
        return sorted(found.values(), key=lambda d: (d.proposal_id, d.created_at))

    def remade_from(self, dataset: Dataset, new_id: str) -> Dataset | None:
        """An ACTIVE version of the dataset's product already made from ``new_id`` (a plan started before the
        decision made it), if any."""
        return next((d for d in self.store.datasets_of_product(dataset.product_id)
                     if d.status == ACTIVE and d.kind == dataset.kind and new_id in _upstream_ids(d)), None)

    def downstream(self, direct: list[Dataset]) -> list[Dataset]:
        """The direct datasets and every ACTIVE dataset made from them at any depth, each after all of its
        producers in the plan (a consumer of two re-made datasets comes after both)."""
        chosen = {d.dataset_id: d for d in direct}
        depth = {d.dataset_id: 0 for d in direct}
        frontier = list(direct)
        while frontier:
            following = []
            for producer in frontier:
                for consumer in self.consumers(producer.dataset_id):
                    deeper = depth[producer.dataset_id] + 1
                    if depth.get(consumer.dataset_id, -1) < deeper:
                        if deeper > MAX_DEPTH:
                            raise ValueError(f"the catalogue below {producer.dataset_id} is deeper than {MAX_DEPTH} "
                                             "levels or has a cycle; `obsflow catalogue tree` shows it")
                        depth[consumer.dataset_id] = deeper
                        chosen[consumer.dataset_id] = consumer
                        following.append(consumer)
            frontier = following
        return sorted(chosen.values(), key=lambda d: (depth[d.dataset_id], d.proposal_id, d.created_at))

    # -- the plan ------------------------------------------------------------------------------
    def plan(self, change: Change, by: str, save: bool = True) -> dict:
        """What the change affects, everything made from that down the catalogue, and what re-running it costs;
        saved under its id unless ``save`` is False."""
        direct = self.affected(change)
        direct_ids = {d.dataset_id for d in direct}
        ordered = direct if change.only_selected else self.downstream(direct)
        bad = self._bad_frame_ids() if change.bad_frames else set()
        # Frames marked bad since a plan was started make another plan (the same datasets, other frames left out).
        left_out = sorted({f for d in direct for f in _frames_used(d, bad)})
        plan_id = "plan-" + layout.digest_of({"change": change.describe(), "datasets": [d.dataset_id for d in ordered],
                                              **({"bad_frames": left_out} if left_out else {})})[:12]
        copies = {d.dataset_id: layout.copy_instance_id(d.instance_id or "", d.dataset_id, plan_id) for d in ordered}
        items = [self._item(d, change if d.dataset_id in direct_ids else None, copies, bad) for d in ordered]
        plan = {
            "plan_id": plan_id, "change": change.describe(), "planned_by": by,
            "planned_at": self.runs.clock().isoformat(), "code_version": obsflow.__version__, "items": items,
            "totals": {
                "datasets": len(items),
                "downstream": len(items) - len(direct),
                "tasks_rerun": sum(len(i["tasks_rerun"]) for i in items),
                "tasks_reused": sum(len(i["tasks_reused"]) for i in items),
                "cpu_seconds": round(sum(i["estimated_cpu_s"] for i in items), 1),
                "cpu_hours": round(sum(i["estimated_cpu_s"] for i in items) / 3600, 3),
                "output_bytes": sum(i["estimated_bytes"] for i in items),
                "usd": round(sum(i["estimated_usd"] for i in items), 4),
            },
        }
        if save:
            self.documents.put_json("work", plan_key(plan_id), plan)
        return plan

    def _item(self, dataset: Dataset, change: Change | None, copies: dict[str, str], bad: set[str]) -> dict:
        """The copy of the dataset's instance: ``change`` applied to a directly affected one (None: made from one
        the plan re-makes), its inputs taking the copies of what the plan re-makes."""
        instance = self.store.instance(dataset.instance_id) if dataset.instance_id else None
        run = self.store.run(dataset.run_id)
        if instance is None or run is None or not run.input_dataset_key:
            raise NotFound(f"dataset {dataset.dataset_id} has no recorded instance or run to copy")
        name, version = _split(change.recipe) if change and change.recipe else _split(dataset.recipe)
        recipe = self.recipes.get(name, version)
        overrides = change.overrides if change else {}
        made_from = sorted(_upstream_ids(dataset) & set(copies))
        replacements = {old: InstanceInput("", "instance", copies[old]) for old in made_from}
        if change and change.calibration:
            replacements.update({u["dataset_id"]: InstanceInput("", "dataset", change.calibration)
                                 for u in dataset.provenance.get("upstream_datasets", []) if u.get("kind") == "calibration"})
        if change:
            replacements.update({old: InstanceInput("", "dataset", new) for old, new in change.supersede})
        inputs = _rewired(instance.inputs, dataset, replacements)
        configuration = recipe.as_run_configuration(dt.date.fromisoformat(instance.observed_on), overrides)
        document = self.documents.get_json("work", run.input_dataset_key)
        if bad:  # planning leaves them out of the copy's input dataset: predict from the frames it will read
            document = {**document, "frames": [f for f in document["frames"] if f["file_id"] not in bad]}
        if made_from:  # an input is re-made by the plan: its digest is known only when it is, so nothing is reused
            reused = []
        else:
            if replacements:
                document = {**document, "upstream": self._upstream_of(inputs)}
            digests = task_digests(recipe, configuration, inputs_digest(document), obsflow.__version__, PLANNED_RUN)
            chunks = recipe.chunks(configuration, sum(f["role"] == "observe" for f in document["frames"]))
            records = recorded_under(recipe, digests, chunks)
            reused = [t.name for t in recipe.tasks if t.reuse and all(
                self.documents.exists("work", layout.task_output_record_key(digest)) for digest in records[t.name])]
        cpu_s, size = self.runs.estimate(recipe, len(document["frames"]) + len(document.get("upstream", [])))
        cpu_s = round(cpu_s * _rerun_share(recipe, set(reused)), 1)
        before = dataset.provenance.get("configuration", {})
        return {
            "dataset_id": dataset.dataset_id, "product_id": dataset.product_id, "proposal_id": dataset.proposal_id,
            "kind": dataset.kind, "instance_id": instance.instance_id, "copy_instance_id": copies[dataset.dataset_id],
            "recipe_from": dataset.recipe, "recipe_to": recipe.key,
            "inputs": [i.as_dict() for i in inputs], "overrides": overrides or None,
            "configuration_changes": _differences(before, configuration),
            "tasks_rerun": [t.name for t in recipe.tasks if t.name not in reused], "tasks_reused": reused,
            "estimated_cpu_s": cpu_s, "estimated_bytes": size,
            "estimated_usd": estimated_usd(cpu_s, size, recipe, self.runs.settings.prices),
            **({"made_from": made_from} if made_from else {}),
            **({"bad_frames": _frames_used(dataset, bad)} if change and change.bad_frames else {}),
        }

    def _upstream_of(self, inputs: list[InstanceInput]) -> list[dict]:
        """The upstream datasets a copy with these inputs would read (each recorded)."""
        upstream = []
        for edge in inputs:
            if edge.kind in ("instance", "dataset"):
                made = self.store.instance(edge.ref).dataset_id if edge.kind == "instance" else edge.ref
                upstream.append(records.upstream_entry(edge.role, self.runs.require_dataset(made)))
        return sorted(upstream, key=lambda u: (u["role"], u["instance_id"]))

    def load(self, plan_id: str) -> dict:
        try:
            return self.documents.get_json("work", plan_key(plan_id))
        except NotFound:
            raise NotFound(f"no plan {plan_id!r}; `obsflow reprocess plan ...` makes one") from None

    def copies(self, plan: dict, campaign: str, priority: int) -> list[Instance]:
        """The instances a started plan inserts: each affected dataset's instance, copied and updated."""
        copies = []
        for item in plan["items"]:
            original = self.store.instance(item["instance_id"])
            name, version = _split(item["recipe_to"])
            copies.append(Instance(
                item["copy_instance_id"], candidate_id=original.candidate_id, proposal_id=original.proposal_id,
                recipe=name, version=version, observed_on=original.observed_on, created_at=self.runs.clock(),
                inputs=[InstanceInput(**i) for i in item["inputs"]], reference=original.reference,
                candidate_ids=set(original.candidate_ids), priority=priority, campaign=campaign,
                overrides=item["overrides"],
            ))
        return copies


def _split(key: str) -> tuple[str, str]:
    name, sep, version = key.partition("@")
    if not sep or not name or not version:
        raise ValueError(f"{key!r} is not NAME@VERSION")
    return name, version


def _rewired(inputs: list[InstanceInput], dataset: Dataset, replacements: dict[str, InstanceInput]) -> list[InstanceInput]:
    """The inputs with each edge to a replaced upstream dataset (or to the instance that made it, as the dataset
    records it) taking the replacement's kind and ref, its role kept."""
    edges = {}
    for upstream in dataset.provenance.get("upstream_datasets", []):
        replacement = replacements.get(upstream["dataset_id"])
        if replacement is not None:
            edges[("dataset", upstream["dataset_id"])] = replacement
            if upstream.get("instance_id"):
                edges[("instance", upstream["instance_id"])] = replacement
    return [InstanceInput(i.role, edges[i.kind, i.ref].kind, edges[i.kind, i.ref].ref) if (i.kind, i.ref) in edges else i
            for i in inputs]


def _upstream_ids(dataset: Dataset) -> set[str]:
    return {u["dataset_id"] for u in dataset.provenance.get("upstream_datasets", [])}


def _frames_used(dataset: Dataset, file_ids: set[str]) -> list[str]:
    """Which of ``file_ids`` the dataset was made from (its own input frames)."""
    return sorted({f["file_id"] for f in dataset.provenance.get("input_frames", [])} & file_ids)


def _rerun_share(recipe: Recipe, reused: set[str]) -> float:
    """The share of a run's CPU the re-run tasks take, weighting each task by its vCPUs."""
    weights = {t.name: VCPUS[t.resource_class] for t in recipe.tasks}
    return sum(w for name, w in weights.items() if name not in reused) / sum(weights.values())


def _differences(before: dict, after: dict) -> dict:
    """Parameter and option values that differ: name -> [before, after]."""
    changed = {}
    for section in ("parameters", "options"):
        old, new = before.get(section, {}), after.get(section, {})
        for name in sorted(set(old) | set(new)):
            if old.get(name) != new.get(name):
                changed[name] = [old.get(name), new.get(name)]
    return changed
