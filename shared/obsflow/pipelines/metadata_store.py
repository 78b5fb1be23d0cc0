"""The metadata store a DKIST pipeline calls, served by obsflow from its own records.

DKIST's tasks call a GraphQL API (their ``MetadataStoreMixin``, through ``gqlclient``) for the recipe run's
configuration and input dataset parts, and to record statuses, provenance, quality and receipt accounts.
This is that API's subset, as a real GraphQL schema (graphql-core): queries ``recipeRuns``,
``recipeRunStatuses`` and ``qualities``; mutations ``updateRecipeRun``, ``createRecipeRunStatus``,
``createRecipeRunProvenance``, ``createQuality`` and ``createDatasetCatalogReceiptAccount``. Arguments come
wrapped as DKIST's server wraps them (``filterParams``, ``createParams``, ``updateParams``).

What it answers comes from a ``PipelineRecords`` port: the run's as-run configuration, its input dataset as
DKIST's parts (``observe_frames``, ``calibration_frames``, ``parameters``, each a JSON string), and what the
tasks recorded, kept on the run.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from graphql import GraphQLScalarType, build_schema, graphql_sync
from graphql.language import IntValueNode

from obsflow.pipelines.records import RECORD_KINDS, UnknownRecipeRun  # noqa: F401  (the port's vocabulary)

# DKIST's statuses exist before any run (its createRecipeRunStatus answers in a shape its own client cannot
# read, so a host must have them).
STATUSES = (
    ("INPROGRESS", False, "Recipe run is currently undergoing processing"),
    ("COMPLETEDSUCCESSFULLY", True, "Recipe run processing completed with no errors"),
    ("TRIALSUCCESS", False, "Recipe run trial processing completed with no errors. Recipe run not marked complete."),
)
PART_TYPES = ("observe_frames", "calibration_frames", "parameters")

SCHEMA = """
scalar Long

type Query {
  recipeRuns(filterParams: RecipeRunFilter): [RecipeRun!]!
  recipeRunStatuses(filterParams: RecipeRunStatusFilter): [RecipeRunStatus!]!
  qualities(filterParams: QualityFilter): [Quality!]!
}

type Mutation {
  updateRecipeRun(updateParams: RecipeRunUpdate!): RecipeRunUpdated!
  createRecipeRunStatus(createParams: RecipeRunStatusCreate!): RecipeRunStatus!
  createRecipeRunProvenance(createParams: RecipeRunProvenanceCreate!): RecipeRunProvenance!
  createQuality(createParams: QualityCreate!): Quality!
  createDatasetCatalogReceiptAccount(createParams: ReceiptAccountCreate!): ReceiptAccount!
}

input RecipeRunFilter { recipeRunId: Long }
input RecipeRunStatusFilter { recipeRunStatusName: String }
input QualityFilter { datasetId: String }

type RecipeRun {
  recipeRunId: Long!
  recipeInstanceId: Long!
  configuration: String
  recipeInstance: RecipeInstance!
  recipeRunProvenances: [RecipeRunProvenance!]!
}
type RecipeInstance { recipeId: Long!  inputDatasetId: Long!  inputDataset: InputDataset! }
type InputDataset { inputDatasetId: Long!  isActive: Boolean!  inputDatasetInputDatasetParts: [InputDatasetPartLink!]! }
type InputDatasetPartLink { inputDatasetPart: InputDatasetPart! }
type InputDatasetPart {
  inputDatasetPartId: Long!
  inputDatasetPartDocument: String!
  inputDatasetPartType: InputDatasetPartType!
}
type InputDatasetPartType { inputDatasetPartTypeName: String! }

type RecipeRunStatus {
  recipeRunStatusId: Long!
  recipeRunStatusName: String!
  isComplete: Boolean!
  recipeRunStatusDescription: String!
}
input RecipeRunUpdate { recipeRunId: Long!  recipeRunStatusId: Long! }
type RecipeRunUpdated { recipeRunId: Long! }
input RecipeRunStatusCreate { recipeRunStatusName: String!  isComplete: Boolean!  recipeRunStatusDescription: String! }

input RecipeRunProvenanceCreate {
  inputDatasetId: Long!
  isTaskManual: Boolean!
  recipeRunId: Long!
  taskName: String!
  libraryVersions: String!
  workflowVersion: String!
  codeVersion: String
}
type RecipeRunProvenance {
  recipeRunProvenanceId: Long!
  isTaskManual: Boolean!
  taskName: String
  libraryVersions: String
  workflowVersion: String
  codeVersion: String
}

