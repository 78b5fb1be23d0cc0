"""Certification of master calibrations (ESO: "all associations point to certified and archived master
calibrations"): its own small state machine (transitions.CERTIFICATION_MOVES).

A calibration dataset is judged when catalogued: each QC gate of its recipe against its QC values, recorded with
the value and the result. Every gate passed: CERTIFIED. A gate failed, or a recipe with no gates: UNCERTIFIED, and
a `review:certification` ticket says which gate failed and what to do. Data quality certifies or rejects it by
hand, with who, when and why. Science is planned only on CERTIFIED calibrations (obsflow.runs.planning).
"""

from __future__ import annotations

from obsflow.observability import logger
from obsflow.recipes.model import Recipe
from obsflow.runs.context import NotAllowed, Part
from obsflow.runs.domain import OPEN, Dataset, Ticket
from obsflow.runs.ticketing import Tickets
from obsflow.runs.transitions import CERTIFICATION_MOVES
from obsflow.statuses import CERTIFICATION_REJECTED


def certification_ticket_id(dataset_id: str) -> str:
    return f"TKT-certify-{dataset_id}"


def judge(recipe: Recipe, values: dict[str, float]) -> list[dict]:
    """Each gate of the recipe against the QC values: metric, min, max, value, passed and why not."""
    return [gate.evaluate(values) for gate in recipe.qc_gates]


def failures(gates: list[dict]) -> list[str]:
    """What failed, one phrase per gate (``bad_pixel_fraction 0.03 > 0.01``); none for no gates at all."""
    return [f"gate {g['failure']}" for g in gates if not g["passed"]]


def pending_reason(dataset: Dataset) -> str:
    """Why a calibration is not CERTIFIED, and the command that moves it (what waiting science says)."""
    if dataset.certification == CERTIFICATION_REJECTED:
        last = dataset.certification_history[-1] if dataset.certification_history else {}
        return (f"calibration {dataset.dataset_id} was rejected by {last.get('by', '?')} ({last.get('reason', '')}): "
                "make the calibration again (new calibration frames, or `obsflow reprocess plan --datasets "
                f"{dataset.dataset_id}`), or `obsflow calibrations certify {dataset.dataset_id} --reason TEXT`")
    why = "; ".join(failures(dataset.certification_gates)) or f"its recipe {dataset.recipe} has no QC gates"
    return (f"waiting for calibration {dataset.dataset_id} to be certified ({why}; "
            f"obsflow calibrations certify {dataset.dataset_id} --reason TEXT)")


class Certification(Part):
    def __init__(self, ctx, tickets: Tickets):
        super().__init__(ctx)
        self.tickets = tickets

    def after_catalog(self, dataset: Dataset, recipe: Recipe, values: dict[str, float]) -> None:
        """Judge a recorded calibration (UNCERTIFIED) by its recipe's gates on its QC values, and record each gate;
        certify it when every gate passed, else ask a person, saying what failed."""
        gates = judge(recipe, values)
        self.store.update_dataset(dataset.dataset_id, certification_gates=gates)
        dataset.certification_gates = gates
        if gates and all(g["passed"] for g in gates):
            passed = ", ".join(f"{g['metric']} {g['value']:g}" for g in gates)
            self._move(dataset, "pass_gates", "cataloguing", f"every QC gate passed ({passed})")
            return
        failed = failures(gates)
        summary = (f"calibration {dataset.dataset_id} ({dataset.recipe}) is not certified: "
                   + ("; ".join(failed) if failed else "its recipe has no QC gates, a person certifies it")
                   + ": science on it waits")
        self.tickets.file(Ticket(
            certification_ticket_id(dataset.dataset_id), kind="review:certification", created_at=self.clock(),
            summary=summary, run_id=dataset.run_id, candidate_id=dataset.candidate_id, proposal_id=dataset.proposal_id,
            recipe=dataset.recipe, error_message="\n".join(
                f"{g['metric']}: {g['value']} (min {g['min']}, max {g['max']}): {'passed' if g['passed'] else g['failure']}"
                for g in gates) or None,
            suggested_action=(f"look at its QC values (`obsflow datasets show {dataset.dataset_id}`), then "
                              f"`obsflow calibrations certify {dataset.dataset_id} --reason TEXT` to release the "
                              f"science waiting for it, or `obsflow calibrations reject {dataset.dataset_id} --reason "
                              "TEXT` and make the calibration again"),
        ))
        logger.warning("calibration not certified", extra={"dataset_id": dataset.dataset_id, "failed": failed})

    def certify(self, dataset_id: str, by: str, reason: str) -> Dataset:
        """Data quality certifies a calibration by hand; the science waiting for it is planned at the next pass."""
        dataset = self._move(self._require(dataset_id, reason), "certify", by, reason)
        self._resolve_ticket(dataset_id, f"certified: {reason}", by)
        self.notifier.nudge(f"calibration {dataset_id} certified")
        return dataset

    def reject(self, dataset_id: str, by: str, reason: str) -> Dataset:
        """Data quality rejects a calibration: science not yet planned on it waits (with a ticket each)."""
        dataset = self._move(self._require(dataset_id, reason), "reject", by, reason)
        self._resolve_ticket(dataset_id, f"rejected: {reason}", by)
        self.notifier.nudge(f"calibration {dataset_id} rejected")
        return dataset

    def _require(self, dataset_id: str, reason: str) -> Dataset:
        if not (reason or "").strip():
            raise ValueError("say why (--reason TEXT): it is kept with the calibration's certification")
        dataset = self.require_dataset(dataset_id)
        if dataset.certification is None:
            raise NotAllowed(f"dataset {dataset_id} is a {dataset.kind} dataset, not a master calibration: only a "
                             "calibration is certified (`obsflow datasets list --kind calibration`)")
        return dataset

    def _move(self, dataset: Dataset, move: str, by: str, reason: str) -> Dataset:
        step = CERTIFICATION_MOVES[move]
        if dataset.certification == step.to:
            return dataset  # asked twice: nothing moves twice
        entry = {"move": move, "from": dataset.certification, "to": step.to, "by": by, "at": self.clock().isoformat(),
                 "reason": reason}
        if not self.store.move_certification(dataset.dataset_id, step.to, step.sources,
                                             [*dataset.certification_history, entry]):
            now = self.require_dataset(dataset.dataset_id)
            raise NotAllowed(f"calibration {dataset.dataset_id} is {now.certification}: `{move}` moves only from "
                             f"{' or '.join(step.sources)}")
        logger.info("calibration certification", extra={"dataset_id": dataset.dataset_id, **entry})
        # the science that waits for it is looked at again (planned on it, or told it was rejected)
        self.wake_users([f"dataset:{dataset.dataset_id}", *([f"instance:{dataset.instance_id}"] if dataset.instance_id else [])])
        return self.require_dataset(dataset.dataset_id)

    def _resolve_ticket(self, dataset_id: str, note: str, by: str) -> None:
        ticket = self.store.ticket(certification_ticket_id(dataset_id))
        if ticket is not None and ticket.status == OPEN:
            self.tickets.resolve(ticket.ticket_id, note, by)

