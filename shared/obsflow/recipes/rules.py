"""Discovery rules: which recipe applies to a READY candidate, with the role of each input.

A rule is data. The discovery agent evaluates every rule of the candidate's instrument
and inserts one recipe instance per rule and group, once: a rule grouped by calibration
OPs gives candidates that share their calibration one shared instance; a rule grouped by
night gives one instance per night and proposal whose inputs are the outputs of another
rule's instances. Rules that consume other rules' instances form the dependency graph.
"""

from __future__ import annotations

import fnmatch
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from obsflow.recipes.model import IDENTIFIER, RecipeError


class RuleInput(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # observe_op: the candidate's observe OP; calibration_ops: each calibration OP, its role the OP's
    # task type (dark, gain, ...); rule: the output of the instance that rule inserts for the candidate.
    source: Literal["observe_op", "calibration_ops", "rule"]
    role: str | None = Field(default=None, pattern=IDENTIFIER, description="the role; calibration_ops: the task type")
    rule: str | None = None


class DiscoveryRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,47}$")
    description: str = ""
    instrument: str
    observe_op_pattern: str = "*"  # fnmatch pattern on the observe OP id
    task_types: tuple[str, ...] = ()  # the candidate's OPs must hold these task types
    recipe: str
    group_by: Literal["candidate", "calibration_ops", "night"]
    inputs: tuple[RuleInput, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _valid(self) -> "DiscoveryRule":
        for rule_input in self.inputs:
            if (rule_input.source == "rule") != (rule_input.rule is not None):
                raise RecipeError(f"rule {self.name}: an input names a rule exactly when its source is 'rule'")
            if rule_input.source != "calibration_ops" and rule_input.role is None:
                raise RecipeError(f"rule {self.name}: an input from {rule_input.source} needs a role")
        return self

    def upstream_rules(self) -> list[str]:
        return [i.rule for i in self.inputs if i.rule]

    def applies(self, instrument: str, observe_op: str, task_types: set[str]) -> bool:
        return (instrument.upper() == self.instrument.upper() and fnmatch.fnmatchcase(observe_op, self.observe_op_pattern)
                and set(self.task_types) <= task_types)


def in_dependency_order(rules: tuple[DiscoveryRule, ...]) -> list[DiscoveryRule]:
    """Rules whose inputs come from other rules after those rules; RecipeError on a cycle or an unknown rule."""
    by_name = {rule.name: rule for rule in rules}
    ordered: list[DiscoveryRule] = []
    visiting: set[str] = set()

    def visit(rule: DiscoveryRule) -> None:
        if rule in ordered:
            return
        if rule.name in visiting:
            raise RecipeError(f"discovery rules form a cycle through {rule.name}")
        visiting.add(rule.name)
        for name in rule.upstream_rules():
            if name not in by_name:
                raise RecipeError(f"rule {rule.name} consumes unknown rule {name!r}")
            visit(by_name[name])
        visiting.discard(rule.name)
        ordered.append(rule)

    for rule in rules:
        visit(rule)
    return ordered
