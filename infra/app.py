#!/usr/bin/env python3
"""The obsflow CDK app: `cdk synth -c stage=dev` (or prod) from the repository root (see cdk.json)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# This machine's Node 20 is past its end of life for jsii; the banner would print on every synth.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from obsflow_infra.config import StageConfig  # noqa: E402
from obsflow_infra.stack import ObsflowStack  # noqa: E402


def build(app: cdk.App) -> ObsflowStack:
    """The stage's stack (``-c stage=dev|prod``), checked by cdk-nag's AwsSolutions pack at synth."""
    config = StageConfig.from_context(app)
    stack = ObsflowStack(app, f"obsflow-{config.stage}", config=config)
    cdk.Tags.of(stack).add("project", "obsflow")
    cdk.Tags.of(stack).add("stage", config.stage)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stack


if __name__ == "__main__":
    app = cdk.App()
    build(app)
    app.synth()
