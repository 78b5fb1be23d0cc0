"""The CDK app, synthesized once per stage per test session (in-process, no Docker, no credentials)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "infra"))

import aws_cdk as cdk  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402

from app import build  # noqa: E402
from obsflow_infra.stack import ObsflowStack  # noqa: E402


@dataclass
class Synthesized:
    stack: ObsflowStack
    template: dict
    assertions: Template
    outdir: Path

    def resources(self, resource_type: str) -> dict[str, dict]:
        return {k: v for k, v in self.template["Resources"].items() if v["Type"] == resource_type}

    def logical_id(self, construct) -> str:
        cfn = construct if isinstance(construct, cdk.CfnElement) else construct.node.default_child
        return self.stack.resolve(self.stack.get_logical_id(cfn))

    def resource(self, construct) -> dict:
        return self.template["Resources"][self.logical_id(construct)]

    def statements(self, role) -> list[dict]:
        """Every statement of the policies attached to ``role``: its default policy, and the overflow policies CDK
        moves statements to when the default one would exceed IAM's size limit."""
        role_id = self.logical_id(role)
        return [statement
                for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
                for policy in self.resources(kind).values()
                if {"Ref": role_id} in policy["Properties"].get("Roles", [])
                for statement in policy["Properties"]["PolicyDocument"]["Statement"]]


def synthesize(stage: str, outdir: Path, **context) -> Synthesized:
    defaults = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    app = cdk.App(outdir=str(outdir), context={**defaults, **context, "stage": stage})
    stack = build(app)
    assembly = app.synth()
    template = assembly.get_stack_by_name(stack.stack_name).template
    return Synthesized(stack, template, Template.from_json(template), outdir)


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory):
    cache: dict[str, Synthesized] = {}

    def get(stage: str = "dev") -> Synthesized:
        if stage not in cache:
            cache[stage] = synthesize(stage, tmp_path_factory.mktemp(f"cdk-{stage}"))
        return cache[stage]

    return get


@pytest.fixture(scope="session")
def dev(synthesized) -> Synthesized:
    return synthesized("dev")


@pytest.fixture(scope="session")
def prod(synthesized) -> Synthesized:
    return synthesized("prod")
