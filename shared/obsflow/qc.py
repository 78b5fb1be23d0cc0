"""QC values: what a dataset's quality metrics say in numbers, and the filters that select datasets by them.

A dataset's QC values are recorded when it is catalogued: on its item (``qc``) and in the ``qc-values`` table, one
item per dataset and metric, indexed by metric and value, so a filter is one index query whatever the size of the
catalogue. DynamoDB numbers are finite and within ``[1e-130, 1e126)`` in magnitude: a value outside (NaN,
infinite, too large or too small) is recorded as absent, with a note saying why, and never selected.

A filter reads ``qc.METRIC<OP>VALUE`` with OP one of ``<  <=  >  >=  =`` (``--where qc.median_light_level<9000``);
several are ANDed.
"""

from __future__ import annotations

import math
import operator
import re
import statistics
from dataclasses import dataclass

OPERATORS = ("<=", ">=", "<", ">", "=")  # longest first: `<=` is no `<` followed by `=VALUE`
COMPARISONS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "=": operator.eq}
METRIC = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}", re.ASCII)
NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?", re.ASCII)
FILTER = re.compile(rf"qc\.(?P<metric>[^<>=]*)(?P<op>{'|'.join(map(re.escape, OPERATORS))})(?P<value>.*)", re.ASCII)
MAX_FILTER = 200
SYNTAX = "qc.METRIC<VALUE (operators <, <=, >, >=, =; METRIC of letters, digits and '_'; VALUE a number)"
SMALLEST, LARGEST = 1e-130, 9.99e125  # DynamoDB's number range (in magnitude; and 0)
UNINDEXED = ("datasets catalogued before QC values were recorded have none indexed, so a QC filter would leave them "
             "out: run `obsflow datasets reindex-qc` once (data-quality role), then filter again")


def qc_values(metrics: dict) -> dict[str, float]:
    """A dataset's QC values from its quality metrics: numeric top-level values, the median over frames of each
    numeric per-frame value, and the number of warnings."""
    values = {k: float(v) for k, v in metrics.items() if _number(v)}
    frames = metrics.get("frames") if isinstance(metrics.get("frames"), list) else []
    for key in sorted({k for f in frames if isinstance(f, dict) for k in f}):
        numbers = [f[key] for f in frames if isinstance(f, dict) and _number(f.get(key))]
        if numbers:
            values[f"median_{key}"] = float(statistics.median(numbers))
    if isinstance(metrics.get("warnings"), list):
        values["warnings"] = float(len(metrics["warnings"]))
    return values


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def unrecordable(value: float) -> str | None:
    """Why DynamoDB cannot hold the value as a number (None: it can)."""
    if math.isnan(value) or math.isinf(value):
        return f"not a finite number ({value}): recorded as absent"
    if value != 0 and not SMALLEST <= abs(value) <= LARGEST:
        return f"{value!r} is outside the range a number is kept in (1e-130 to 9.99e125): recorded as absent"
    return None


def recordable(values: dict[str, float]) -> tuple[dict[str, float], dict[str, str]]:
    """The values that can be recorded and filtered on, and a note for each one that cannot (its value, or its
    name, is unusable)."""
    kept, notes = {}, {}
    for name, value in sorted(values.items()):
        if not METRIC.fullmatch(name):
            notes[name[:64]] = f"metric name {name[:64]!r} is not letters, digits and '_': not recorded"
        elif (why := unrecordable(value)) is not None:
            notes[name] = why
        else:
            kept[name] = value
    return kept, notes


@dataclass(frozen=True)
class QcFilter:
    metric: str
    op: str
    value: float

    def __str__(self) -> str:
        return f"qc.{self.metric}{self.op}{self.value!r}"

    def compare(self, left):
        """``left OP value``: for a number, whether it passes; for a table attribute, the key condition."""
        return COMPARISONS[self.op](left, self.value)

    def passes(self, value: float | None) -> bool:
        return value is not None and self.compare(value)


def parse_filter(text: str) -> QcFilter:
    """``qc.METRIC<OP>VALUE``; ValueError saying the syntax, or what is wrong with the value."""
    shown = text if len(text) <= 60 else text[:60] + "..."
    if len(text) > MAX_FILTER:
        raise ValueError(f"{shown!r} is longer than {MAX_FILTER} characters: a QC filter is {SYNTAX}")
    found = FILTER.fullmatch(text.strip())
    if found is None:
        raise ValueError(f"{shown!r} is not a QC filter: {SYNTAX}")
    metric, op, literal = found["metric"].strip(), found["op"], found["value"].strip()
    if not METRIC.fullmatch(metric):
        raise ValueError(f"{shown!r}: {metric!r} is no metric name: {SYNTAX}")
    if not NUMBER.fullmatch(literal):
        raise ValueError(f"{shown!r}: {literal!r} is not a number (digits, '.', an exponent): {SYNTAX}")
    value = float(literal)
    why = unrecordable(value)
    if why is not None:
        raise ValueError(f"{shown!r}: a QC value is compared with a finite number from 1e-130 to 9.99e125 in "
                         f"magnitude, or 0; {literal} is not")
    return QcFilter(metric, op, value)


def parse_filters(texts) -> tuple[QcFilter, ...]:
    return tuple(parse_filter(t) for t in texts)


def check_known(filters: tuple[QcFilter, ...], known: list[str]) -> None:
    """Refuse a filter on a metric no dataset has recorded, naming the ones that exist."""
    unknown = sorted({f.metric for f in filters} - set(known))
    if unknown:
        raise ValueError(f"no dataset has QC value {', '.join(unknown)}; QC values recorded: "
                         f"{', '.join(sorted(known)) or 'none yet'}")


def passes_all(filters: tuple[QcFilter, ...], values: dict[str, float] | None) -> bool:
    return all(f.passes((values or {}).get(f.metric)) for f in filters)
