"""Cataloguing: a run's products become a versioned dataset, and data quality decides between versions.

A new version of a product that has an ACTIVE one asks for a decision (both stay ACTIVE until then, and what was
made from the old one stays as it is); a decision deprecates, keeps both or rejects. A deprecated or rejected
dataset's consumers are marked as built on a superseded input, and one review ticket gives the plan that would
reprocess them (and what was made from them) on the version that replaced it: nothing re-runs by itself.
"""

from __future__ import annotations

import datetime as dt
import json

from obsflow import embargo, qc
from obsflow.embargo import EMBARGOED
from obsflow.errors import NotFound
from obsflow.observability import logger
from obsflow.runs import layout, records
from obsflow.runs.certification import Certification, judge
from obsflow.runs.context import NotAllowed, Part
from obsflow.runs.costs import task_vcpu_s
from obsflow.runs.domain import ACTIVE, DEPRECATED, DEVELOPMENT, OPEN, REJECTED, RUN_CANCELLED, Dataset, Run, Ticket
from obsflow.runs.planning import Planning
from obsflow.runs.ports import Documents
from obsflow.runs.reprocessing import Change, Planner
from obsflow.runs.ticketing import Tickets
from obsflow.statuses import UNCERTIFIED

DECISIONS = ("keep-both", "deprecate", "reject")
INDEXED_SINCE_EVER = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)  # before any dataset: all are indexed


