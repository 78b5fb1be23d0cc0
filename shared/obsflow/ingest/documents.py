"""The JSON documents the summit sends: transfer manifests, processing candidates and proposals."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from obsflow.errors import Rejected
from obsflow.ids import ID_RULE, is_id


def _an_id(value: str) -> str:
    if not is_id(value):
        raise ValueError(f"{value[:140]!r} is not an id ({ID_RULE})")
    return value


Id = Annotated[str, AfterValidator(_an_id)]
# A candidate needs its observe OP and a few calibration OPs, a manifest the OPs of one transfer: far
# more is a writer's error, rejected at once rather than looked up OP by OP (documents are <= 1 MiB).
MAX_CALIBRATION_OPS = 100
MAX_MANIFEST_OPS = 1000


class ExpectedFrames(BaseModel):
    model_config = ConfigDict(extra="forbid")
    op_id: Id
    expected_frames: int = Field(ge=1, le=1_000_000)


class TransferManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    manifest_id: Id
    observing_programs: list[ExpectedFrames] = Field(min_length=1, max_length=MAX_MANIFEST_OPS)

    @model_validator(mode="after")
    def _each_op_once(self) -> "TransferManifest":
        ops = [op.op_id for op in self.observing_programs]
        repeated = sorted({op for op in ops if ops.count(op) > 1})
        if repeated:
            raise ValueError(f"OP(s) listed more than once: {', '.join(repeated)}")
        return self


class ProcessingCandidate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    candidate_id: Id
    proposal_id: Id
    instrument: Id
    observe_op: Id
    calibration_ops: list[Id] = Field(default_factory=list, max_length=MAX_CALIBRATION_OPS)
    recipe: Id | None = None
    priority: int | None = Field(default=None, ge=0, le=100)

    @model_validator(mode="after")
    def _ops_distinct(self) -> "ProcessingCandidate":
        ops = self.op_ids
        if len(set(ops)) != len(ops):
            raise ValueError("observe_op and calibration_ops must name distinct OPs")
        return self

    @property
    def op_ids(self) -> list[str]:
        return [self.observe_op, *self.calibration_ops]


class PrincipalInvestigator(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


# Longer than any proprietary period: a typo (36500 for 365) is caught, not obeyed for a century.
MAX_EMBARGO_DAYS = 10 * 366


class ProposalDocument(BaseModel):
    """Its PI, and when its data become public: on a release date, or embargo days after each observation;
    neither means the configured default embargo."""

    model_config = ConfigDict(extra="forbid")
    proposal_id: Id
    pi: PrincipalInvestigator
    release_date: dt.date | None = None
    embargo_days: int | None = Field(default=None, ge=0, le=MAX_EMBARGO_DAYS)

    @field_validator("release_date", mode="before")
    @classmethod
    def _calendar_date(cls, value: Any) -> Any:
        """An ISO calendar date (YYYY-MM-DD) and nothing else: pydantic would read 0 or "0" as 1970-01-01, and
        an embargo that fails open cannot be taken back."""
        if value is None:
            return value
        if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(f"{value!r} is not an ISO calendar date (YYYY-MM-DD)")
        date = dt.date.fromisoformat(value)
        today = dt.datetime.now(dt.timezone.utc).date()
        if abs((date - today).days) > MAX_EMBARGO_DAYS:
            raise ValueError(f"{value} is more than {MAX_EMBARGO_DAYS} days from today ({today}), the bound of "
                             "embargo_days too: a typo is caught, not obeyed")
        return date

    @model_validator(mode="after")
    def _one_rule(self) -> "ProposalDocument":
        if self.release_date is not None and self.embargo_days is not None:
            raise ValueError("give release_date or embargo_days, not both: which one would apply is unclear")
        return self


@dataclass(frozen=True)
class StoredDocument:
    """A document as S3 holds it: its bytes, the version read and when that version was written."""

    body: bytes
    version_id: str | None
    modified_at: dt.datetime


def parse_document(model: type[BaseModel], body: bytes, key: str, id_field: str) -> BaseModel:
    """Parse and validate one JSON document; its id must match its key's file name."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejected("malformed-json", f"not valid JSON: {exc}") from exc
    try:
        document = model.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<document>'}: {err['msg']}" for err in exc.errors()
        )
        raise Rejected("schema", f"{model.__name__} schema violation: {problems}") from exc
    stem = key.rsplit("/", 1)[-1].removesuffix(".json")
    if getattr(document, id_field) != stem:
        raise Rejected(
            "id-mismatch",
            f"{id_field} {getattr(document, id_field)!r} does not match the key's file name {stem!r}",
        )
    return document
