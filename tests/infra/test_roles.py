"""The people's roles as the synthesized template states them: who may assume each, and each one's statements."""

from __future__ import annotations

import json

import pytest

from obsflow import roles
from obsflow.settings import TABLES

WRITE = "dynamodb:PutItem"


def actions(statement: dict) -> list[str]:
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


def resources(statement: dict) -> list:
    return statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]


def role_of(dev, role: str):
    return dev.stack.roles.roles[role]


def statements(dev, role: str) -> list[dict]:
    return dev.statements(role_of(dev, role))


def tables_with(dev, role: str, action: str, effect: str = "Allow") -> set[str]:
    """The tables (by name) a role's statements allow (or deny) ``action`` on."""
    logical = {dev.logical_id(dev.stack.catalog[name]): name for name in TABLES}
    named = set()
    for statement in statements(dev, role):
        if statement["Effect"] == effect and action in actions(statement):
            for resource in resources(statement):
                named.update(name for lid, name in logical.items() if f'"{lid}"' in json.dumps(resource))
    return named


def object_grants(dev, role: str, bucket: str) -> dict[str, set[str]]:
    """Object ARN suffix (the key prefix and '*') -> actions, for one bucket."""
    lid = dev.logical_id(dev.stack.storage.buckets[bucket])
    grants: dict[str, set[str]] = {}
    for statement in statements(dev, role):
        for resource in resources(statement):
            text = json.dumps(resource)
            if f'"{lid}"' in text and "Fn::Join" in text and statement["Effect"] == "Allow":
                grants.setdefault(resource["Fn::Join"][1][-1], set()).update(actions(statement))
    return grants


@pytest.mark.parametrize("role", roles.ROLES)
def test_each_role_is_assumed_by_the_account_alone_and_named_after_the_stage(dev, role):
    # Given the role in the template
    properties = dev.resource(role_of(dev, role))["Properties"]
    [trust] = properties["AssumeRolePolicyDocument"]["Statement"]
    # Then only the account's own principals may assume it (its administrators grant it), for at most 4 hours
    assert trust["Principal"] == {"AWS": {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":iam::",
                                                             {"Ref": "AWS::AccountId"}, ":root"]]}}
    assert properties["RoleName"] == f"obsflow-dev-{role}" and properties["MaxSessionDuration"] == 4 * 3600
    # And a PI's session may carry its proposal as a tag; no other role takes session tags
    assert set(actions(trust)) == ({"sts:AssumeRole", "sts:TagSession"} if role == roles.PI_READ else {"sts:AssumeRole"})
    # And no statement of it allows every action of a service, or anything of IAM or STS
    for statement in statements(dev, role):
        assert not any(a.endswith("*") or a.startswith(("iam:", "sts:")) for a in actions(statement)), statement


def test_the_operator_runs_the_stage_builds_on_run_control_and_decides_nothing(dev):
    # Given the operator role
    properties = dev.resource(role_of(dev, roles.OPERATOR))["Properties"]
    # Then it carries the run-control policy (cancel and prioritize), not a copy of it
    assert properties["ManagedPolicyArns"] == [{"Ref": dev.logical_id(dev.stack.operations.run_control)}]
    assert not any("states:StopExecution" in actions(s) for s in statements(dev, roles.OPERATOR))
    # And it writes runs (with their status counts), instances, slots, campaigns, tickets and candidates: never
    # datasets, tags or recipes
    assert tables_with(dev, roles.OPERATOR, WRITE) == {"runs", "run-counts", "recipe-instances", "catalogue-edges",
                                                       "capacity", "campaigns", "tickets", "candidates"}
    # And it pauses and resumes through this stage's submission switch only
    [switch] = [s for s in statements(dev, roles.OPERATOR) if "ssm:PutParameter" in actions(s)]
    assert "parameter/obsflow/dev/submission" in json.dumps(switch["Resource"])
    # And it uploads to the ingest bucket's four prefixes, and reads nothing of the data bucket
    assert object_grants(dev, roles.OPERATOR, "ingest") == {
        f"/{p}*": {"s3:PutObject"} for p in ("raw/", "manifests/", "candidates/", "proposals/")}
    assert object_grants(dev, roles.OPERATOR, "data") == {}


