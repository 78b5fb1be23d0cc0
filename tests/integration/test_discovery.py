"""The CLI finds a stage's resources from the SSM parameter that the local stack (and the CDK stack) write."""

from __future__ import annotations

import json

import boto3
import pytest
from click.testing import CliRunner
from moto import mock_aws

from obsflow import discovery, tables
from obsflow.cli import main
from obsflow.errors import NotFound
from obsflow.recipes import registry
from obsflow.recipes.registry import VersionConflict
from obsflow.settings import Settings


def test_discover_returns_the_recorded_bucket_names():
    with mock_aws():
        # Given a stage that recorded buckets whose names differ from the convention
        recorded = Settings(stage="dev", buckets={"ingest": "obsflow-dev-ingest-123456789012-us-east-1"})
        discovery.publish(recorded, boto3.client("ssm", region_name="us-east-1"))
        # When the CLI's settings (stage only) are resolved
        found = discovery.discover(Settings(stage="dev"))
        # Then the recorded bucket is used and the rest follow the convention
        assert found.bucket_name("ingest") == "obsflow-dev-ingest-123456789012-us-east-1"
        assert found.bucket_name("data") == "obsflow-dev-data"
        assert found.table_name("runs") == "obsflow-dev-runs"


def test_an_unknown_stage_is_a_clear_error():
    with mock_aws():
        with pytest.raises(NotFound, match=r"no obsflow stage 'nosuch'.*/obsflow/nosuch/resources.*cdk deploy"):
            discovery.discover(Settings(stage="nosuch"))


def test_the_cli_reads_the_stage_the_local_stack_created(stack):
    # Given the local stack of stage "test" (it publishes its document)
    document = json.loads(boto3.client("ssm", region_name="us-east-1").get_parameter(
        Name=discovery.parameter_name("test"))["Parameter"]["Value"])
    assert document == discovery.document(stack.settings)
    # When the operator asks for its resources, and for a stage that does not exist
    runner = CliRunner()
    info = runner.invoke(main, ["--stage", "test", "info", "--json"])
    missing = runner.invoke(main, ["--stage", "nosuch", "ops", "list"])
    # Then the first answers from the recorded document, the second says what to do
    assert info.exit_code == 0, info.output
    assert json.loads(info.output)["buckets"]["ingest"] == stack.settings.ingest_bucket_name
    assert missing.exit_code == 1
    assert "no obsflow stage 'nosuch'" in missing.output and "obsflow local serve" in missing.output


def test_a_shipped_version_changed_in_place_is_refused_at_deployment():
    with mock_aws():
        settings = Settings(stage="versions")
        tables.bind(settings)
        tables.create_tables()
        # Given the shipped recipes registered by a deployment (twice: idempotent)
        assert registry.register(settings) == registry.register(settings)
        # When a later deployment ships frame-census 1.0.0 with another definition
        changed = registry.get("frame-census").model_copy(update={"description": "changed without a new version"})
        # Then the registration fails naming it, and the registered definition is kept
        with pytest.raises(VersionConflict, match="frame-census@1.0.0 is registered with another definition"):
            registry.register(settings, (changed,))
        assert registry.registered("frame-census", "1.0.0").description != changed.description
