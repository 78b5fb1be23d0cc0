"""Campaigns: named groups of recipe runs with a definer, a reason, an input selection and a blast radius.

A campaign is created as a DRAFT, edited while DRAFT or PAUSED, started (its instances
are inserted and the submitter runs them, below new observations unless its priority
is raised, at most ``max_concurrent`` at once), paused by a person or by itself after
``pause_after_failures`` failed instances (with a ticket), resumed or cancelled.
Its inputs are a reprocessing plan, or a selection: an ID set of frame, OP, candidate
or dataset ids, human tags to include or exclude, a catalogue query with QC filters (``qc.METRIC<VALUE``, obsflow.qc),
and a recipe version to run on them.
A recurring campaign (``schedule``) evaluates its selection again at each occurrence and runs
what no earlier occurrence selected; it runs until cancelled.
Documents (a plan, a test report, minutes) are kept with it in S3, recorded with who, when and why.
A campaign estimated above the stage's approval size (Settings.campaign_approval_cpu_hours,
campaign_approval_output_bytes) starts AWAITING_APPROVAL: its instances are inserted, and the
submitter holds their runs until the data-quality or operator role approves it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import mimetypes
import re
import statistics
import unicodedata
from collections import Counter

from obsflow.errors import NotFound, TransientError
from obsflow.ids import ID_RULE, is_id
from obsflow.observability import logger
from obsflow.qc import SYNTAX, parse_filters
from obsflow.runs import layout
from obsflow.runs.domain import (
    ACTIVE,
    AWAITING_APPROVAL,
    CAMPAIGN_PAUSED,
    CAMPAIGN_RUNNING,
    CAMPAIGN_TYPES,
    CANCELLED,
    DEVELOPMENT,
    DRAFT,
    ERROR,
    EXPIRED,
    INSTANCE_SUCCEEDED,
    MAX_PRIORITY,
    REJECTED,
    Campaign,
    FrameRef,
    Instance,
    InstanceInput,
    Ticket,
)
from obsflow.runs.ports import DatasetQuery, JobDefinitions
from obsflow.runs.cataloguing import read_qc
from obsflow.runs.costs import summed
from obsflow.runs.reprocessing import Change, Planner
from obsflow.runs.schedules import check_schedule, next_occurrence
from obsflow.runs.service import NotAllowed, RunService
from obsflow.runs.transitions import CAMPAIGN_MOVES

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")
EDITABLE = ("reason", "max_concurrent", "pause_after_failures", "priority", "overrides", "selection", "recipe",
            "retention_days")
DEFAULT_RETENTION_DAYS = 14
FIXED_ONCE_STARTED = ("selection", "recipe", "overrides", "priority")  # copied into its instances at start
QUERY_FILTERS = ("uses_frame", "recipe", "code_version", "calibration", "status", "campaign")
ID_KINDS = ("frames", "ops", "candidates", "datasets")
MAX_ID_SET = 100_000  # ids in one campaign's ID set (a DKIST day is of this order)
MAX_DOCUMENT_BYTES = 50 * 2**20  # a campaign's document is a plan or a report; data belong in the data bucket
MAX_NOTE = 2000
# Safe as the last part of an S3 key, in a download's Content-Disposition and on a page, on every file system.
DOCUMENT_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._+() -]{0,126}[A-Za-z0-9._+()-])?$")
ATTACH_ATTEMPTS = 5  # tries to record a document while others are attached to the same campaign at the same time


def check_name(name: str) -> str:
    if not NAME.match(name or ""):
        raise ValueError(f"{name!r} is not a campaign name: lower-case letters, digits and '-', at most 48, "
                         "starting with a letter or digit")
    return name


def read_id_set(document) -> dict[str, list[str]]:
    """An uploaded ID set: {"frames": [...], "ops": [...], "candidates": [...], "datasets": [...]} (any of them),
    or a plain list of ids of any kind (kept under "ids": dataset ids start with ``ds-``, the others are looked up).
    Every entry is an id (the one rule of obsflow.ids), and a set holds at most MAX_ID_SET."""
    if isinstance(document, list):
        document = {"ids": document}
    if not isinstance(document, dict) or not set(document) <= {*ID_KINDS, "ids"} or not all(
            isinstance(v, list) for v in document.values()):
        raise ValueError(f"an ID set is a JSON list of ids, or an object with lists under {', '.join(ID_KINDS)}")
    entries = [i for ids in document.values() for i in ids]
    if len(entries) > MAX_ID_SET:
        raise ValueError(f"the ID set holds {len(entries):,} ids; at most {MAX_ID_SET:,} (split the campaign)")
    bad = [i for i in entries if not isinstance(i, str) or not is_id(i)]
    if bad:
        raise ValueError(f"the ID set holds {len(bad)} entr(y/ies) that are no id ({ID_RULE}): "
                         f"{', '.join(repr(b) for b in bad[:3])}")
    return {kind: list(ids) for kind, ids in document.items()}


def check_document_name(name: str) -> str:
    if not name:
        raise ValueError("the document has no file name")
    if "/" in name or "\\" in name:
        raise ValueError(f"{name!r} is a path, not a file name: attach the file itself (its own name is kept)")
    if ".." in name:
        raise ValueError(f"{name!r} holds '..': rename the file")
    control = next((c for c in name if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")), None)
    if control is not None:
        raise ValueError(f"{name!r} holds a control character (U+{ord(control):04X}): rename the file")
    if not DOCUMENT_NAME.match(name):
        raise ValueError(f"{name!r} is not a document name: at most 128 of letters, digits, ' ', '.', '_', '-', '+', "
                         "'(' and ')', beginning with a letter or digit and not ending in a space; rename the file")
    return name


class CampaignService:
    def __init__(self, runs: RunService, dataset_query: DatasetQuery, job_definitions: JobDefinitions | None = None):
        """``dataset_query``: the catalogue query a selection's ``query`` and ``qc`` ask (the read side's provenance)."""
        self.runs, self.store, self.job_definitions = runs, runs.store, job_definitions
        self.dataset_query, self.planner = dataset_query, Planner(runs, dataset_query)

    def require(self, name: str) -> Campaign:
        campaign = self.store.campaign(name)
        if campaign is None:
            raise NotFound(f"no campaign {name!r}; `obsflow campaigns list` shows them")
        return campaign

    # -- definition ------------------------------------------------------------------------------
    def create(self, name: str, campaign_type: str, definer: str, reason: str, **definition) -> Campaign:
        return self._create(name, campaign_type, definer, reason, **definition)[0]

    def _create(self, name: str, campaign_type: str, definer: str, reason: str, **definition) -> tuple[Campaign, bool]:
        """The campaign, and whether this call created it."""
        check_name(name)
        if campaign_type not in CAMPAIGN_TYPES:
            raise ValueError(f"unknown campaign type {campaign_type!r}: one of {', '.join(CAMPAIGN_TYPES)}")
        if not reason.strip():
            raise ValueError("a campaign needs a reason (--reason TEXT)")
        campaign = Campaign(name, campaign_type, definer, reason, self.runs.clock(), **definition)
        self._check(campaign)
        selects = self._instances(campaign, save=False)  # a DRAFT that could not start is refused now, with the reason
        if not selects and not campaign.schedule:  # a recurring one may wait for data to come
            raise ValueError(f"campaign {name} selects nothing to process")
        campaign.history = [self._event(DRAFT, definer, "created")]
        if not self.store.create_campaign(campaign):
            existing = self.require(name)
            if (existing.plan_id, existing.selection, existing.recipe) != (campaign.plan_id, campaign.selection,
                                                                          campaign.recipe):
                raise NotAllowed(f"campaign {name} exists with another definition (by {existing.definer}); "
                                 "choose another name or `obsflow campaigns edit` it")
            return existing, False
        return self.require(name), True

    def _check(self, campaign: Campaign) -> None:
        developer_only = [name for name in ("task_image", "retention_days", "rerun_from_task")
                          if getattr(campaign, name)] + (["keep_intermediates"] if campaign.keep_intermediates else [])
        if developer_only and not campaign.developer:
            raise ValueError(f"only a developer campaign (--type developer) takes {', '.join(developer_only)}")
        if campaign.developer and campaign.retention_days is None:
            campaign.retention_days = DEFAULT_RETENTION_DAYS
        if campaign.retention_days is not None and not 1 <= campaign.retention_days <= 3650:
            raise ValueError("--retention-days is 1-3650")
        if campaign.calibration:
            calibration = self.store.dataset(campaign.calibration)
            if calibration is None or calibration.kind != "calibration":
                raise ValueError(f"{campaign.calibration!r} is no calibration dataset; `obsflow calibrations list` "
                                 "shows them")
            usable = (ACTIVE, DEVELOPMENT) if campaign.developer else (ACTIVE,)
            if calibration.status not in usable:
                raise ValueError(f"calibration {calibration.dataset_id} is {calibration.status}: a {campaign.campaign_type} "
                                 f"campaign uses {' or '.join(usable)} calibrations only (a DEVELOPMENT one only in a "
                                 "developer campaign, whose datasets never become products)")
        if campaign.schedule:
            check_schedule(campaign.schedule)
            if campaign.plan_id or campaign.task_image:
                raise ValueError("a recurring campaign runs a recipe on a selection with the stage's task image (a "
                                 "reprocessing plan or a developer image runs once)")
        if campaign.plan_id is None and not (campaign.selection and campaign.recipe):
            raise ValueError("a campaign runs a reprocessing plan, or a recipe (--recipe NAME@VERSION) on a selection "
                             "(--ids FILE, --include-tag TAG, --where FILTER=VALUE, --where qc.METRIC<VALUE)")
        if campaign.recipe:
            name, _, version = campaign.recipe.partition("@")
            recipe = self.runs.recipes.get(name, version or None)
            campaign.recipe = recipe.key
            recipe.as_run_configuration(dt.date.today(), campaign.overrides)  # RecipeError for a bad --set
            if campaign.rerun_from_task:
                recipe.task(campaign.rerun_from_task)  # RecipeError for an unknown task
        if not (1 <= campaign.max_concurrent <= 1000 and 1 <= campaign.pause_after_failures <= 100000
                and 0 <= campaign.priority <= MAX_PRIORITY):
            raise ValueError(f"limits out of range: --max-concurrent 1-1000, --pause-after 1-100000, "
                             f"--priority 0-{MAX_PRIORITY}")

    def edit(self, name: str, by: str, **changes) -> Campaign:
        """Change a DRAFT or PAUSED campaign (a running one is paused first)."""
        campaign = self.require(name)
        if campaign.status not in (DRAFT, CAMPAIGN_PAUSED):
            raise NotAllowed(f"campaign {name} is {campaign.status}; pause it first (`obsflow campaigns pause {name}`)")
        unknown = set(changes) - set(EDITABLE)
        if unknown:
            raise ValueError(f"cannot edit {', '.join(sorted(unknown))}; editable: {', '.join(EDITABLE)}")
        fixed = sorted(set(changes) & set(FIXED_ONCE_STARTED))
        if campaign.status != DRAFT and fixed:
            raise NotAllowed(f"campaign {name} has started: its {', '.join(fixed)} went into its instances and are "
                             "fixed; create another campaign")
        edited = dataclasses.replace(campaign, **changes)
        self._check(edited)
        what = ", ".join(f"{k}={v}" for k, v in sorted(changes.items()))
        self.store.update_campaign(name, **{k: getattr(edited, k) for k in changes},
                                   history=[*campaign.history, self._event(campaign.status, by, f"edited: {what}")])
        return self.require(name)

    # -- lifecycle -------------------------------------------------------------------------------
    def start_plan(self, plan_id: str, name: str, definer: str, reason: str, **limits) -> Campaign:
        """One campaign per plan: the same start again (at the same time, or later) gives that campaign, whose
        history says who started it when; a start under another name is refused, naming the campaign."""
        self.planner.load(plan_id)  # NotFound for an unknown plan, before anything is recorded
        running = [c for c in self.store.all_campaigns() if c.plan_id == plan_id and c.name != name]
        if running:
            raise NotAllowed(f"plan {plan_id} is already run by campaign {running[0].name} ({running[0].status}, "
                             f"by {running[0].definer}); `obsflow campaigns show {running[0].name}`")
        campaign, created = self._create(name, "reprocessing", definer, reason, plan_id=plan_id, **limits)
        if not created and campaign.status != DRAFT:  # started before (or at the same time): nothing more
            return campaign
        return self.start(name, definer)

    def start(self, name: str, by: str) -> Campaign:
        """Insert the campaign's instances (once) and let the submitter run them."""
        campaign = self.require(name)
        if campaign.status == CANCELLED:
            raise NotAllowed(f"campaign {name} is CANCELLED")
        if campaign.status != DRAFT:
            return campaign  # started before: nothing more to insert
        if campaign.schedule:  # its first occurrence now (once, if two start it at the same time)
            self._occur(campaign, self.runs.clock(), by, status=CAMPAIGN_RUNNING)
            return self.require(name)
        instances = self._instances(campaign)
        if not instances:
            raise ValueError(f"campaign {name} selects nothing to process")
        if campaign.task_image and not campaign.task_image.startswith("path:") and not campaign.job_definitions:
            # Before any instance exists: its runs start on these revisions (StartRun names them).
            if self.job_definitions is None:
                raise ValueError("a task image needs AWS Batch here; locally use --task-image path:DIR")
            classes = sorted({rc for i in instances for rc in self.runs.recipes.get(i.recipe, i.version).resource_classes()})
            self.store.update_campaign(name, job_definitions=self.job_definitions.register_image(campaign.task_image,
                                                                                                 classes))
        approval = self.approval_needed(campaign, instances)
        for instance in instances:  # its runs wait while it is a DRAFT (CampaignGate): none starts before this
            if self.store.create_instance(instance):
                self.runs.refresh_instance(instance.instance_id)
        step = CAMPAIGN_MOVES["await_approval" if approval else "start"]
        started = f"started: {len(instances)} instance(s)" + (f"; {approval['needed']}" if approval else "")
        self.store.update_campaign(name, status=step.to, status_reason=approval["needed"] if approval else None,
                                   approval=approval, instance_ids=[i.instance_id for i in instances],
                                   history=[*campaign.history, self._event(step.to, by, started)])
        self.runs.nudge(f"campaign {name} started")
        return self.require(name)

    # -- recurrence ----------------------------------------------------------------------------------
    def run_due_occurrences(self, now: dt.datetime) -> list[dict]:
        """Each RUNNING recurring campaign whose next occurrence is due runs it (the campaign-schedule function, every
        few minutes; a PAUSED one's waits until it resumes). The occurrences recorded."""
        recorded = []
        for campaign in self.store.all_campaigns():
            due = campaign.next_occurrence_at
            if campaign.schedule and campaign.status == CAMPAIGN_RUNNING and due is not None and due <= now:
                try:
                    record = self._occur(campaign, now, "schedule")
                except (NotAllowed, NotFound, ValueError) as exc:  # this campaign's: the others still occur
                    self._occurrence_refused(campaign, now, exc)
                    continue
                if record is not None:
                    recorded.append({"campaign": campaign.name, **record})
        return recorded

    def _occurrence_refused(self, campaign: Campaign, now: dt.datetime, exc: Exception) -> None:
        """One ticket per campaign and occurrence that cannot run (each later pass finds it filed), and an error."""
        number = len(campaign.occurrences) + 1
        self.runs.file_ticket(Ticket(
            f"TKT-campaign-{campaign.name}-occurrence-{number}", kind="review:campaign", created_at=now,
            summary=f"occurrence {number} of recurring campaign {campaign.name} did not run: {exc}"[:1000],
            suggested_action=f"fix what it says, then `obsflow campaigns occur {campaign.name}` (a document under "
                             f"campaigns/{campaign.name}/occurrences/ that contradicts the campaign may have been "
                             f"planted: keep it aside for review, and delete it from there); `obsflow campaigns pause "
                             f"{campaign.name}` stops it being tried every few minutes"))
        logger.error("campaign occurrence refused", extra={"campaign": campaign.name, "occurrence": number,
                                                           "error": str(exc)})

    def occur_now(self, name: str, by: str) -> dict | None:
        """An operator runs a recurring campaign's next occurrence now (its schedule goes on from now)."""
        campaign = self.require(name)
        if not campaign.schedule:
            raise NotAllowed(f"campaign {name} does not recur (create one with --every or --cron)")
        if campaign.status != CAMPAIGN_RUNNING:
            raise NotAllowed(f"campaign {name} is {campaign.status}; only a RUNNING campaign occurs")
        return self._occur(campaign, self.runs.clock(), by)

    def _occur(self, campaign: Campaign, now: dt.datetime, by: str, **changes) -> dict | None:
        """Occurrence N: what the selection matches now that no earlier occurrence selected, kept under the campaign
        before anything is inserted, so a repeated call (at-least-once delivery, two callers) inserts the same
        instances and records it once. The record, or None if another caller recorded it."""
        number, documents = len(campaign.occurrences) + 1, self.runs.documents
        key = layout.occurrence_key(campaign.name, number)
        earlier = self._selected_before(campaign, number)
        frames, dataset_ids = self.selected(campaign.selection or {})
        left_out = {}  # what the campaign's calibration may not serve (nothing crosses proposals): kept out, said why
        for some_id, proposal_id in [*((f.file_id, f.proposal_id) for f in frames if f.file_id not in earlier),
                                     *((d, self.runs.require_dataset(d).proposal_id) for d in dataset_ids
                                       if d not in earlier)]:
            if (why := self._calibration_refuses(campaign, proposal_id)) is not None:
                left_out[some_id] = why
        new = {"frames": [f.file_id for f in frames if f.file_id not in earlier and f.file_id not in left_out],
               "datasets": [d for d in dataset_ids if d not in earlier and d not in left_out]}
        try:
            chosen = documents.get_json("work", key)
        except NotFound:
            chosen = {"number": number, "at": now.isoformat(), "by": by, **new,
                      **({"left_out": left_out} if left_out else {})}
            documents.put_json("work", key, chosen)
        else:  # written by an earlier attempt of this occurrence, or by someone else: only what the campaign selects
            self._check_occurrence_document(campaign.name, number, key, chosen, new)
        instances = self._selection_instances(campaign, self.store.frames_by_id(chosen["frames"]), chosen["datasets"],
                                              occurrence=number)
        for instance in instances:
            if self.store.create_instance(instance):
                self.runs.refresh_instance(instance.instance_id)
        approval = None if campaign.approval else self.approval_needed(campaign, instances)  # once approved, it stands
        if approval:
            changes = {**changes, "status": AWAITING_APPROVAL, "status_reason": approval["needed"], "approval": approval}
        record = {"number": number, "at": chosen["at"], "by": chosen["by"], "frames": len(chosen["frames"]),
                  "datasets": len(chosen["datasets"]), "instances": len(instances), "document": key}
        what = f"occurrence {number}: {len(instances)} instance(s) for {record['frames']} new frame(s) and " \
               f"{record['datasets']} new dataset(s)"
        if chosen.get("left_out"):
            record["left_out"] = len(chosen["left_out"])
            what += f"; {record['left_out']} left out: {next(iter(chosen['left_out'].values()))}"
        if not self.store.record_occurrence(
                campaign.name, number, **changes, occurrences=[*campaign.occurrences, record],
                instance_ids=list(dict.fromkeys([*campaign.instance_ids, *(i.instance_id for i in instances)])),
                next_occurrence_at=next_occurrence(campaign.schedule, now),
                history=[*campaign.history, self._event(changes.get("status", campaign.status), by, what)]):
            return None
        logger.info("campaign occurred", extra={"campaign": campaign.name, **record})
        if instances:
            self.runs.nudge(f"campaign {campaign.name} {what}")
        return record

    def _selected_before(self, campaign: Campaign, number: int) -> set[str]:
        """What occurrences 1 .. number-1 selected, from their documents, each checked against the campaign's record of
        it: a document gone, unreadable or saying otherwise stops the occurrence (it would run again, or never, what
        the campaign selected)."""
        selected = set()
        for earlier, recorded in zip(range(1, number), campaign.occurrences):
            key = layout.occurrence_key(campaign.name, earlier)
            try:
                document = self.runs.documents.get_json("work", key)
            except NotFound as exc:
                raise NotAllowed(f"occurrence {earlier}'s document {key} is gone: what campaign {campaign.name} "
                                 "selected before is not known, so nothing more is selected") from exc
            except ValueError as exc:  # not JSON
                raise NotAllowed(f"occurrence {earlier}'s document {key} is not JSON: {exc}") from exc
            self._check_occurrence_document(campaign.name, earlier, key, document)
            if (len(document["frames"]), len(document["datasets"])) != (recorded.get("frames"), recorded.get("datasets")):
                raise NotAllowed(f"occurrence {earlier}'s document {key} names {len(document['frames'])} frame(s) and "
                                 f"{len(document['datasets'])} dataset(s), but campaign {campaign.name} recorded "
                                 f"{recorded.get('frames')} and {recorded.get('datasets')}")
            selected.update(document["frames"], document["datasets"])
        return selected

    @staticmethod
    def _check_occurrence_document(name: str, number: int, key: str, document, selectable: dict | None = None) -> None:
        """An occurrence's document is {"number": N, "frames": [ids], "datasets": [ids], ...}; ``selectable``: what
        occurrence N may select now (a document naming anything else is refused, not run)."""
        shaped = isinstance(document, dict) and document.get("number") == number and all(
            isinstance(document.get(kind), list) and all(isinstance(i, str) and is_id(i) for i in document[kind])
            for kind in ("frames", "datasets"))
        if not shaped:
            raise NotAllowed(f"occurrence {number}'s document {key} is not what campaign {name} writes (a number "
                             f"{number}, and lists of frame and dataset ids)")
        if selectable is not None:
            foreign = [i for kind in ("frames", "datasets") for i in document[kind] if i not in set(selectable[kind])]
            if foreign:
                raise NotAllowed(f"occurrence {number}'s document {key} names {len(foreign)} id(s) campaign {name} does "
                                 f"not select now, or selected before: {', '.join(foreign[:5])}")

    def estimate(self, campaign: Campaign, instances: list[Instance]) -> tuple[float, int]:
        """The campaign's estimated CPU-seconds and output bytes: its plan's totals (reused tasks left out), else
        its recipe's measurements (else estimates) per instance, as the DRAFT's preview shows them."""
        if campaign.plan_id:
            totals = self.planner.load(campaign.plan_id)["totals"]
            return float(totals["cpu_seconds"]), int(totals["output_bytes"])
        cpu_s, size = 0.0, 0
        for instance in instances:
            more_cpu, more_bytes = self.runs.estimate(self.runs.recipes.get(instance.recipe, instance.version),
                                                      len(instance.inputs))
            cpu_s, size = cpu_s + more_cpu, size + more_bytes
        return round(cpu_s, 1), size

    def approval_needed(self, campaign: Campaign, instances: list[Instance]) -> dict | None:
        """Why the campaign waits for approval (its estimate above a size the stage sets), or None."""
        settings = self.runs.settings
        cpu_s, size = self.estimate(campaign, instances)
        cpu_limit, bytes_limit = settings.campaign_approval_cpu_hours, settings.campaign_approval_output_bytes
        over = ([f"{cpu_s / 3600:.2f} CPU-hours, above the {cpu_limit:g} set (campaign_approval_cpu_hours)"]
                if cpu_s / 3600 > cpu_limit else []) + \
               ([f"{size / 1e9:.3f} GB of output, above the {bytes_limit / 1e9:g} GB set "
                 "(campaign_approval_output_bytes)"] if size > bytes_limit else [])
        if not over:
            return None
        return {"needed": f"estimated {' and '.join(over)}; `obsflow campaigns approve "
                          f"{campaign.name} --reason TEXT` (data-quality or operator role)",
                "estimated_cpu_s": cpu_s, "estimated_bytes": size}

    def approve(self, name: str, by: str, why: str, role: str | None = None) -> Campaign:
        """Let a campaign AWAITING_APPROVAL run; who, when, as which role and why are kept. Approving it again
        changes nothing (the first approval stands); a campaign that needs no approval is refused, saying so."""
        campaign = self.require(name)
        if campaign.approval and campaign.approval.get("approved_by"):
            return campaign
        if campaign.status == DRAFT:
            raise NotAllowed(f"campaign {name} is a DRAFT: start it first (`obsflow campaigns start {name}`); it waits "
                             "for approval only if its estimate is above the stage's approval size")
        if campaign.status != AWAITING_APPROVAL:
            raise NotAllowed(f"campaign {name} needs no approval: it is {campaign.status}, and its estimate was within "
                             "the stage's approval size when it started")
        why, at = self._reason(why, "approved"), self.runs.clock()
        approval = {**campaign.approval, "approved_by": by, "approved_at": at.isoformat(),
                    "approved_as": role or "operator (no role set: the local stack's single operator)",
                    "reason": why}
        approved = self._move(name, "approve", by, f"approved: {why}", at=at, approval=approval)
        self.runs.nudge(f"campaign {name} approved")
        return approved

    def pause(self, name: str, by: str, why: str) -> Campaign:
        return self._move(name, "pause", by, why or "paused")

    def resume(self, name: str, by: str) -> Campaign:
        campaign = self._move(name, "resume", by, "resumed")
        self.runs.nudge(f"campaign {name} resumed")
        return campaign

    def cancel(self, name: str, by: str, why: str) -> Campaign:
        """Runs already going finish; the unstarted ones end CANCELLED, saying who cancelled the campaign and why."""
        campaign = self._move(name, "cancel", by, why or "cancelled")
        reason = f"campaign {name} cancelled by {by}: {why or 'cancelled'}"
        for instance_id in campaign.instance_ids or ():
            instance = self.store.instance(instance_id)
            for run in self.store.runs_of(instance) if instance else ():
                self.runs.move_run(run.run_id, "withdraw", reason, waiting_reason=reason, finished_at=self.runs.clock())
            if instance:
                self.runs.refresh_instance(instance_id)
        return campaign

    def accept(self, name: str, by: str, why: str) -> Campaign:
        """Data quality keeps what a COMPLETED campaign made."""
        return self._move(name, "accept", by, self._reason(why, "accepted"))

    def reject(self, name: str, by: str, why: str) -> Campaign:
        """Data quality does not keep what a COMPLETED campaign made (its datasets are decided one by one)."""
        return self._move(name, "reject", by, self._reason(why, "rejected"))

    @staticmethod
    def _reason(why: str, verb: str) -> str:
        if not (why or "").strip():
            raise ValueError(f"say why the campaign is {verb} (--reason TEXT): it is kept in its history")
        return why

    def _move(self, name: str, move: str, by: str, why: str, at: dt.datetime | None = None, **changes) -> Campaign:
        """A named move of the campaign's state machine (transitions.CAMPAIGN_MOVES), recorded in its history
        with ``changes`` made in the same update."""
        campaign, step = self.require(name), CAMPAIGN_MOVES[move]
        to = step.to
        if campaign.status == to:
            return campaign
        if campaign.status not in step.sources:
            raise NotAllowed(f"campaign {name} is {campaign.status}; only a {' or '.join(step.sources)} campaign can be "
                             f"made {to}")
        self.store.update_campaign(name, status=to, status_reason=why,
                                   history=[*campaign.history, self._event(to, by, why, at)], **changes)
        return self.require(name)

    def _event(self, status: str, by: str, why: str, at: dt.datetime | None = None) -> dict:
        return {"at": (at or self.runs.clock()).isoformat(), "status": status, "by": by, "why": why}

    # -- what it selects ---------------------------------------------------------------------------
    def _instances(self, campaign: Campaign, save: bool = True) -> list[Instance]:
        """The instances the campaign inserts when it starts; ``save=False``: what it would insert, recording nothing
        (a DRAFT's check at create and its preview)."""
        if campaign.plan_id:
            return self.planner.copies(self.planner.load(campaign.plan_id), campaign.name, campaign.priority)
        frames, dataset_ids = self.selected(campaign.selection or {})
        return self._selection_instances(campaign, frames, dataset_ids, save)

    def _selection_instances(self, campaign: Campaign, frames: list[FrameRef], dataset_ids: list[str],
                             save: bool = True, occurrence: int = 1) -> list[Instance]:
        instances = []
        for dataset_id in dataset_ids if campaign.calibration else ():
            self._calibration_may_serve(campaign, self.runs.require_dataset(dataset_id).proposal_id)
        if dataset_ids:
            change = Change(recipe=campaign.recipe, datasets=tuple(dataset_ids), overrides=campaign.overrides or {},
                            calibration=campaign.calibration, only_selected=campaign.developer)
            plan = self.planner.plan(change, campaign.definer, save=save)
            instances += self.planner.copies(plan, campaign.name, campaign.priority)
        return instances + self._frame_instances(campaign, frames, occurrence)

    def selected(self, selection: dict) -> tuple[list[FrameRef], list[str]]:
        """The frames and datasets a selection names: its ID set, included tags and catalogue query (the filters
        of `obsflow datasets list`, its QC filters ANDed with them), less the excluded tags."""
        ids = read_id_set(selection.get("ids") or {})
        if selection.get("query") or selection.get("qc"):
            unknown = set(selection.get("query") or {}) - set(QUERY_FILTERS)
            if unknown:
                raise ValueError(f"unknown query filter(s) {', '.join(sorted(unknown))}; known: {', '.join(QUERY_FILTERS)}"
                                 f", and QC filters ({SYNTAX})")
            ids.setdefault("datasets", []).extend(sorted(self.dataset_query.dataset_ids(
                parse_filters(selection.get("qc") or ()), **(selection.get("query") or {}))))
        for tag in selection.get("include_tags", []):
            ids.setdefault("ids", []).extend(self.store.tagged(tag))
        excluded = {i for tag in selection.get("exclude_tags", []) for i in self.store.tagged(tag)}
        datasets = [i for i in ids.get("datasets", []) if i not in excluded]
        frame_ids, op_ids = list(ids.get("frames", [])), list(ids.get("ops", []))
        for candidate_id in ids.get("candidates", []):
            candidate = self.store.candidate(candidate_id)
            if candidate is None:
                raise NotFound(f"the ID set names candidate {candidate_id!r}, which is not recorded")
            op_ids += candidate.op_ids
        unknown = []
        for some_id in ids.get("ids", []):
            if some_id.startswith("ds-"):
                datasets.append(some_id)
            elif self.store.frames_by_id([some_id]):
                frame_ids.append(some_id)
            elif self.store.op_progress([some_id]):
                op_ids.append(some_id)
            elif (candidate := self.store.candidate(some_id)) is not None:
                op_ids += candidate.op_ids
            else:
                unknown.append(some_id)
        if unknown:
            raise NotFound(f"the ID set names {len(unknown)} id(s) that are no frame, OP, candidate or dataset: "
                           f"{', '.join(unknown[:5])}")
        frames = {f.file_id: f for f in self.store.frames_by_id(frame_ids)}
        if len(frames) != len(set(frame_ids)):
            missing = sorted(set(frame_ids) - set(frames))
            raise NotFound(f"the ID set names frame(s) not in the inventory: {', '.join(missing[:5])}")
        frames.update({f.file_id: f for f in self.store.frames_of_ops(sorted(set(op_ids)))})
        chosen = [f for f in frames.values() if f.file_id not in excluded and f.op_id not in excluded]
        return sorted(chosen, key=lambda f: (f.proposal_id, f.op_id, f.date_obs, f.file_id)), \
            [d for d in dict.fromkeys(datasets) if d not in excluded]

    def _calibration_may_serve(self, campaign: Campaign, proposal_id: str) -> None:
        """Nothing crosses proposals: another proposal's calibration serves this one's data only once it is public,
        or when it belongs to an observatory calibration program (Settings.calibration_programs)."""
        why = self._calibration_refuses(campaign, proposal_id)
        if why is not None:
            raise NotAllowed(f"{why} (choose one of that proposal's, a released one, or one of an observatory "
                             "calibration program)")

    def _calibration_refuses(self, campaign: Campaign, proposal_id: str) -> str | None:
        if not campaign.calibration:
            return None
        calibration = self.store.dataset(campaign.calibration)
        if calibration.proposal_id == proposal_id or calibration.embargo is None \
                or calibration.proposal_id in self.runs.settings.calibration_programs:
            return None
        return (f"calibration {calibration.dataset_id} belongs to proposal {calibration.proposal_id} and is under "
                f"embargo until {calibration.release_date}: it cannot serve proposal {proposal_id}'s data")

    def _frame_instances(self, campaign: Campaign, frames: list[FrameRef], occurrence: int = 1) -> list[Instance]:
        """One instance per proposal (nothing crosses proposals) and occurrence, its frames as frame inputs."""
        if not frames:
            return []
        recipe = self.runs.recipes.get(*campaign.recipe.split("@"))
        by_proposal: dict[str, list[FrameRef]] = {}
        for frame in frames:
            by_proposal.setdefault(frame.proposal_id, []).append(frame)
        instances = []
        for proposal_id, chosen in sorted(by_proposal.items()):
            self._calibration_may_serve(campaign, proposal_id)
            night = min(f.date_obs for f in chosen)[:10]
            instances.append(Instance(
                layout.group_instance_id(f"campaign:{campaign.name}" + (f"#{occurrence}" if occurrence > 1 else ""),
                                         recipe.name, recipe.version, proposal_id),
                candidate_id=f"campaign:{campaign.name}", proposal_id=proposal_id, recipe=recipe.name,
                version=recipe.version, observed_on=night, created_at=self.runs.clock(),
                inputs=[InstanceInput(_role(f), "frame", f.file_id) for f in chosen]
                + ([InstanceInput("calibration", "dataset", campaign.calibration)] if campaign.calibration else []),
                reference=f"{night}/{proposal_id}", priority=campaign.priority, campaign=campaign.name,
                overrides=campaign.overrides,
            ))
        return instances

    # -- developer runs ----------------------------------------------------------------------------
    def rerun(self, dataset_id: str, by: str, from_task: str | None = None, overrides: dict | None = None,
              keep_intermediates: bool = True, retention_days: int = DEFAULT_RETENTION_DAYS) -> Campaign:
        """Rebuild the run of a dataset from its provenance (inputs, recipe version, as-run configuration) as a
        developer campaign that keeps every intermediate, re-running from ``from_task`` on."""
        dataset = self.runs.require_dataset(dataset_id)
        configuration = dataset.provenance.get("configuration", {})
        as_run = {**configuration.get("parameters", {}), **configuration.get("options", {}), **(overrides or {})}
        name = "rerun-" + layout.digest_of({"dataset": dataset_id, "from": from_task, "set": overrides or {},
                                            "keep": keep_intermediates})[:10]
        self.create(name, "developer", by, f"rerun of {dataset_id}" + (f" from {from_task}" if from_task else ""),
                    recipe=dataset.recipe, selection={"ids": {"datasets": [dataset_id]}}, overrides=as_run,
                    keep_intermediates=keep_intermediates, rerun_from_task=from_task, retention_days=retention_days)
        return self.start(name, by)

    def sweep(self, now: dt.datetime) -> dict:
        """Delete developer datasets past their retention, unless something uses them: then refuse, naming it."""
        report = {"checked": 0, "deleted": [], "refused": {}}
        for dataset in self.store.datasets_with_status(DEVELOPMENT):
            report["checked"] += 1
            if dataset.expires_at is None or dataset.expires_at > now:
                continue
            users = self.users_of(dataset)
            if users:
                report["refused"][dataset.dataset_id] = users
                logger.warning("developer dataset kept past its retention: in use",
                               extra={"dataset_id": dataset.dataset_id, "users": users})
                continue
            removed = self.runs.documents.delete_prefix("data", dataset.prefix)
            self.store.update_dataset(dataset.dataset_id, status=EXPIRED, decisions=[*dataset.decisions, {
                "decision": "expired", "by": "retention sweep", "at": now.isoformat(),
                "reason": f"retention ended {dataset.expires_at.isoformat()}; {removed} object(s) deleted"}])
            report["deleted"].append(dataset.dataset_id)
        return report

    def users_of(self, dataset) -> list[str]:
        """Who uses a dataset: instances that take it (or its instance's output) as an input."""
        users = set(self.store.users_of(f"dataset:{dataset.dataset_id}"))
        instance = self.store.instance(dataset.instance_id) if dataset.instance_id else None
        if instance is not None and instance.dataset_id == dataset.dataset_id:
            users.update(self.store.users_of(f"instance:{instance.instance_id}"))
        named = []
        for user_id in sorted(users):
            user = self.store.instance(user_id)
            if user is None or self._done_with(user):
                continue
            named.append(f"{user_id} ({user.recipe}@{user.version}, campaign {user.campaign or '-'}, {user.state})")
        return named

    def _done_with(self, user: Instance) -> bool:
        """A user is done with its inputs once it has ended and its own dataset has expired or was rejected."""
        if user.state not in (INSTANCE_SUCCEEDED, ERROR) or user.dataset_id is None:
            return False
        made = self.store.dataset(user.dataset_id)
        return made is not None and made.status in (EXPIRED, REJECTED)

    # -- documents -----------------------------------------------------------------------------------
    def attach(self, name: str, filename: str, body: bytes, note: str, by: str) -> tuple[dict, bool]:
        """Keep a document with the campaign, recorded with who, when and why: the same file again changes nothing;
        another file of the same name is kept beside it as its next version. The record, and whether it is new."""
        check_document_name(filename)
        note = (note or "").strip()
        if not note:
            raise ValueError("say what the document is (--note TEXT): it is kept with it")
        if len(note) > MAX_NOTE:
            raise ValueError(f"the note has {len(note)} characters; at most {MAX_NOTE} (attach the text as a file)")
        if not body:
            raise ValueError(f"{filename} is empty: there is nothing to keep")
        if len(body) > MAX_DOCUMENT_BYTES:
            raise ValueError(f"{filename} is larger than {MAX_DOCUMENT_BYTES // 2**20} MiB: keep it elsewhere (the data "
                             "bucket, a wiki) and attach a short file that says where")
        campaign = self.store.campaign(name)
        if campaign is None:
            raise NotFound(f"no campaign {name!r} to attach to; `obsflow campaigns list` shows them, "
                           "`obsflow campaigns create` makes one")
        sha256 = hashlib.sha256(body).hexdigest()
        key = layout.campaign_document_key(name, sha256, filename)
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        written = False
        for _ in range(ATTACH_ATTEMPTS):
            same_name = [d for d in campaign.documents if d["name"] == filename]
            kept = next((d for d in same_name if d["sha256"] == sha256), None)
            if kept is not None:
                return kept, False
            if not written:
                self.runs.documents.put_bytes("work", key, body, content_type)
                written = True
            record = {"name": filename, "version": len(same_name) + 1, "key": key, "size": len(body), "sha256": sha256,
                      "content_type": content_type, "note": note, "by": by, "at": self.runs.clock().isoformat()}
            if self.store.add_campaign_document(name, record, campaign.documents):
                return record, True
            campaign = self.require(name)  # another was attached meanwhile: compare and count again
        raise TransientError(f"campaign {name}'s documents kept changing while {filename} was attached; try again")

    def document(self, name: str, number: int) -> tuple[dict, bytes]:
        """The campaign's ``number``-th document (1: the first attached) and its bytes: only keys a campaign records
        are read."""
        documents = self.require(name).documents
        if not 1 <= number <= len(documents):
            raise NotFound(f"campaign {name} has no document {number}: it has {len(documents)}")
        record = documents[number - 1]
        self._check_document_record(name, number, record)
        body = self.runs.documents.get_bytes("work", record["key"])
        if hashlib.sha256(body).hexdigest() != record["sha256"]:
            raise NotAllowed(f"campaign {name}'s document {number} ({record['name']}) is not the file attached: its "
                             f"bytes in s3://{self.runs.documents.location('work')}/{record['key']} were changed since; "
                             "attach the file again")
        return record, body

    @staticmethod
    def _check_document_record(name: str, number: int, record) -> None:
        """A document's record as attach writes it (a record planted in the table could name any key of the work
        bucket, or put a line break in a download's header): its name a document name, its key its own."""
        try:
            check_document_name(record["name"])
            sha256 = record["sha256"]
            if not (isinstance(sha256, str) and re.fullmatch(r"[0-9a-f]{64}", sha256)
                    and record["key"] == layout.campaign_document_key(name, sha256, record["name"])):
                raise ValueError(f"its key {str(record['key'])[:200]!r} is not where campaign {name} keeps it")
        except (ValueError, KeyError, TypeError) as exc:
            raise NotAllowed(f"campaign {name}'s document {number} is not as attach records one, and is not read: "
                             f"{exc}") from exc

    # -- what it did ---------------------------------------------------------------------------------
    def detail(self, name: str) -> dict:
        """The definition, progress (instances by state), outputs, QC metrics aggregated over them, and cost."""
        campaign = self.require(name)
        instances = [i for i in (self.store.instance(x) for x in campaign.instance_ids) if i is not None]
        runs = [r for i in instances for r in self.store.runs_of(i)]
        datasets = sorted(self.store.datasets_of_campaign(name), key=lambda d: d.created_at)
        return {
            **dataclasses.asdict(campaign),
            "progress": dict(Counter(i.state for i in instances)),
            "instances": [{"instance_id": i.instance_id, "recipe": f"{i.recipe}@{i.version}", "proposal_id": i.proposal_id,
                           "state": i.state, "state_reason": i.state_reason, "dataset_id": i.dataset_id}
                          for i in instances],
            "outputs": [{"dataset_id": d.dataset_id, "product_id": d.product_id, "status": d.status, "kind": d.kind,
                         "proposal_id": d.proposal_id, "location": f"s3://{d.bucket}/{d.prefix}"} for d in datasets],
            "metrics": aggregate_metrics([d.qc if d.qc is not None else read_qc(self.runs.documents, d)[0]
                                          for d in datasets]),
            # what its runs cost (runs.costs), those still going adding nothing yet
            "cost": {**summed(r.cost for r in runs if r.cost), "runs": len(runs)},
            **({"preview": self.preview(campaign)} if campaign.status == DRAFT else {}),
            "approval_note": approval_note(campaign),
        }

    def preview(self, campaign: Campaign) -> dict:
        """What a DRAFT would run if started now: its instances (one per proposal, or a copy per dataset), their
        inputs, and the estimated CPU time and output (its recipe's measurements, else its estimates)."""
        rows = []
        for instance in self._instances(campaign, save=False):  # a preview is a read: it saves no plan
            recipe = self.runs.recipes.get(instance.recipe, instance.version)
            inputs = len(instance.inputs)
            cpu_s, size = self.runs.estimate(recipe, inputs)
            rows.append({"instance_id": instance.instance_id, "recipe": f"{instance.recipe}@{instance.version}",
                         "proposal_id": instance.proposal_id, "inputs": inputs, "estimated_cpu_s": cpu_s,
                         "estimated_bytes": size})
        return {"instances": rows, "estimated_cpu_s": round(sum(r["estimated_cpu_s"] for r in rows), 1),
                "estimated_bytes": sum(r["estimated_bytes"] for r in rows)}


def approval_note(campaign: Campaign) -> str:
    """One line on a campaign's approval: what it waits for, who approved it when, or nothing (none needed)."""
    approval = campaign.approval or {}
    if approval.get("approved_by"):
        return (f"approved by {approval['approved_by']} ({approval.get('approved_as', '-')}) at "
                f"{approval['approved_at']}: {approval.get('reason', '')}")
    if campaign.status == AWAITING_APPROVAL:
        return approval.get("needed", "waits for approval")
    return "cancelled while waiting for approval" if approval else ""


def _role(frame: FrameRef) -> str:
    task_type = (frame.task_type or "").lower()
    return task_type if task_type in ("observe", "dark", "gain") else "calibration"


def aggregate_metrics(per_dataset: list[dict[str, float]]) -> dict[str, dict]:
    """Each QC value over the campaign's datasets: how many have it, min, median, max."""
    names = sorted({k for values in per_dataset for k in values})
    aggregated = {}
    for name in names:
        numbers = [values[name] for values in per_dataset if name in values]
        aggregated[name] = {"datasets": len(numbers), "min": min(numbers), "median": statistics.median(numbers),
                            "max": max(numbers)}
    return aggregated
