"""In-memory fakes of the ingest and run services' dependencies (prefer fakes over mocks)."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field

from obsflow.errors import NotFound, Rejected, TransientError
from obsflow.ingest.documents import StoredDocument
from obsflow.ingest.readiness import OpState
from obsflow.ingest.store import CANDIDATE_FIELDS, CandidateOutcome, FramesOutcome, RecordedFrame
from obsflow.qc import passes_all
from obsflow.reads.pages import rows_after
from obsflow.reads.provenance import Provenance
from obsflow.recipes.model import RESOURCE_CLASSES
from obsflow.runs.domain import HistoryEntry
from obsflow.tables.datasets import LISTED_ATTRIBUTES

FIRST_WRITE = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)


class FakeBucket:
    """ObjectReader over a dict of key -> bytes; counts the bytes handed out."""

    def __init__(self, objects: dict[str, bytes] | None = None):
        self.objects = dict(objects or {})
        self.modified: dict[str, dt.datetime] = {}  # key -> its LastModified (else FIRST_WRITE)
        self.bytes_read = 0
        self.requests = 0

    def read_range(self, bucket, key, version_id, start, length):
        self.requests += 1
        body = self.objects[key]
        chunk = body[start : start + length]
        self.bytes_read += len(chunk)
        return chunk, len(body), "v1"

    def current_version(self, bucket, key):
        return "v1" if key in self.objects else None

    def read_document(self, bucket, key, version_id, limit):
        self.requests += 1
        body = self.objects[key]
        if len(body) > limit:
            raise Rejected("too-large", "too large")
        self.bytes_read += len(body)
        return StoredDocument(body, version_id or "v1", self.modified.get(key, FIRST_WRITE))


@dataclass
class FakeCandidate:
    candidate_id: str
    observe_op: str
    calibration_ops: list[str]
    status: str = "WAITING"
    ready_reason: str | None = None
    proposal_id: str | None = None
    instrument: str | None = None
    recipe: str | None = None
    priority: int | None = None

    @property
    def op_ids(self):
        return [self.observe_op, *self.calibration_ops]


@dataclass
class FakeStore:
    """IngestStore semantics in memory: frames keyed by file id, counts per OP, conditional READY."""

    frames: dict = field(default_factory=dict)
    expected: dict = field(default_factory=dict)
    received: dict = field(default_factory=dict)
    members: dict = field(default_factory=dict)
    candidates: dict = field(default_factory=dict)
    quarantined: list = field(default_factory=list)
    ready_marks: int = 0
    events: dict = field(default_factory=dict)  # ("op" | "candidate", id) -> [(kind, detail)]
    late_frames: dict = field(default_factory=dict)
    proposals: dict = field(default_factory=dict)  # id -> (document, modified_at)

    def record_proposal(self, proposal, key, version_id, modified_at, now):
        current = self.proposals.get(proposal.proposal_id)
        if current is not None and modified_at < current[1]:
            return None
        self.proposals[proposal.proposal_id] = (proposal, modified_at)
        if current is None or current[0] == proposal:
            return []
        return [f"{name} from {getattr(current[0], name)} to {getattr(proposal, name)}"
                for name in ("pi", "release_date", "embargo_days") if getattr(current[0], name) != getattr(proposal, name)]

    def _state(self, op_id):
        if op_id not in self.expected and op_id not in self.received:
            return None
        return OpState(self.expected.get(op_id), self.received.get(op_id, 0))

    def record_frames(self, frames, now):
        outcome = FramesOutcome()
        before = {frame.op_id: self._state(frame.op_id) for frame in frames}
        for frame in frames:
            if frame.file_id in self.frames:
                outcome.duplicates.append(frame.file_id)
                outcome.repeated.append((frame, RecordedFrame.of(self.frames[frame.file_id])))
                continue
            self.frames[frame.file_id] = frame
            self.received[frame.op_id] = self.received.get(frame.op_id, 0) + 1
            outcome.counted.append(frame.file_id)
        for op_id, state in before.items():
            outcome.ops[op_id] = (state, self._state(op_id), set(self.members.get(op_id, ())))
        return outcome

    def record_manifest(self, manifest, key, version_id, now):
        states, changes = {}, {}
        for op in manifest.observing_programs:
            old = self.expected.get(op.op_id)
            if old is not None and old != op.expected_frames:
                changes[op.op_id] = (old, op.expected_frames)
                self.record_op_event(op.op_id, "expected-changed", f"{manifest.manifest_id}: from {old} to "
                                                                  f"{op.expected_frames}", now)
            self.expected[op.op_id] = op.expected_frames
            states[op.op_id] = (self._state(op.op_id), set(self.members.get(op.op_id, ())))
        return states, changes

    def record_candidate(self, candidate, key, version_id, now):
        new = FakeCandidate(candidate.candidate_id, candidate.observe_op, list(candidate.calibration_ops),
                            proposal_id=candidate.proposal_id, instrument=candidate.instrument,
                            recipe=candidate.recipe, priority=candidate.priority)
        recorded = self.candidates.setdefault(candidate.candidate_id, new)
        differences = [name for name in CANDIDATE_FIELDS if getattr(recorded, name) != getattr(new, name)]
        if differences:
            return CandidateOutcome(False, differences)
        for op_id in candidate.op_ids:
            self.members.setdefault(op_id, set()).add(candidate.candidate_id)
        return CandidateOutcome(recorded is new)

    def record_op_event(self, op_id, kind, detail, now, late_frames=0):
        self.events.setdefault(("op", op_id), []).append((kind, detail))
        self.late_frames[op_id] = self.late_frames.get(op_id, 0) + late_frames

    def record_candidate_event(self, candidate_id, kind, detail, now):
        self.events.setdefault(("candidate", candidate_id), []).append((kind, detail))

    def candidate(self, candidate_id):
        return self.candidates.get(candidate_id)

    def op_states(self, op_ids):
        return {op_id: state for op_id in op_ids if (state := self._state(op_id)) is not None}

    def mark_ready(self, candidate_id, reason, detail, now):
        candidate = self.candidates[candidate_id]
        if candidate.status != "WAITING":
            return False
        candidate.status, candidate.ready_reason = "READY", reason
        self.ready_marks += 1
        return True

    def quarantine(self, bucket, key, version_id, size, etag, code, reason, now):
        if any((q["key"], q["version_id"]) == (key, version_id) for q in self.quarantined):
            return False
        self.quarantined.append({"key": key, "version_id": version_id, "code": code, "reason": reason})
        return True


# -- the run service's store and ports ----------------------------------------------------
class FakeRunStore:
    """RunStore semantics in memory: conditional creates and transitions, slots as sets."""

    def __init__(self):
        self.candidates, self.ops, self.frames = {}, {}, []
        self.instances, self.runs, self.tickets, self.datasets, self.campaigns = {}, {}, {}, {}, {}
        self.due: dict[str, str] = {}  # instance id -> due mark (the sparse due-for-planning index)
        self.due_marks = self.due_reads = 0
        self.tags = {}
        self.edges: dict[str, list] = {}
        self.measurements: dict[str, dict] = {}
        self.slots: dict[str, set[str]] = {}
        self.conflicts: dict[str, list] = {}  # candidate id -> Conflict events, as ingest records them
        self.reviewed: dict[str, int] = {}
        self.known_proposals: dict = {}  # id -> embargo.Proposal
        # Datasets created before this (put here without QC values, as before they were recorded) are not indexed.
        self.qc_indexed_from = dt.datetime.max.replace(tzinfo=dt.timezone.utc)

    # candidates
    def candidates_with_status(self, status):
        return [copy.deepcopy(c) for c in self.candidates.values() if c.status == status]

    def candidates_pending_review(self):
        return [(copy.deepcopy(self.candidates[cid]), list(events), self.reviewed.get(cid, 0))
                for cid, events in self.conflicts.items() if len(events) > self.reviewed.get(cid, 0)]

    def mark_reviewed(self, candidate_id, events):
        self.reviewed[candidate_id] = events
        return True

    def candidate(self, candidate_id):
        return copy.deepcopy(self.candidates.get(candidate_id))

    def mark_candidate_ready(self, candidate_id, reason, detail, at):
        return self._candidate_if(candidate_id, "WAITING", status="READY", ready_reason=reason, ready_detail=detail)

    def mark_candidate_planned(self, candidate_id, instance_id, instance_ids):
        self._candidate_if(candidate_id, "READY", status="PLANNED", instance_id=instance_id, instance_ids=instance_ids)

    def hold_candidate(self, candidate_id, reason):
        self._candidate_if(candidate_id, "READY", status="HELD", held_reason=reason)

    def _candidate_if(self, candidate_id, expected, **changes):
        candidate = self.candidates[candidate_id]
        if candidate.status != expected:
            return False
        for name, value in changes.items():
            setattr(candidate, name, value)
        return True

    def op_progress(self, op_ids):
        return {op_id: self.ops[op_id] for op_id in op_ids if op_id in self.ops}

    def frames_of_ops(self, op_ids):
        return [f for f in self.frames if f.op_id in op_ids]

    def frames_by_id(self, file_ids):
        return [f for f in self.frames if f.file_id in file_ids]

    def observed_on(self, op_id):
        dates = sorted(f.date_obs for f in self.frames if f.op_id == op_id)
        return dates[0][:10] if dates else None

    # instances and edges
    def create_instance(self, instance):
        self.add_inputs(instance.instance_id, instance.inputs)
        created = self._create(self.instances, instance.instance_id, instance)
        if created:
            self.mark_due_for_planning([instance.instance_id], instance.created_at)
        return created

    def instances_without_inputs(self, instance_ids):
        return {i: dataclasses.replace(copy.deepcopy(self.instances[i]), inputs=[])
                for i in instance_ids if i in self.instances}

    def missing_inputs(self, instance_id, inputs):
        return [edge for edge in inputs if edge not in self.edges.get(instance_id, [])]

    def instances_due_for_planning(self):
        self.due_reads += 1
        return sorted(self.due.items(), key=lambda item: item[1])

    def mark_due_for_planning(self, instance_ids, at):
        for instance_id in instance_ids:
            if instance_id in self.instances:
                self.due_marks += 1
                self.due[instance_id] = f"{at.isoformat()}#{self.due_marks:08d}"

    def planning_looked_at(self, instance_id, mark):
        if self.due.get(instance_id) != mark:
            return False
        del self.due[instance_id]
        return True

    def instance(self, instance_id):
        instance = copy.deepcopy(self.instances.get(instance_id))
        if instance is not None:
            instance.inputs = list(self.edges.get(instance_id, []))
        return instance

    def instances_with_state(self, state):
        return [self.instance(i) for i, instance in self.instances.items() if instance.state == state]

    def instances_of_reference(self, reference):
        return [self.instance(i) for i, instance in self.instances.items() if instance.reference == reference]

    def add_inputs(self, instance_id, inputs):
        edges = self.edges.setdefault(instance_id, [])
        edges.extend(edge for edge in inputs if edge not in edges)

    def users_of(self, input_key):
        return sorted(i for i, edges in self.edges.items() if any(edge.key == input_key for edge in edges))

    def add_candidate_to_instance(self, instance_id, candidate_id):
        self.instances[instance_id].candidate_ids.add(candidate_id)

    def update_instance(self, instance_id, **changes):
        for name, value in changes.items():
            setattr(self.instances[instance_id], name, value)

    def add_run_to_instance(self, instance_id, run_id):
        self.instances[instance_id].run_ids.add(run_id)

    def runs_of(self, instance):
        return list(self.runs_by_id(list(instance.run_ids)).values())

    def runs_by_id(self, run_ids):
        return {run_id: self.run(run_id) for run_id in sorted(set(run_ids)) if run_id in self.runs}

    def record_measurement(self, recipe_key, frames_count, cpu_seconds, output_bytes):
        totals = self.measurements.setdefault(recipe_key, {"runs": 0, "frames": 0, "cpu_seconds": 0.0, "output_bytes": 0})
        for name, value in (("runs", 1), ("frames", frames_count), ("cpu_seconds", cpu_seconds), ("output_bytes", output_bytes)):
            totals[name] += value

    def measurement(self, recipe_key):
        return copy.deepcopy(self.measurements.get(recipe_key))

    # runs
    def create_run(self, run):
        return self._create(self.runs, run.run_id, run)

    def run(self, run_id):
        return copy.deepcopy(self.runs.get(run_id))

    def runs_with_status(self, status):
        return sorted((copy.deepcopy(r) for r in self.runs.values() if r.status == status), key=lambda r: r.queue_key)

    def ready_runs(self, resource_classes):
        self.queued_reads = getattr(self, "queued_reads", 0)
        for run in self.runs_with_status("READY"):
            if set(run.resource_classes) == set(resource_classes):
                self.queued_reads += 1
                yield run

    def transition(self, run_id, to, allowed_from, at, detail=None, **changes):
        run = self.runs[run_id]
        if run.status not in allowed_from:
            return False
        run.status = to
        run.history.append(HistoryEntry(to, at, detail))
        self.update_run(run_id, **changes)
        return True

    def update_run(self, run_id, **changes):
        for name, value in changes.items():
            setattr(self.runs[run_id], name, value)

    def note_waiting(self, run_id, reason):
        if self.runs[run_id].status == "READY":
            self.runs[run_id].waiting_reason = reason

    def slots_in_use(self, resource_classes):
        return {rc: set(self.slots.get(rc, set())) for rc in resource_classes}

    def take_slots(self, run, capacity, at):
        if self.runs[run.run_id].status != "READY":
            return False
        if any(len(self.slots.get(rc, set())) >= capacity[rc] for rc in run.slots):
            return False
        for rc in run.slots:
            self.slots.setdefault(rc, set()).add(run.run_id)
        return self.transition(run.run_id, "SUBMITTED", ("READY",), at, waiting_reason=None)

    def give_back_slots(self, run):
        for rc in run.slots:
            self.slots.get(rc, set()).discard(run.run_id)

    # tickets and datasets
    def create_ticket(self, ticket):
        return self._create(self.tickets, ticket.ticket_id, ticket)

    def ticket(self, ticket_id):
        return copy.deepcopy(self.tickets.get(ticket_id))

    def update_ticket(self, ticket_id, **changes):
        for name, value in changes.items():
            setattr(self.tickets[ticket_id], name, value)

    def create_dataset(self, dataset):
        return self._create(self.datasets, dataset.dataset_id, dataset)

    def dataset(self, dataset_id):
        return copy.deepcopy(self.datasets.get(dataset_id))

    def datasets_of_product(self, product_id):
        return [copy.deepcopy(d) for d in self.datasets.values() if d.product_id == product_id]

    def datasets_of_instance(self, instance_id):
        return [copy.deepcopy(d) for d in self.datasets.values() if d.instance_id == instance_id]

    def record_qc(self, dataset_id, values, notes, at):
        self.update_dataset(dataset_id, qc=dict(values), qc_notes=dict(notes))
        self.qc_indexed_from = min(self.qc_indexed_from, at)

    def datasets_without_qc(self):
        return [copy.deepcopy(d) for d in self.datasets.values() if d.qc is None]

    def all_qc_indexed(self, oldest):
        self.qc_indexed_from = min(self.qc_indexed_from, oldest)

    def datasets_of_recipe(self, name):
        return [copy.deepcopy(d) for d in self.datasets.values() if d.recipe_name == name]

    def datasets_with_status(self, status):
        return [copy.deepcopy(d) for d in self.datasets.values() if d.status == status]

    def create_campaign(self, campaign):
        return self._create(self.campaigns, campaign.name, campaign)

    def campaign(self, name):
        return copy.deepcopy(self.campaigns.get(name))

    def all_campaigns(self):
        return [copy.deepcopy(c) for c in self.campaigns.values()]

    def update_campaign(self, name, **changes):
        for key, value in changes.items():
            setattr(self.campaigns[name], key, value)

    def record_occurrence(self, name, number, **changes):
        if len(self.campaigns[name].occurrences) != number - 1:
            return False
        self.update_campaign(name, **changes)
        return True

    def add_campaign_document(self, name, document, after):
        if name not in self.campaigns or self.campaigns[name].documents != after:
            return False
        self.campaigns[name].documents = [*after, copy.deepcopy(document)]
        return True

    def datasets_of_campaign(self, name):
        return [copy.deepcopy(d) for d in self.datasets.values() if d.campaign == name]

    def add_tags(self, tag, target_ids, by, reason, at):
        new = [i for i in dict.fromkeys(target_ids) if (tag, i) not in self.tags or self.tags[tag, i].get("withdrawn")]
        for i in new:
            before = self.tags.get((tag, i))
            earlier = [*before["earlier"], {k: v for k, v in before.items() if k != "earlier"}] if before else []
            self.tags[tag, i] = {"by": by, "reason": reason, "at": at, "earlier": earlier}
        return len(new)

    def withdraw_tags(self, tag, target_ids, by, reason, at):
        in_force = [i for i in dict.fromkeys(target_ids) if (tag, i) in self.tags and not self.tags[tag, i].get("withdrawn")]
        for i in in_force:
            self.tags[tag, i]["withdrawn"] = {"by": by, "reason": reason, "at": at}
        return len(in_force)

    def tagged(self, tag):
        return [i for (t, i), statement in self.tags.items() if t == tag and not statement.get("withdrawn")]

    def move_certification(self, dataset_id, to, allowed_from, history):
        dataset = self.datasets[dataset_id]
        if dataset.certification not in allowed_from:
            return False
        dataset.certification, dataset.certification_history = to, copy.deepcopy(history)
        return True

    def update_dataset(self, dataset_id, **changes):
        for name, value in changes.items():
            setattr(self.datasets[dataset_id], name, value)

    def datasets_under_embargo(self):
        return sorted((copy.deepcopy(d) for d in self.datasets.values() if d.embargo), key=lambda d: d.release_date)

    def proposals(self, proposal_ids):
        return {p: self.known_proposals[p] for p in proposal_ids if p in self.known_proposals}

    @staticmethod
    def _create(records, key, value):
        if key in records:
            return False
        records[key] = copy.deepcopy(value)
        return True


def _record(entity) -> dict:
    """A domain object as the record a table stores: the attributes it has (a None is not stored)."""
    return {k: v for k, v in dataclasses.asdict(entity).items() if v is not None}


def _listed(dataset) -> dict:
    return {k: v for k, v in _record(dataset).items() if k in LISTED_ATTRIBUTES}


def _without_inputs(instance):
    return dataclasses.replace(instance, inputs=[]) if instance is not None else None


class FakeReads:
    """The read ports (obsflow.reads.ports) over a FakeRunStore's records: what the runs ports read is read from
    the store itself; recipes from ``recipes`` (a RecipeBook); ingest's quarantine and frame details as records."""

    SHARED_WITH_THE_RUNS_PORTS = ("instance", "instances_without_inputs", "users_of", "runs_of", "runs_by_id",
                                  "candidate", "frames_by_id", "op_progress",
                                  "dataset", "datasets_of_instance", "datasets_of_product", "proposals", "run",
                                  "runs_with_status")

    def __init__(self, store: FakeRunStore, recipes=None, capacity: int = 1):
        self.store, self.recipes = store, recipes
        self.capacity = {rc: capacity for rc in RESOURCE_CLASSES}
        self.quarantined: list[dict] = []

    def __getattr__(self, name):
        if name in self.SHARED_WITH_THE_RUNS_PORTS:
            return getattr(self.store, name)
        raise AttributeError(name)

    # the catalogue's records
    def instance_record(self, instance_id):
        return _without_inputs(self.store.instance(instance_id))

    def instance_records_with_state(self, state):
        return sorted(map(_without_inputs, self.store.instances_with_state(state)), key=lambda i: i.created_at)

    def instance_records_page(self, state, reference, limit, start):
        found = [_without_inputs(self.store.instance(i)) for i, instance in self.store.instances.items()
                 if state in (None, instance.state) and reference in (None, instance.reference)]
        return _page(found, lambda i: (str(i.created_at), i.instance_id), limit, start)

    def instance_records_of_reference(self, reference):
        return sorted(map(_without_inputs, self.store.instances_of_reference(reference)), key=lambda i: i.created_at)

    # datasets
    def _datasets(self, **where):
        return sorted((d for d in self.store.datasets.values() if all(getattr(d, k) == v for k, v in where.items())),
                      key=lambda d: d.created_at)

    def dataset_records_of_kind(self, kind):
        return [_record(d) for d in self._datasets(kind=kind)]

    def dataset_record(self, dataset_id):
        return _record(self.store.datasets[dataset_id]) if dataset_id in self.store.datasets else None

    def dataset_ids_with(self, field, value):
        return {d.dataset_id for d in self._datasets(**{field: value})}

    def listed_datasets_with(self, field, value):
        found = self._datasets(**{field: value})
        return [_listed(d) for d in (sorted(found, key=lambda d: d.release_date) if field == "embargo" else found)]

    def listed_datasets(self, dataset_ids):
        return [_listed(d) for d in self._datasets() if d.dataset_id in dataset_ids]

    def all_listed_datasets(self):
        return [_listed(d) for d in self._datasets()]

    def listed_datasets_page(self, limit, start):
        return _page(self.all_listed_datasets(), lambda d: (str(d["created_at"]), d["dataset_id"]), limit, start)

    def qc_dataset_ids(self, qc_filter):
        return {d.dataset_id for d in self._datasets() if passes_all((qc_filter,), d.qc)}

    def qc_metrics(self):
        return sorted({metric for d in self._datasets() for metric in d.qc or {}})

    def qc_indexed_since(self):
        return None if self.store.qc_indexed_from == dt.datetime.max.replace(tzinfo=dt.timezone.utc) \
            else self.store.qc_indexed_from

    def any_dataset_created_before(self, at):
        return any(at is None or d.created_at < at for d in self._datasets())

    # ingest's records
    def frame_records(self, op_id):
        return [_record(f) for f in sorted(self.store.frames, key=lambda f: (f.op_id, f.date_obs))
                if op_id in (None, f.op_id)]

    def proposal_records(self):
        return [{**_record(p), "events": []} for p in self.store.known_proposals.values()]

    def proposal_record(self, proposal_id):
        known = self.store.known_proposals.get(proposal_id)
        return {**_record(known), "events": []} if known else None

    def quarantine_records(self):
        return copy.deepcopy(self.quarantined)

    def op_records(self):
        return [_record(op) for _, op in sorted(self.store.ops.items())]

    def newest_op_records(self, limit):
        return sorted(self.op_records(), key=lambda op: str(op.get("first_frame_at")), reverse=True)[:limit]

    def op_record(self, op_id):
        return _record(self.store.ops[op_id]) if op_id in self.store.ops else None

    def candidate_records(self):
        return [self.candidate_record(c) for c in self.store.candidates]

    def newest_candidate_records(self, limit):
        return sorted(self.candidate_records(), key=lambda c: str(c.get("created_at")), reverse=True)[:limit]

    def candidate_record(self, candidate_id):
        candidate = self.store.candidates.get(candidate_id)
        events = [dataclasses.asdict(e) for e in self.store.conflicts.get(candidate_id, [])]
        return {**_record(candidate), "events": events} if candidate else None

    # recipes and runs
    def recipe_records(self, name=None):
        """A recipe book lists no recipes: the named recipe's latest version alone."""
        recipes = [self.recipes.get(name)] if name else []
        return [{"name": r.name, "version": r.version, "instrument": r.instrument, "state_machine": f"sm-{r.name}",
                 "definition": r.model_dump(mode="json")} for r in recipes]

    def registered_recipe(self, name):
        return self.recipes.get(name)

    def recipe_version(self, name, version):
        return self.recipes.get(name, version)

    def parameter_value_records(self, recipe):
        return []

    def run_records(self, status=None):
        return [_record(r) for r in (self.store.runs_with_status(status) if status
                                     else sorted(self.store.runs.values(), key=lambda r: r.created_at))]

    def run_record(self, run_id):
        return _record(self.store.runs[run_id]) if run_id in self.store.runs else None

    def run_slots(self):
        in_use = self.store.slots_in_use(list(RESOURCE_CLASSES))
        return {rc: len(ids) for rc, ids in in_use.items()}, dict(self.capacity)

    def run_records_page(self, status, limit, start):
        if status:  # in start order, positioned by the run's index
            records = self.run_records(status)
            after = int(start["after"][0]) if start else 0
            following = {"after": [str(after + limit)]} if len(records) > after + limit else None
            return records[after:after + limit], following
        return _page(self.run_records(), lambda r: (str(r["created_at"]), r["run_id"]), limit, start)

    def runs_entered_since(self, at):
        since = at.replace(minute=0, second=0, microsecond=0)
        return dict(Counter(entry.status for run in self.store.runs.values() for entry in run.history
                            if entry.at >= since))