input QualityCreate {
  datasetId: String!
  metricCode: String!
  facet: String
  name: String
  description: String
  statement: String
  warnings: String
  plotData: String
  multiPlotData: String
  tableData: String
  histogramData: String
  modmatData: String
  raincloudData: String
  efficiencyData: String
}
type Quality { qualityId: Long!  datasetId: String!  metricCode: String!  name: String  statement: String  warnings: String }

input ReceiptAccountCreate { datasetId: String!  expectedObjectCount: Int! }
type ReceiptAccount { datasetCatalogReceiptAccountId: Long!  datasetId: String!  expectedObjectCount: Int! }
"""


class PipelineRecords(Protocol):
    """What the metadata store reads and records, kept by obsflow (S3 documents on AWS and locally)."""

    def recipe_run(self, recipe_run_id: int) -> dict:
        """``{"configuration": dict, "parts": {part type: document list}, "input_dataset_id": int,
        "recipe_instance_id": int}``; UnknownRecipeRun if none."""

    def record(self, recipe_run_id: int | None, kind: str, document: dict) -> int:
        """Keep what a task recorded (kind: status, provenance, quality, receipt) with its run; its id."""

    def recorded(self, recipe_run_id: int | None, kind: str, dataset_id: str | None = None) -> list[dict]:
        """What was recorded of a kind: for one run, or (quality) for one of the pipeline's dataset ids."""


def _parse_long(node, _variables=None):
    if isinstance(node, IntValueNode):
        return int(node.value)
    raise TypeError("a Long is an integer")


def _long(value):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"a Long is an integer, not {value!r}")
    return value


def make_schema():
    schema = build_schema(SCHEMA)
    long: GraphQLScalarType = schema.type_map["Long"]  # DKIST's ids; obsflow's recipe run ids exceed 32 bits
    long.serialize, long.parse_value, long.parse_literal = _long, _long, _parse_long
    return schema


def _status(name: str) -> dict | None:
    for index, (status, complete, description) in enumerate(STATUSES, start=1):
        if status == name:
            return {"recipeRunStatusId": index, "recipeRunStatusName": status, "isComplete": complete,
                    "recipeRunStatusDescription": description}
    return None


