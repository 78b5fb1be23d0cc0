"""The obsflow stack of one stage."""

from __future__ import annotations

import json

import aws_cdk as cdk
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from obsflow import discovery
from obsflow_infra.catalog import CatalogTables
from obsflow_infra.compute import RecipeCompute
from obsflow_infra.config import StageConfig
from obsflow_infra.embargo import Embargo
from obsflow_infra.ingest import Ingest
from obsflow_infra.monitoring import Monitoring
from obsflow_infra.operations import Operations
from obsflow_infra.orchestration import Orchestration
from obsflow_infra.pipelines import HostedPipelines
from obsflow_infra.roles import PeopleRoles
from obsflow_infra.storage import Storage


class ObsflowStack(cdk.Stack):
    def __init__(self, scope: Construct, id: str, *, config: StageConfig, **kwargs) -> None:
        super().__init__(scope, id, description=f"obsflow science data processing, stage {config.stage}", **kwargs)
        settings = config.settings()
        self.config, self.settings = config, settings
        self.storage = Storage(self, "Storage", config=config, settings=settings)
        buckets = self.storage.buckets
        self.catalog = CatalogTables(self, "Catalog", config=config, settings=settings)
        self.ingest = Ingest(self, "Ingest", config=config, settings=settings, bucket=buckets["ingest"],
                             catalog=self.catalog)
        self.compute = RecipeCompute(self, "Compute", config=config, settings=settings, buckets=buckets)
        self.operations = Operations(self, "Operations", config=config, settings=settings, catalog=self.catalog,
                                     buckets=buckets)
        self.operations.allow_nudge(self.ingest.handler)
        self.orchestration = Orchestration(self, "Orchestration", config=config, settings=settings, catalog=self.catalog,
                                           buckets=buckets, compute=self.compute, operations=self.operations)
        self.pipelines = HostedPipelines(self, "Pipelines", config=config, settings=settings, compute=self.compute)
        # Who may do what: the people's roles, granted by the account's administrators.
        self.roles = PeopleRoles(self, "Roles", config=config, settings=settings, catalog=self.catalog, buckets=buckets,
                                 run_control=self.operations.run_control)
        # The developer role reads developer datasets under embargo: its own policy limits it to dev/.
        self.embargo = Embargo(self, "Embargo", config=config, settings=settings, catalog=self.catalog,
                               data=buckets["data"],
                               stage_readers=[self.compute.job_role, self.orchestration.catalog.role,
                                              self.roles.roles["developer"]])
        self.functions = {
            "ingest": self.ingest.handler, "submitter": self.operations.submitter, "backstop": self.operations.backstop,
            "open-ticket": self.operations.ticket, "start-run": self.orchestration.start_run,
            "catalog": self.orchestration.catalog, "finish-run": self.orchestration.finish_run,
            "fail-run": self.orchestration.fail_run, "register-recipes": self.orchestration.register_recipes,
            "release": self.embargo.release, "campaign-schedule": self.operations.campaign_schedule,
        }
        self.monitoring = Monitoring(self, "Monitoring", config=config, ingest=self.ingest,
                                     state_machines=self.orchestration.state_machines, functions=self.functions,
                                     operators=self.operations.topics["operators"])
        # How the CLI finds this stage (the local stack writes the same document), written last: a stage whose
        # document exists has every resource, so a script that waits for it does not race the deployment.
        discovery_document = ssm.StringParameter(self, "Discovery", parameter_name=discovery.parameter_name(config.stage),
                            string_value=json.dumps(discovery.document(settings), sort_keys=True),
                            description=f"obsflow stage {config.stage}: resource names")
        discovery_document.node.add_dependency(self.storage, self.catalog, self.ingest, self.compute, self.operations,
                                               self.orchestration, self.embargo, self.monitoring,
                                               self.pipelines)