def _page(rows, key, limit, start):
    """A page of rows newest first by ``key``, as a listing index gives it."""
    return rows_after(sorted(rows, key=key, reverse=True), key, limit, start)


def fake_provenance(service) -> Provenance:
    """The provenance read model over a run service's fake store."""
    return Provenance(FakeReads(service.store, service.recipes))


class FakeDocuments:
    """Buckets by role as dicts of key -> document (JSON or text)."""

    def __init__(self):
        self.buckets: dict[str, dict] = {"work": {}, "data": {}}
        self.tags: dict[tuple[str, str], dict] = {}  # (bucket, key) -> object tags

    def location(self, bucket):
        return f"obsflow-test-{bucket}"

    def put_json(self, bucket, key, document, tags=None):
        self.buckets[bucket][key] = copy.deepcopy(document)
        self._tag(bucket, key, tags)
        return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()

    def get_json(self, bucket, key):
        if key not in self.buckets[bucket]:
            raise NotFound(f"{bucket}/{key} does not exist")
        return copy.deepcopy(self.buckets[bucket][key])

    def get_json_many(self, bucket, keys):
        return [self.get_json(bucket, key) for key in keys]

    def put_text(self, bucket, key, text, tags=None):
        self.buckets[bucket][key] = text
        self._tag(bucket, key, tags)

    def put_bytes(self, bucket, key, body, content_type):
        self.buckets[bucket][key] = bytes(body)

    def get_bytes(self, bucket, key):
        """The object's bytes: a JSON document's as hashed by put_json, a text's encoded."""
        if key not in self.buckets[bucket]:
            raise NotFound(f"{bucket}/{key} does not exist")
        body = self.buckets[bucket][key]
        if isinstance(body, (bytes, bytearray)):
            return body
        return body.encode() if isinstance(body, str) else json.dumps(body, sort_keys=True, default=str).encode()

    def copy(self, source_bucket, source_key, bucket, key, tags=None):
        self.buckets[bucket][key] = self.buckets[source_bucket].get(source_key, b"product")
        self._tag(bucket, key, tags)

    def _tag(self, bucket, key, tags):
        self.tags[(bucket, key)] = dict(tags or {})

    def tag_prefix(self, bucket, prefix, tags):
        keys = [key for key in self.buckets[bucket] if key.startswith(prefix)]
        for key in keys:
            self._tag(bucket, key, tags)
        return len(keys)

    def exists(self, bucket, key):
        return key in self.buckets[bucket]

    def keys(self, bucket, prefix):
        return {key for key in self.buckets[bucket] if key.startswith(prefix)}

    def delete_prefix(self, bucket, prefix):
        doomed = [key for key in self.buckets[bucket] if key.startswith(prefix)]
        for key in doomed:
            del self.buckets[bucket][key]
        return len(doomed)