class MetadataStore:
    """The GraphQL API over ``records``: ``execute(query)`` answers one request body as DKIST's client sends it."""

    def __init__(self, records: PipelineRecords):
        self.records = records
        self.schema = make_schema()
        self.root = {
            "recipeRuns": self._recipe_runs, "recipeRunStatuses": self._statuses, "qualities": self._qualities,
            "updateRecipeRun": self._update_recipe_run, "createRecipeRunStatus": self._create_status,
            "createRecipeRunProvenance": self._create_provenance, "createQuality": self._create_quality,
            "createDatasetCatalogReceiptAccount": self._create_receipt,
        }

    def execute(self, body: dict) -> dict:
        result = graphql_sync(self.schema, body.get("query") or "", root_value=self.root,
                              variable_values=body.get("variables"), operation_name=body.get("operationName"))
        answer: dict[str, Any] = {"data": result.data}
        if result.errors:
            answer["errors"] = [{"message": error.message, "path": error.path} for error in result.errors]
        return answer

    # -- queries ---------------------------------------------------------------------------------------------
    def _recipe_runs(self, _info, filterParams=None):
        recipe_run_id = (filterParams or {}).get("recipeRunId")
        if recipe_run_id is None:
            raise ValueError("recipeRuns needs filterParams: {recipeRunId: N}: a host answers for its own runs only")
        run = self.records.recipe_run(recipe_run_id)
        parts = [{"inputDatasetPart": {
            "inputDatasetPartId": run["input_dataset_id"] * 10 + index,
            "inputDatasetPartDocument": json.dumps(run["parts"][part_type]),
            "inputDatasetPartType": {"inputDatasetPartTypeName": part_type}}}
            for index, part_type in enumerate(PART_TYPES, start=1) if part_type in run["parts"]]
        provenances = [self._provenance_answer(p) for p in self.records.recorded(recipe_run_id, "provenance")]
        return [{
            "recipeRunId": recipe_run_id,
            "recipeInstanceId": run["recipe_instance_id"],
            "configuration": json.dumps(run["configuration"]),
            "recipeInstance": {"recipeId": run["recipe_instance_id"], "inputDatasetId": run["input_dataset_id"],
                               "inputDataset": {"inputDatasetId": run["input_dataset_id"], "isActive": True,
                                                "inputDatasetInputDatasetParts": parts}},
            "recipeRunProvenances": provenances,
        }]

    def _statuses(self, _info, filterParams=None):
        name = (filterParams or {}).get("recipeRunStatusName")
        return [s for s in (_status(n) for n, _, _ in STATUSES) if name is None or s["recipeRunStatusName"] == name]

    def _qualities(self, _info, filterParams=None):
        dataset_id = (filterParams or {}).get("datasetId")
        return [{"qualityId": q["id"], **q} for q in self.records.recorded(None, "quality", dataset_id)]

    # -- mutations -------------------------------------------------------------------------------------------
    def _update_recipe_run(self, _info, updateParams):
        status = next((s for s in (_status(n) for n, _, _ in STATUSES)
                       if s["recipeRunStatusId"] == updateParams["recipeRunStatusId"]), None)
        if status is None:
            raise ValueError(f"no recipe run status {updateParams['recipeRunStatusId']}")
        self.records.recipe_run(updateParams["recipeRunId"])  # the run must be known
        self.records.record(updateParams["recipeRunId"], "status", {"status": status["recipeRunStatusName"]})
        return {"recipeRunId": updateParams["recipeRunId"]}

    def _create_status(self, _info, createParams):
        existing = _status(createParams["recipeRunStatusName"])
        if existing is None:
            raise ValueError(f"obsflow knows the statuses {', '.join(n for n, _, _ in STATUSES)}, not "
                             f"{createParams['recipeRunStatusName']!r}")
        return existing

    def _create_provenance(self, _info, createParams):
        self.records.recipe_run(createParams["recipeRunId"])
        document = {key: createParams.get(key) for key in ("taskName", "isTaskManual", "libraryVersions",
                                                           "workflowVersion", "codeVersion", "inputDatasetId")}
        document["id"] = self.records.record(createParams["recipeRunId"], "provenance", document)
        return self._provenance_answer(document)

    @staticmethod
    def _provenance_answer(document: dict) -> dict:
        return {"recipeRunProvenanceId": document["id"], "isTaskManual": bool(document["isTaskManual"]),
                "taskName": document.get("taskName"), "libraryVersions": document.get("libraryVersions"),
                "workflowVersion": document.get("workflowVersion"), "codeVersion": document.get("codeVersion")}

    def _create_quality(self, _info, createParams):
        document = dict(createParams)
        document["id"] = self.records.record(None, "quality", document)
        return {"qualityId": document["id"], **document}

    def _create_receipt(self, _info, createParams):
        document = dict(createParams)
        document["id"] = self.records.record(None, "receipt", document)
        return {"datasetCatalogReceiptAccountId": document["id"], **createParams}


MAX_REQUEST_BYTES = 16 * 2**20  # a createQuality with a big plot is a few hundred KiB


class MetadataStoreServer:
    """The API over HTTP on loopback (``POST /graphql``), as the pipeline's ``internal-api-gateway``.

    It answers JSON requests addressed to its own host name only: a web page the operator opens cannot make a
    browser post to it (a cross-site form cannot send JSON, and a rebound DNS name is not its host)."""

    def __init__(self, store: MetadataStore, host: str = "127.0.0.1", port: int = 0):
        self.store = store
        self._server = ThreadingHTTPServer((host, port), None)
        bound = self._server.server_address[1]
        self._server.RequestHandlerClass = _handler(store, {f"{name}:{bound}" for name in (host, "localhost")})
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> "MetadataStoreServer":
        self._thread = threading.Thread(target=self._server.serve_forever, name="metadata-store", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(store: MetadataStore, hosts: set[str]):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            if self.headers.get("Host") not in hosts:
                return self._answer(421, {"errors": [{"message": f"this server answers {', '.join(sorted(hosts))} only"}]})
            if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
                return self._answer(415, {"errors": [{"message": "a GraphQL request is application/json"}]})
            if self.path.rstrip("/") != "/graphql":
                return self._answer(404, {"errors": [{"message": f"no {self.path}: the API is at /graphql"}]})
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_REQUEST_BYTES:
                return self._answer(413, {"errors": [{"message": f"a request has 1 to {MAX_REQUEST_BYTES} bytes"}]})
            try:
                body = json.loads(self.rfile.read(length))
                if not isinstance(body, dict):
                    raise ValueError("a GraphQL request is a JSON object with a query")
            except ValueError as exc:
                return self._answer(400, {"errors": [{"message": f"not a GraphQL request: {exc}"}]})
            self._answer(200, store.execute(body))

        def _answer(self, status: int, document: dict) -> None:
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args) -> None:  # the pipeline's own log says what it asked
            return

    return Handler