class Cataloguing(Part):
    def __init__(self, ctx, planning: Planning, tickets: Tickets, certification: Certification):
        super().__init__(ctx)
        self.planning, self.tickets, self.certification = planning, tickets, certification

    def catalog(self, run_id: str) -> dict:
        """Copy the run's products to the data bucket and record the dataset; instances that consumed an
        earlier dataset of the same instance are queued for re-execution."""
        run = self.require_run(run_id)
        if run.status == RUN_CANCELLED:
            raise NotAllowed(f"run {run_id} was cancelled: nothing of it is catalogued")
        recipe = self.recipes.get(run.recipe, run.version)
        instance = self.instance_of(run)
        campaign = self.store.campaign(run.campaign) if run.campaign else None
        developer = campaign is not None and campaign.developer
        dataset_id = layout.dataset_id(run_id)
        prefix = layout.dataset_prefix(run.proposal_id, dataset_id, recipe.kind, campaign.name if developer else None)
        task_records = self.task_records(run)
        input_dataset = self.documents.get_json("work", run.input_dataset_key or instance.input_dataset_key)
        product_id = layout.product_id_of(input_dataset)
        today = self.clock().date()
        release_basis, release, proposal = self.planning.release(run.proposal_id, instance.observed_on, input_dataset)
        embargoed, tags = embargo.is_embargoed(release, today), embargo.tags(run.proposal_id, release, today)
        files = []
        keep_all = campaign is not None and campaign.keep_intermediates
        for record in task_records:
            for output in record.get("outputs", []):
                intermediate = "product" not in output["tags"]
                if intermediate and not keep_all:
                    continue
                key = prefix + (f"intermediates/{record['task']}/" if intermediate else "") + output["name"]
                self.documents.copy("work", output["key"], "data", key, tags)
                files.append({"name": output["name"], "key": key, "sha256": output["sha256"], "size": output["size"],
                              "task": record["task"], "tags": output["tags"], "content_type": output.get("content_type")})
        self.documents.put_text("data", prefix + "SHA256SUMS",
                                "".join(f"{f['sha256']}  {f['name']}\n" for f in sorted(files, key=lambda f: f["name"])),
                                tags)
        provenance = records.provenance(run, input_dataset, task_records)
        self.documents.put_json("data", prefix + "provenance.json", provenance, tags)
        key = records.version_key(input_dataset, run, task_records, recipe)
        dataset = Dataset(
            dataset_id, run_id=run_id, proposal_id=run.proposal_id, candidate_id=run.candidate_id,
            recipe=run.recipe_key, bucket=self.documents.location("data"), prefix=prefix, product_id=product_id,
            version_key=key, frame_count=sum("l1" in f["tags"] for f in files), files=files,
            provenance=provenance, created_at=self.clock(), kind=recipe.kind, instance_id=run.instance_id,
            reference=instance.reference, recipe_name=run.recipe,
            code_version=",".join(sorted({r["code_version"] for r in task_records})) or None,
            campaign=run.campaign, status=DEVELOPMENT if developer else ACTIVE,
            expires_at=self.clock() + dt.timedelta(days=campaign.retention_days) if developer else None,
            release_date=release.isoformat(), release_basis=release_basis,
            embargo=EMBARGOED if embargoed else None,
        )
        values, notes = self.qc_of(dataset)
        if recipe.kind == "calibration":
            dataset.certification = UNCERTIFIED  # until its gates pass, or a person certifies it
            dataset.certification_gates = judge(recipe, values)  # recorded with it: never seen without them
        if not self.store.create_dataset(dataset):
            dataset = self.store.dataset(dataset_id)  # a re-delivered event: the dataset as first recorded
        self.store.record_qc(dataset.dataset_id, values, notes, dataset.created_at)
        if recipe.kind == "calibration":
            self.certification.after_catalog(dataset, recipe, values)
        if not developer:  # a developer's dataset is no version of the product: it never competes
            self._ask_for_decision(dataset_id, product_id, recipe.kind, run)
        output_bytes = sum(f["size"] for f in files)
        # its cost is recorded when it ends (FinishRun: runs.accounting), on the run and the dataset
        self.store.update_run(run_id, dataset_id=dataset_id, output_bytes=output_bytes,
                              measured_cpu_s=task_vcpu_s(task_records, recipe))
        self.store.update_instance(run.instance_id, dataset_id=dataset_id)
        location = f"s3://{self.documents.location('data')}/{prefix}"
        subject, message = records.availability_message(dataset_id, product_id, key, run, location, files, release,
                                                        embargoed, proposal)
        logger.info("dataset catalogued", extra={"run_id": run_id, "dataset_id": dataset_id, "files": len(files),
                                                 "kind": recipe.kind})
        return {"dataset_id": dataset_id, "proposal_id": run.proposal_id, "subject": subject,
                "message": json.dumps(message, indent=2, sort_keys=True), "kind": recipe.kind,
                "notify_pi": recipe.kind == "science" and not developer}

    def qc_of(self, dataset: Dataset) -> tuple[dict[str, float], dict[str, str]]:
        """The dataset's QC values from its quality metrics (the JSON files tagged "quality"), and notes for those
        that cannot be kept as numbers (the store records both, queryable per metric)."""
        values, notes = read_qc(self.documents, dataset)
        kept, unkept = qc.recordable(values)
        notes.update(unkept)
        if notes:
            logger.warning("QC values not recorded", extra={"dataset_id": dataset.dataset_id, "notes": notes})
        return kept, notes

    def reindex_qc(self) -> dict:
        """Record the QC values of every dataset catalogued before they were recorded (once, after the upgrade);
        running it again finds nothing more to do."""
        done = []
        for dataset in self.store.datasets_without_qc():
            self.store.record_qc(dataset.dataset_id, *self.qc_of(dataset), dataset.created_at)
            done.append(dataset.dataset_id)
        self.store.all_qc_indexed(INDEXED_SINCE_EVER)
        logger.info("QC values reindexed", extra={"datasets": len(done)})
        return {"reindexed": sorted(done)}

    def task_records(self, run: Run) -> list[dict]:
        """The provenance record of every task of the run, in the order they finished."""
        found = []
        for task in self.recipes.get(run.recipe, run.version).tasks:
            try:
                found.append(self.documents.get_json("work", layout.task_record_key(run.run_id, task.name)))
            except NotFound:
                continue
        return sorted(found, key=lambda r: r.get("finished_at") or "")

    def _ask_for_decision(self, dataset_id: str, product_id: str, kind: str, run: Run) -> None:
        """A new version of a product that has an ACTIVE one: both stay ACTIVE, and data quality decides."""
        active = sorted(d.dataset_id for d in self.store.datasets_of_product(product_id)
                        if d.dataset_id != dataset_id and d.status == ACTIVE and d.kind == kind)
        if not active:
            return
        self.tickets.file(Ticket(
            layout.decision_ticket_id(dataset_id), kind="review:decision", created_at=self.clock(),
            summary=f"dataset {dataset_id} is a new version of product {product_id}, which has ACTIVE "
                    f"{', '.join(active)}: decide which to keep",
            run_id=run.run_id, candidate_id=run.candidate_id, proposal_id=run.proposal_id, recipe=run.recipe_key,
            links={f"compare with {old}": layout.compare_path(old, dataset_id) for old in active},
            suggested_action=f"compare them (`obsflow datasets compare {active[0]} {dataset_id}`, or the monitor's "
                             f"{layout.compare_path(active[0], dataset_id)}), then `obsflow datasets decide {dataset_id} "
                             f"--deprecate {active[0]} | --keep-both | --reject --reason TEXT`",
        ))

    def decide(self, dataset_id: str, action: str, reason: str, by: str, old_id: str | None = None) -> Dataset:
        """Record a data-quality decision on a new version: keep both ACTIVE, deprecate an older version of
        its product in its favour, or reject it. Asking the same decision again changes nothing."""
        new = self.require_dataset(dataset_id)
        if action not in DECISIONS:
            raise ValueError(f"unknown decision {action!r}: one of {', '.join(DECISIONS)}")
        if not reason.strip():
            raise ValueError("a decision needs a reason (--reason TEXT): it is kept with the dataset")
        decision = {"decision": action, "by": by, "at": self.clock().isoformat(), "reason": reason}
        if action == "deprecate":
            old = self.require_dataset(old_id or "")
            if old.product_id != new.product_id or old.dataset_id == new.dataset_id:
                raise NotAllowed(f"dataset {old.dataset_id} is not another version of product {new.product_id} "
                                 f"(it is of {old.product_id}); `obsflow datasets show {dataset_id}` lists its versions")
            if old.status == DEPRECATED and old.superseded_by == dataset_id:
                return new
            if old.status != ACTIVE or new.status != ACTIVE:
                raise NotAllowed(f"only an ACTIVE dataset can be deprecated in favour of an ACTIVE one: {old.dataset_id} "
                                 f"is {old.status}, {dataset_id} is {new.status}")
            decision["deprecated"] = old.dataset_id
            self.store.update_dataset(old.dataset_id, status=DEPRECATED, superseded_by=dataset_id,
                                      decisions=[*old.decisions, decision])
            self._superseded(old, new, DEPRECATED, decision)
        elif any(d["decision"] == action for d in new.decisions):
            return new
        elif action == "keep-both" and (deprecated := [d for d in new.decisions if d["decision"] == "deprecate"]):
            raise NotAllowed(f"dataset {dataset_id} already replaced {deprecated[-1]['deprecated']} (deprecated by "
                             f"{deprecated[-1]['by']} at {deprecated[-1]['at']}): keeping both contradicts it")
        elif new.status != ACTIVE:
            raise NotAllowed(f"dataset {dataset_id} is {new.status}; a decision applies to an ACTIVE dataset")
        status = REJECTED if action == "reject" else new.status
        self.store.update_dataset(dataset_id, status=status, decisions=[*new.decisions, decision])
        if action == "reject":
            self._fall_back_from(new, decision)
        ticket = self.store.ticket(layout.decision_ticket_id(dataset_id))
        if ticket is not None and ticket.status == OPEN:
            self.tickets.resolve(ticket.ticket_id, f"{action}: {reason}", by)
        logger.info("dataset decision", extra={"dataset_id": dataset_id, **decision})
        return self.store.dataset(dataset_id)

    def _fall_back_from(self, rejected: Dataset, decision: dict) -> None:
        """A rejected dataset is no input: its instance goes back to its newest ACTIVE dataset, and what was made
        from it is marked, with the plan that would make it again from that one."""
        instance = self.store.instance(rejected.instance_id) if rejected.instance_id else None
        others = [d for d in self.store.datasets_of_instance(instance.instance_id) if d.status == ACTIVE] if instance else []
        newest = max(others, key=lambda d: d.created_at) if others else None
        if instance is not None and instance.dataset_id == rejected.dataset_id and newest is not None:
            self.store.update_instance(instance.instance_id, dataset_id=newest.dataset_id)
        self._superseded(rejected, newest, REJECTED, decision)

    def _superseded(self, old: Dataset, replacement: Dataset | None, status: str, decision: dict) -> None:
        """Each ACTIVE dataset made from ``old`` records it as a superseded input, and one review ticket lists them
        with the plan that would reprocess them, and what was made from them, on ``replacement``."""
        planner = Planner(self.planning)
        consumers = planner.consumers(old.dataset_id)
        if not consumers:
            return
        note = {"dataset_id": old.dataset_id, "status": status, "replaced_by": replacement and replacement.dataset_id,
                "by": decision["by"], "at": decision["at"], "reason": decision["reason"]}
        for consumer in consumers:
            if all(s["dataset_id"] != old.dataset_id for s in consumer.superseded_inputs):
                self.store.update_dataset(consumer.dataset_id, superseded_inputs=[*consumer.superseded_inputs, note])
        names = ", ".join(c.dataset_id for c in consumers[:5]) + (" ..." if len(consumers) > 5 else "")
        remade = {c.dataset_id: made.dataset_id for c in consumers
                  if replacement is not None and (made := planner.remade_from(c, replacement.dataset_id))}
        if remade and len(remade) == len(consumers):
            action = (f"each was made again from {replacement.dataset_id} already ("
                      + ", ".join(f"{was} -> {now}" for was, now in sorted(remade.items())[:5])
                      + "): decide between the versions (their `review:decision` tickets, `obsflow datasets compare`)")
        elif replacement is None:
            action = (f"no ACTIVE version of {old.product_id} replaces it: keep them as they are, or reject them "
                      "(`obsflow datasets decide ID --reject --reason TEXT`) until a new version is made")
        else:
            plan = planner.plan(Change(supersede=((old.dataset_id, replacement.dataset_id),)), decision["by"])
            totals = plan["totals"]
            action = (f"`obsflow reprocess start {plan['plan_id']} --name NAME --reason TEXT` makes the "
                      f"{totals['datasets'] - totals['downstream']} not yet made again from {replacement.dataset_id}, "
                      f"and the {totals['downstream']} dataset(s) made from them "
                      f"(about {totals['cpu_seconds']:.0f} CPU-seconds, ${totals['usd']:.4f}); `obsflow reprocess plan "
                      f"--superseded {old.dataset_id}` shows the plan again")
        self.tickets.file(Ticket(
            f"TKT-superseded-{old.dataset_id}", kind="review:superseded", created_at=self.clock(),
            summary=f"{len(consumers)} ACTIVE dataset(s) were made from {old.dataset_id}, now {status}: {names}",
            proposal_id=old.proposal_id, recipe=old.recipe, suggested_action=action))
        logger.info("consumers of a superseded dataset marked", extra={"dataset_id": old.dataset_id,
                                                                       "consumers": len(consumers)})


def read_qc(documents: Documents, dataset: Dataset) -> tuple[dict[str, float], dict[str, str]]:
    """A dataset's QC values as its quality metrics (the JSON files tagged "quality") give them, and a note for each
    of those files that could not be read."""
    values, notes = {}, {}
    for file in dataset.files:
        if "quality" in file["tags"] and file["name"].endswith(".json"):
            try:
                metrics = documents.get_json("data", file["key"])
            except NotFound:
                notes[file["name"]] = f"quality metrics {file['key']} are missing from the data bucket"
                continue
            if isinstance(metrics, dict):
                values.update(qc.qc_values(metrics))
            else:
                notes[file["name"]] = "the quality metrics are no JSON object: no QC values read"
    return values, notes
