"""Hosted pipelines: workflows as recipes, the requirement a pipeline is added by, the metadata store DKIST's
tasks call (answered for the requests its own client sends), and the input dataset parts it serves."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from obsflow.pipelines import environments
from obsflow.pipelines.environments import EnvironmentError_, parse_requirement
from obsflow.pipelines.metadata_store import MetadataStore
from obsflow.pipelines.records import UnknownRecipeRun, input_dataset_parts
from obsflow.pipelines.workflows import HOST_TASK, PRODUCTS_TASK, known_parameters, recipe_name, recipe_of, task_name
from obsflow.recipes.asl import build_definition
from obsflow.recipes.model import Recipe, RecipeError

FIXTURES = Path(__file__).parent / "fixtures"
WORKFLOWS = json.loads((FIXTURES / "dkist_processing_test_workflows.json").read_text())
REQUESTS = json.loads((FIXTURES / "dkist_metadata_store_requests.json").read_text())
RUN_ID = 123456789012345  # the id in the captured requests: more than 32 bits, as obsflow's are


def workflow(name: str) -> dict:
    return next(w for w in WORKFLOWS["workflows"] if w["workflow_name"] == name)


# -- workflows as recipes -------------------------------------------------------------------------------------
def test_a_workflow_becomes_a_recipe_version_of_the_package_with_its_dag_and_resource_queues():
    # Given dkist-processing-test's end-to-end workflow, as read from the package
    e2e = workflow("input_to_output_test_management-processes-e2e")
    # When it is made a recipe
    recipe = recipe_of("dkist-processing-test", "1.34.4", e2e)
    # Then every node is a task run by the host task with the pipeline's own class, in the same DAG
    assert recipe.key == "input-to-output-test-management-processes-e2e@1.34.4"
    assert recipe.instrument == "TEST" and recipe.pipeline.workflow == e2e["workflow_name"]
    nodes = [t for t in recipe.tasks if t.pipeline_task]
    assert len(nodes) == len(e2e["nodes"]) == 13 and {t.entrypoint for t in nodes} == {HOST_TASK}
    generate = recipe.task("generate_calibrated_data")
    assert generate.pipeline_task == "dkist_processing_test.tasks.fake_science:GenerateCalibratedData"
    assert generate.resource_class == "high-memory" and generate.upstreams == ("parse_l0_test_input_data",)
    assert recipe.task("teardown").upstreams == ("publish_catalog_and_quality_messages",)
    assert [t.name for t in recipe.levels()[0]] == ["transfer_l0_data"]
    # and after the L1 data is handed over, obsflow's host makes the inventory, ASDF and quality report
    products = recipe.task("dataset_products")
    assert products.entrypoint == PRODUCTS_TASK and products.pipeline_task is None
    assert products.upstreams == ("teardown",)  # last: beside Teardown it would hold Teardown back
    # and its state machine is generated as for any recipe, the high-memory node on its own job queue
    definition = json.dumps(build_definition(recipe))
    assert "JobQueueHighMemory" in definition and "generate_calibrated_data" in definition


def test_a_workflow_that_hands_nothing_over_gets_no_products_task():
    assert [t.name for t in recipe_of("dkist-processing-test", "1.34.4", workflow("input_to_output_test_fail")).tasks] \
        == ["fail_task"]


def test_only_a_pipelines_recipe_runs_pipeline_tasks_and_nothing_of_obsflows_but_its_host_tasks():
    recipe = recipe_of("dkist-processing-test", "1.34.4", workflow("input_to_output_test_fail"))
    stranger = recipe.tasks[0].model_copy(update={"name": "census", "pipeline_task": None,
                                                  "entrypoint": "obsflow_tasks.census:Summary"})
    with pytest.raises(ValueError, match="host tasks"):
        Recipe.model_validate({**recipe.model_dump(), "tasks": [recipe.tasks[0].model_dump(), stranger.model_dump()]})
    with pytest.raises(ValueError, match="only a pipeline's recipe runs pipeline tasks"):
        Recipe.model_validate({**recipe.model_dump(), "pipeline": None})


def test_a_node_that_retries_keeps_its_retries():
    retrying = {**workflow("input_to_output_test_fail")}
    retrying["nodes"] = [{**retrying["nodes"][0], "retries": 2, "retry_delay_seconds": 5}]
    recipe = recipe_of("dkist-processing-test", "1.34.4", retrying)
    assert (recipe.tasks[0].retries, recipe.tasks[0].retry_delay_s) == (2, 5)
    # and its state retries a failed job as Airflow would, after the Batch service's own errors
    state = build_definition(recipe)["States"]["fail_task"]
    assert state["Retry"][-1] == {"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 5, "MaxAttempts": 2,
                                  "BackoffRate": 1.0}
    assert all(r["ErrorEquals"] != ["States.TaskFailed"] for r in
               build_definition(recipe_of("dkist-processing-test", "1.34.4", workflow("input_to_output_test_fail")))
               ["States"]["fail_task"]["Retry"])


def test_a_pipeline_recipes_jobs_run_on_its_own_job_definitions_unless_a_developer_image_is_named():
    from obsflow.recipes.definitions import RECIPES
    from obsflow.recipes.jobs import job_definitions
    from obsflow.settings import Settings

    settings = Settings(stage="dev")
    # Given a recipe of DKIST's test pipeline and one of obsflow's own
    hosted = recipe_of("dkist-processing-test", "1.34.4", workflow("input_to_output_test_fail"))
    # Then a run of the pipeline's uses its version's job definitions, obsflow's the stage's
    assert job_definitions(settings, hosted, {})["high_memory"] == "obsflow-dev-task-dkist-processing-test-1-34-4-high-memory"
    assert job_definitions(settings, RECIPES[0], {})["default"] == settings.job_definition_name("default")
    # And a developer campaign's image wins over both
    assert job_definitions(settings, hosted, {"default": "obsflow-dev-task-default-dev:7"})["default"] == \
        "obsflow-dev-task-default-dev:7"


def test_a_resource_queue_obsflow_does_not_know_is_refused_by_name():
    odd = {**workflow("input_to_output_test_fail")}
    odd["nodes"] = [{**odd["nodes"][0], "resource_queue": "gpu"}]
    with pytest.raises(RecipeError, match="resource queue 'gpu'"):
        recipe_of("dkist-processing-test", "1.34.4", odd)


@pytest.mark.parametrize("given, expected", [
    ("TransferL0Data", "transfer_l0_data"), ("ParseL0VbiInputData", "parse_l0_vbi_input_data"),
    ("PublishCatalogAndQualityMessages", "publish_catalog_and_quality_messages"), ("VbiQualityL1Metrics",
                                                                                   "vbi_quality_l1_metrics"),
])
def test_task_names_are_the_class_names_in_snake_case(given, expected):
    assert task_name(given) == expected


def test_recipe_names_are_the_workflow_names_with_dashes():
    assert recipe_name("l0_to_l1_vbi_no-speckle") == "l0-to-l1-vbi-no-speckle"
    with pytest.raises(RecipeError):
        recipe_name("_" * 5)


def test_vbi_parameters_come_with_dated_values():
    (clipping,) = known_parameters("dkist-processing-vbi")
    assert clipping.name == "vbi_movie_intensity_clipping_percentile" and clipping.values[0].value == 0.5
    assert known_parameters("dkist-processing-unknown") == ()


def test_visps_parameters_are_its_own_names_and_wavelength_tables():
    visp = {p.name: p for p in known_parameters("dkist-processing-visp")}
    assert len(visp) == 33 and "visp_pac_remove_linear_I_trend" in visp
    assert visp["visp_beam_border"].values[0].value == 1000
    assert visp["visp_background_num_spatial_bins"].values[0].value["wavelength"] == [397.0, 588.0, 630.0, 854.0]


# -- what a pipeline is added by ------------------------------------------------------------------------------
def test_a_pipeline_is_an_exact_published_version():
    assert parse_requirement("dkist-processing-vbi==1.23.4") == ("dkist-processing-vbi", "1.23.4")
    assert parse_requirement("DKIST_Processing_Test==1.34.4") == ("dkist-processing-test", "1.34.4")


@pytest.mark.parametrize("requirement", [
    "dkist-processing-vbi", "dkist-processing-vbi>=1.23", "dkist-processing-vbi==1.23", "../../etc==1.0.0",
    "dkist-processing-vbi==1.23.4; os_name=='posix'", "x==1.0.0 --index-url http://evil", "-e .==1.0.0",
])
def test_anything_but_package_equals_version_is_refused_before_pip_runs(requirement):
    with pytest.raises(EnvironmentError_, match="PACKAGE==VERSION"):
        parse_requirement(requirement)


def test_environments_live_apart_from_obsflows_own(tmp_path):
    from obsflow.settings import Settings

    settings = Settings(stage="test", pipelines_dir=str(tmp_path))
    path = environments.environment_path(settings, "dkist-processing-vbi", "1.23.4")
    assert path == tmp_path / "dkist-processing-vbi-1.23.4"
    assert environments.find(settings, "dkist-processing-vbi", "1.23.4") is None  # not built: nothing half-made used
    path.mkdir()
    assert environments.find(settings, "dkist-processing-vbi", "1.23.4") is None  # a build that did not finish


# -- the metadata store ---------------------------------------------------------------------------------------
class FakeRecords:
    """PipelineRecords in memory: one known run."""

    def __init__(self):
        self.kept: list[tuple[int | None, str, dict]] = []
        self.run = {
            "configuration": {"validate_l1_on_write": True, "teardown_enabled": True},
            "parts": {"observe_frames": [{"bucket": "ingest", "object_keys": ["raw/op/observe_0001.fits"]}],
                      "calibration_frames": [{"bucket": "ingest", "object_keys": ["raw/op/dark_0001.fits"]}],
                      "parameters": [{"parameterName": "p", "parameterValues": [
                          {"parameterValueId": 1, "parameterValue": "0.5", "parameterValueStartDate": "2026-11-20"}]}]},
            "input_dataset_id": 77, "recipe_instance_id": 88,
        }

    def recipe_run(self, recipe_run_id):
        if recipe_run_id != RUN_ID:
            raise UnknownRecipeRun(f"no obsflow run has recipe run id {recipe_run_id}")
        return self.run

    def record(self, recipe_run_id, kind, document):
        self.kept.append((recipe_run_id, kind, document))
        return len(self.kept)

    def recorded(self, recipe_run_id, kind, dataset_id=None):
        return [{**d, "id": i} for i, (r, k, d) in enumerate(self.kept, 1)
                if k == kind and (dataset_id is None or d.get("datasetId") == dataset_id)]


@pytest.fixture
def store():
    return MetadataStore(FakeRecords())


def answer(store, request: str) -> dict:
    result = store.execute(REQUESTS[request])
    assert "errors" not in result, result["errors"]
    return result["data"]


def test_the_recipe_run_query_answers_the_as_run_configuration_as_a_json_string(store):
    (run,) = answer(store, "recipe_run")["recipeRuns"]
    assert json.loads(run["configuration"]) == {"validate_l1_on_write": True, "teardown_enabled": True}
    assert run["recipeInstance"] == {"recipeId": 88, "inputDatasetId": 77} and run["recipeRunProvenances"] == []


def test_the_input_dataset_query_answers_the_three_parts_as_json_strings(store):
    (run,) = answer(store, "input_dataset")["recipeRuns"]
    parts = {p["inputDatasetPart"]["inputDatasetPartType"]["inputDatasetPartTypeName"]:
             json.loads(p["inputDatasetPart"]["inputDatasetPartDocument"])
             for p in run["recipeInstance"]["inputDataset"]["inputDatasetInputDatasetParts"]}
    assert set(parts) == {"observe_frames", "calibration_frames", "parameters"}
    assert parts["observe_frames"] == [{"bucket": "ingest", "object_keys": ["raw/op/observe_0001.fits"]}]


def test_statuses_exist_before_any_run_and_a_status_change_is_kept_with_the_run(store):
    assert answer(store, "status")["recipeRunStatuses"] == [{"recipeRunStatusId": 1}]
    assert answer(store, "create_status")["createRecipeRunStatus"] == {"recipeRunStatusId": 1}
    assert answer(store, "update")["updateRecipeRun"] == {"recipeRunId": RUN_ID}
    assert store.records.kept == [(RUN_ID, "status", {"status": "INPROGRESS"})]


def test_provenance_is_kept_with_the_run_and_answered_with_it(store):
    created = answer(store, "provenance")["createRecipeRunProvenance"]
    assert created["isTaskManual"] is True
    (run,) = answer(store, "recipe_run")["recipeRuns"]
    assert run["recipeRunProvenances"] == [{"recipeRunProvenanceId": created["recipeRunProvenanceId"],
                                            "isTaskManual": True}]
    (_, kind, document), = store.records.kept
    assert kind == "provenance" and document["taskName"] == "ParseL0VbiInputData"


def test_quality_and_receipt_accounts_are_kept_by_dataset(store):
    assert answer(store, "qualities")["qualities"] == []
    answer(store, "quality")
    assert answer(store, "qualities")["qualities"] == [{"qualityId": 1}]
    assert answer(store, "receipt")["createDatasetCatalogReceiptAccount"] == {"datasetCatalogReceiptAccountId": 2}
    assert [kind for _, kind, _ in store.records.kept] == ["quality", "receipt"]


def test_a_run_it_does_not_know_is_an_error_not_an_empty_answer(store):
    request = {"query": REQUESTS["recipe_run"]["query"].replace(str(RUN_ID), "42")}
    result = store.execute(request)
    assert result["data"] is None and "no obsflow run has recipe run id 42" in result["errors"][0]["message"]


@pytest.mark.parametrize("query", ["", "{", "{recipeRuns{configuration}}", "mutation {dropEverything}",
                                   "{recipeRuns(filterParams: {recipeRunId: \"1; drop\"}){configuration}}"])
def test_a_malformed_or_unscoped_request_is_refused_with_a_reason(store, query):
    result = store.execute({"query": query})
    assert result.get("errors") and not (result.get("data") or {}).get("recipeRuns")


# -- the input dataset parts ----------------------------------------------------------------------------------
def test_parts_are_built_from_the_input_dataset_and_the_as_run_parameter_values():
    # Given an input dataset of observe and dark frames and an upstream dataset's files
    input_dataset = {
        "frames": [{"role": "observe", "bucket": "ingest", "key": "raw/o/1.fits"},
                   {"role": "dark", "bucket": "ingest", "key": "raw/d/1.fits"}],
        "upstream": [{"role": "calibration", "files": [{"bucket": "data", "key": "cal/master_dark.fits"}]}],
    }
    # When DKIST's parts are made
    parts = input_dataset_parts(input_dataset, {"parameters": {"clip": 0.5}}, "2026-11-20")
    # Then observe frames, every other frame and upstream files, and each parameter's value as JSON, dated
    assert parts["observe_frames"] == [{"bucket": "ingest", "object_keys": ["raw/o/1.fits"]}]
    assert parts["calibration_frames"] == [{"bucket": "ingest", "object_keys": ["raw/d/1.fits"]},
                                           {"bucket": "data", "object_keys": ["cal/master_dark.fits"]}]
    (clip,) = parts["parameters"]
    assert clip["parameterName"] == "clip" and json.loads(clip["parameterValues"][0]["parameterValue"]) == 0.5
    assert clip["parameterValues"][0]["parameterValueStartDate"] == "2026-11-20T00:00:00"


# -- the node runner (it runs with the pipeline's Python: loaded here from its file) --------------------------
def run_node_module():
    spec = importlib.util.spec_from_file_location("run_node", environments.host_script("run_node.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_host_methods_come_before_the_pipelines_own_and_nothing_else_changes():
    run_node = run_node_module()

    class TransferL0Data:
        """The pipeline's."""

        def globus_transfer_object_store_to_scratch(self, transfer_items, label):
            raise AssertionError("Globus is not here")

        def run(self):
            return "the pipeline's own run"

    hosted = run_node.hosted(TransferL0Data)
    assert hosted.__name__ == "TransferL0Data" and hosted.__doc__ == "The pipeline's."
    assert hosted.globus_transfer_object_store_to_scratch is run_node.ObsflowHost.globus_transfer_object_store_to_scratch
    assert hosted().run() == "the pipeline's own run"