def test_data_quality_decides_datasets_tags_and_campaigns_and_runs_nothing(dev):
    # (qc-values: `obsflow datasets reindex-qc` records the QC values of datasets catalogued before they were)
    assert tables_with(dev, roles.DATA_QUALITY, WRITE) == {"datasets", "qc-values", "tags", "campaigns", "tickets"}
    everything = {a for s in statements(dev, roles.DATA_QUALITY) for a in actions(s)}
    assert not everything & {"states:StopExecution", "states:StartExecution", "batch:TerminateJob", "ssm:PutParameter"}
    assert object_grants(dev, roles.DATA_QUALITY, "data") == {}
    # An approval nudges the submitter
    invoked = [s for s in statements(dev, roles.DATA_QUALITY) if "lambda:InvokeFunction" in actions(s)]
    assert len(invoked) == 1 and "obsflow-dev-submitter" in json.dumps(invoked[0]["Resource"])


def test_a_developer_reads_and_sweeps_dev_only_and_may_never_write_a_dataset(dev):
    # Given the developer role: objects of the data bucket under dev/ only
    assert object_grants(dev, roles.DEVELOPER, "data") == {"/dev/*": {"s3:GetObject", "s3:DeleteObject"}}
    [listing] = [s for s in statements(dev, roles.DEVELOPER) if "s3:ListBucket" in actions(s)]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["dev/*"]}}
    # And its campaigns' tables, but never the datasets (a production decision), which is denied outright
    assert tables_with(dev, roles.DEVELOPER, WRITE) == {"campaigns", "recipe-instances", "catalogue-edges", "runs",
                                                        "run-counts"}
    assert tables_with(dev, roles.DEVELOPER, "dynamodb:UpdateItem", effect="Deny") == {"datasets"}
    [deny] = [s for s in statements(dev, roles.DEVELOPER) if s["Effect"] == "Deny"]
    assert {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"} <= set(actions(deny))
    # And the embargo's deny exempts it (its own policy limits it to dev/), so it reads its embargoed dev datasets
    policy = dev.resource(dev.stack.storage.buckets["data"].policy)["Properties"]["PolicyDocument"]
    [deny_untagged] = [s for s in policy["Statement"] if s.get("Sid") == "EmbargoDenyUntaggedPrincipals"]
    assert dev.logical_id(role_of(dev, roles.DEVELOPER)) in json.dumps(deny_untagged["Condition"]["ArnNotEquals"])


def test_the_pipeline_manager_registers_recipes_values_rules_and_pipelines_only(dev):
    assert tables_with(dev, roles.PIPELINE_MANAGER, WRITE) == {"recipes", "parameter-values"}
    invoked = [s for s in statements(dev, roles.PIPELINE_MANAGER) if "lambda:InvokeFunction" in actions(s)]
    assert len(invoked) == 1 and "obsflow-dev-register-recipes" in json.dumps(invoked[0]["Resource"])
    work = object_grants(dev, roles.PIPELINE_MANAGER, "work")
    assert work["/pipelines/packages/*"] == {"s3:GetObject", "s3:PutObject"}
    assert work["/discovery-rules.json"] == {"s3:GetObject", "s3:PutObject"}
    assert object_grants(dev, roles.PIPELINE_MANAGER, "data") == {}


def test_a_pi_reads_its_own_proposals_and_released_objects_only(dev):
    pi = statements(dev, roles.PI_READ)
    # Then it reads data objects only where the object's proposal tag is its own, or the object is released
    reads = {s.get("Sid"): s for s in pi if "s3:GetObject" in actions(s) and "s3:GetObjectVersion" in actions(s)}
    assert reads["ItsProposalsObjects"]["Condition"] == {
        "StringEquals": {"s3:ExistingObjectTag/proposal_id": "${aws:PrincipalTag/proposal_id}"}}
    assert reads["ReleasedObjects"]["Condition"] == {"StringEquals": {"s3:ExistingObjectTag/embargoed": "false"}}
    assert set(reads) == {"ItsProposalsObjects", "ReleasedObjects"}
    # And it lists only its proposal's prefix
    [listing] = [s for s in pi if "s3:ListBucket" in actions(s)]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["${aws:PrincipalTag/proposal_id}/*"]}}
    # And it writes nothing, and reads the datasets (and their QC values), proposals and recipes tables only
    assert not any(a.split(":")[1].startswith(("Put", "Update", "Delete")) for s in pi for a in actions(s))
    assert tables_with(dev, roles.PI_READ, "dynamodb:GetItem") == {"datasets", "qc-values", "proposals", "recipes",
                                                                   "parameter-values"}
