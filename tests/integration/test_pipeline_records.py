"""The metadata store over obsflow's records in S3 (moto), answering DKIST's own requests over HTTP."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from obsflow.pipelines.metadata_store import MetadataStore, MetadataStoreServer
from obsflow.pipelines.records import S3PipelineRecords, link_key, recipe_run_id
from obsflow.runs import documents, layout

REQUESTS = json.loads((Path(__file__).parents[1] / "unit" / "fixtures" / "dkist_metadata_store_requests.json").read_text())
WORK = "obsflow-test-work"


@pytest.fixture
def records():
    """Given a run document and its input dataset in the work bucket, as planning writes them."""
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=WORK)
        input_dataset = {"observed_on": "2026-11-20", "frames": [
            {"role": "observe", "bucket": "ingest", "key": "raw/sim_observe/observe_0001.fits"},
            {"role": "dark", "bucket": "ingest", "key": "raw/sim_dark/dark_0001.fits"}], "upstream": []}
        documents.put_json(s3, WORK, "input-datasets/ri-1.json", input_dataset)
        documents.put_json(s3, WORK, layout.run_document_key("run-1"), {
            "run_id": "run-1", "instance_id": "ri-1", "input_dataset": {"bucket": WORK, "key": "input-datasets/ri-1.json"},
            "configuration": {"parameters": {"test_random_data": {"__file__": {"objectKey": "pipelines/p.fits"}}},
                              "options": {"validate_l1_on_write": True, "teardown_enabled": False, "chunk": 3}}})
        yield S3PipelineRecords(s3, WORK)


def test_a_linked_run_is_answered_from_its_documents(records):
    # Given the run linked to its DKIST recipe run id
    recipe_run = records.link("run-1")
    assert recipe_run == recipe_run_id("run-1") and records.link("run-1") == recipe_run  # idempotent
    # When DKIST's framework asks for it
    run = records.recipe_run(recipe_run)
    # Then the configuration holds DKIST's options only, and the parts are the input dataset's
    assert run["configuration"] == {"validate_l1_on_write": True, "teardown_enabled": False}
    assert run["parts"]["observe_frames"] == [{"bucket": "ingest", "object_keys": ["raw/sim_observe/observe_0001.fits"]}]
    (parameter,) = run["parts"]["parameters"]
    assert json.loads(parameter["parameterValues"][0]["parameterValue"]) == \
        {"__file__": {"bucket": WORK, "objectKey": "pipelines/p.fits"}}  # a file parameter names obsflow's bucket


def test_a_recipe_run_id_that_names_another_run_is_refused(records):
    documents.put_json(records.s3, WORK, link_key(recipe_run_id("run-2")), {"run_id": "run-9"})
    with pytest.raises(ValueError, match="already names run run-9"):
        records.link("run-2")


def test_what_tasks_record_is_kept_with_the_run_or_the_dataset(records):
    recipe_run = records.link("run-1")
    records.record(recipe_run, "provenance", {"taskName": "Parse", "isTaskManual": False})
    records.record(None, "quality", {"datasetId": "ABCDE", "metricCode": "NOISE"})
    records.record(None, "receipt", {"datasetId": "ABCDE", "expectedObjectCount": 3})
    assert [p["taskName"] for p in records.recorded(recipe_run, "provenance")] == ["Parse"]
    assert [q["metricCode"] for q in records.recorded(None, "quality", "ABCDE")] == ["NOISE"]  # not the receipt
    with pytest.raises(ValueError, match="dataset id"):
        records.record(None, "quality", {"datasetId": "../../runs/run-1", "metricCode": "X"})


def test_dkists_requests_are_answered_over_http(records):
    # Given the metadata store served on loopback, and a run known by the id DKIST's captured requests use
    documents.put_json(records.s3, WORK, link_key(123456789012345), {"run_id": "run-1"})
    server = MetadataStoreServer(MetadataStore(records)).start()
    try:
        def post(body: dict, path: str = "/graphql") -> dict:
            request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"}, method="POST")
            return json.loads(urllib.request.urlopen(request, timeout=10).read())

        # When DKIST's framework asks what its tasks ask, in order
        for name in ("status", "update", "input_dataset", "provenance", "recipe_run", "quality", "qualities", "receipt"):
            answer = post(REQUESTS[name])
            # Then every answer is data, not an error
            assert "errors" not in answer, (name, answer)
        assert post(REQUESTS["recipe_run"])["data"]["recipeRuns"][0]["recipeRunProvenances"][0]["isTaskManual"] is True
        # And a request elsewhere, or not JSON, is refused with a reason
        with pytest.raises(urllib.error.HTTPError):
            post(REQUESTS["status"], "/other")
    finally:
        server.stop()


@pytest.mark.parametrize("headers, status", [
    ({"Content-Type": "application/json", "Host": "attacker.example.com"}, 421),  # a rebound DNS name
    ({"Content-Type": "text/plain"}, 415),  # what a cross-site form can send
])
def test_only_json_addressed_to_the_server_itself_is_answered(records, headers, status):
    server = MetadataStoreServer(MetadataStore(records)).start()
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{server.port}/graphql", method="POST",
                                         data=json.dumps(REQUESTS["status"]).encode(), headers=headers)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == status
    finally:
        server.stop()


def test_a_job_on_a_stage_without_a_metadata_store_serves_its_own_on_loopback(records):
    # Given a deployed stage's pipeline services (the scratch inventory only) and a job of a linked run
    from types import SimpleNamespace

    from obsflow_tasks.pipeline import PipelineNode

    documents.put_json(records.s3, WORK, link_key(123456789012345), {"run_id": "run-1"})
    job = SimpleNamespace(context=SimpleNamespace(s3=records.s3, work_bucket=WORK))
    # When the node's services are made
    with PipelineNode._metadata_store(job, {"scratch-inventory": "redis.internal:6390"}) as services:
        host, _, port = services["metadata-store"].rpartition(":")
        request = urllib.request.Request(f"http://{host}:{port}/graphql", data=json.dumps(REQUESTS["input_dataset"]).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        # Then DKIST's request is answered there from the run's records, and the stage's Redis is kept
        answer = json.loads(urllib.request.urlopen(request, timeout=10).read())
        assert "errors" not in answer and answer["data"]["recipeRuns"]
        assert host == "127.0.0.1" and services["scratch-inventory"] == "redis.internal:6390"
    # And it stops with the node
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(request, timeout=2)
    # And a stage that names a metadata store keeps it
    with PipelineNode._metadata_store(job, {"metadata-store": "127.0.0.1:1", "scratch-inventory": "x:1"}) as services:
        assert services["metadata-store"] == "127.0.0.1:1"


def test_a_deployed_stage_runs_a_pipeline_only_with_the_job_definitions_its_cdk_app_made():
    from obsflow.errors import NotFound
    from obsflow.recipes.jobs import job_definitions
    from obsflow.recipes.model import RESOURCE_CLASSES
    from obsflow.runs.platform import BatchJobDefinitions
    from obsflow.settings import Settings

    with mock_aws():
        # Given a deployed stage (no local endpoint) whose CDK app built no image for the pipeline
        settings = Settings(stage="deployed")
        batch = boto3.client("batch", region_name=settings.region)
        # When the pipeline is added, then it is refused before any build, saying how the stage gets it
        with pytest.raises(NotFound, match=r"-c pipelines=.*dkist-processing-vbi==1.23.4"):
            BatchJobDefinitions(settings).for_pipeline("dkist-processing-vbi", "1.23.4")
        # Given the job definitions the CDK app makes for it
        for resource_class in RESOURCE_CLASSES:
            batch.register_job_definition(
                jobDefinitionName=settings.pipeline_job_definition_name("dkist-processing-vbi", "1.23.4", resource_class),
                type="container", containerProperties={"image": "hosted-vbi", "vcpus": 1, "memory": 4096})
        # Then they are the ones StartRun names for its recipe's runs, and nothing is registered from here
        names = BatchJobDefinitions(settings).for_pipeline("dkist-processing-vbi", "1.23.4")
        source = type("Recipe", (), {"pipeline": type("Source", (), {"package": "dkist-processing-vbi",
                                                                     "version": "1.23.4"})})
        assert {rc.replace("-", "_"): name for rc, name in names.items()} == job_definitions(settings, source, {})
        assert all(d["revision"] == 1 for d in batch.describe_job_definitions()["jobDefinitions"])