def test_globus_paths_name_a_bucket_and_a_key():
    run_node = run_node_module()
    assert run_node._bucket_and_key("/obsflow-local-ingest/raw/op/f.fits") == ("obsflow-local-ingest", "raw/op/f.fits")
    assert run_node._bucket_and_key("data/pid_1_23/DS/f.fits") == ("data", "pid_1_23/DS/f.fits")


# -- the warm node server's protocol --------------------------------------------------------------------------
def answered_by(answer: bytes):
    """A connection whose other end reads the request and answers ``answer``, then closes."""
    import socket
    import threading

    ours, theirs = socket.socketpair()
    requests = []

    def serve():
        with theirs:
            requests.append(json.loads(theirs.makefile("rb").readline()))
            theirs.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    return ours, requests


def test_a_forked_node_streams_its_output_and_then_its_exit_code():
    from obsflow.pipelines import node_servers

    connection, requests = answered_by(b"line one\nTraceback: boom\n\x00exit 3\n")
    written = []
    code = node_servers.run_node(connection, ["Mod:Task", "--recipe-run-id", "7"], {"A": "1"}, written.append)
    assert code == 3 and written == ["line one\n", "Traceback: boom\n"]
    assert requests == [{"argv": ["Mod:Task", "--recipe-run-id", "7"], "env": {"A": "1"}, "cwd": None}]


def test_a_node_that_ends_without_an_exit_code_failed_and_says_so():
    from obsflow.pipelines import node_servers

    connection, _ = answered_by(b"half a line")
    written = []
    assert node_servers.run_node(connection, [], {}, written.append) == 1
    assert written[0] == "half a line" and "without an exit code" in written[-1]


def test_an_object_key_that_climbs_out_of_scratch_is_not_staged(tmp_path, monkeypatch):
    from types import SimpleNamespace

    run_node = run_node_module()
    monkeypatch.setenv("SCRATCH_BASE_PATH", str(tmp_path / "scratch"))
    climbing = SimpleNamespace(source_path="/ingest/raw/op/../../../../etc/cron.d/x.fits",
                               destination_path=str(tmp_path / "scratch" / "7" / ".." / ".." / "x.fits"))
    with pytest.raises(ValueError, match="outside the scratch"):
        run_node.ObsflowHost().globus_transfer_object_store_to_scratch([climbing], "staging")
    assert not (tmp_path / "x.fits").exists()