class FakeExecutions:
    def __init__(self, failing: bool = False):
        self.started: list[str] = []
        self.stopped: list[tuple[str, str]] = []
        self.failing = failing

    def start(self, run):
        if self.failing:
            raise TransientError("Step Functions is unavailable")
        self.started.append(run.execution_name)
        return f"arn:aws:states:us-east-1:123456789012:execution:m:{run.execution_name}"

    def links(self, execution_arn, log_stream):
        return {"execution": execution_arn}

    def log_excerpt(self, log_stream):
        return f"last lines of {log_stream}" if log_stream else None

    def stop(self, run, reason):
        self.stopped.append((run.run_id, reason))
        return [f"{run.run_id}-inventory"]

    def failed_chunk(self, array_job_id):
        return {"index": 2, "exit_code": 1, "log_stream": f"{array_job_id}:2/log", "reason": "Essential container in task exited"}


class FakeNotifier:
    def __init__(self):
        self.pi, self.operators, self.nudges = [], [], []

    def notify_pi(self, proposal_id, dataset_id, subject, message):
        self.pi.append((proposal_id, dataset_id))

    def notify_operators(self, ticket):
        self.operators.append(ticket.ticket_id)

    def nudge(self, reason):
        self.nudges.append(reason)


class FakeSwitch:
    def __init__(self):
        self.state = "active"

    def is_paused(self):
        return self.state == "paused"

    def set(self, state, reason=""):
        self.state = state
