"""The embargo as the data bucket's policy states it: each rule evaluated against the synthesized template.

A small evaluator of the policy's statements stands in for IAM: it knows the condition operators the
policy uses, and where a policy variable names a principal tag the principal lacks, it lets the condition
fail (IAM does not match a missing variable), so a deny that relied on it would not hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tests.infra.conftest import synthesize

READ = "s3:GetObject"
ACCOUNT = "111122223333"
STEWARD = f"arn:aws:iam::{ACCOUNT}:role/data-steward"


@dataclass
class Principal:
    arn: object  # a literal ARN, or the template's {"Fn::GetAtt": [role, "Arn"]}
    tags: dict[str, str] = field(default_factory=dict)
    account: str = ACCOUNT


def _resolve(value, principal: Principal, object_tags: dict[str, str]):
    """A condition value, with ${aws:PrincipalTag/...} replaced; None if the principal lacks that tag."""
    if isinstance(value, str) and value.startswith("${aws:PrincipalTag/"):
        return principal.tags.get(value[len("${aws:PrincipalTag/"):-1])
    if value == {"Ref": "AWS::AccountId"}:
        return ACCOUNT
    return value


def _context(key: str, principal: Principal, object_tags: dict[str, str]):
    if key.startswith("s3:ExistingObjectTag/"):
        return object_tags.get(key.split("/", 1)[1])
    if key.startswith("aws:PrincipalTag/"):
        return principal.tags.get(key.split("/", 1)[1])
    return {"aws:PrincipalArn": principal.arn, "aws:PrincipalAccount": principal.account}[key]


def _holds(operator: str, conditions: dict, principal: Principal, object_tags: dict[str, str]) -> bool:
    for key, expected in conditions.items():
        actual = _context(key, principal, object_tags)
        values = [_resolve(v, principal, object_tags) for v in (expected if isinstance(expected, list) else [expected])]
        if None in values:
            return False  # a missing policy variable matches nothing
        if operator == "Null":
            holds = (actual is None) == (values[0] == "true")
        elif operator in ("StringEquals", "ArnEquals"):
            holds = actual in values
        elif operator in ("StringNotEquals", "ArnNotEquals"):
            holds = actual not in values  # a missing key is "not equal"
        else:
            raise AssertionError(f"the evaluator does not know {operator}")
        if not holds:
            return False
    return True


def _applies(statement: dict, principal: Principal, object_tags: dict[str, str]) -> bool:
    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    if READ not in actions and "s3:*" not in actions:
        return False
    named = statement["Principal"]["AWS"]
    if named != "*" and principal.arn not in (named if isinstance(named, list) else [named]):
        return False
    if statement.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false":
        return False  # requests are made over TLS
    return all(_holds(op, conditions, principal, object_tags)
               for op, conditions in statement.get("Condition", {}).items())


def decide(policy: dict, principal: Principal, object_tags: dict[str, str], identity_allows: bool = False) -> str:
    """'deny', 'allow' or 'implicit deny' for GetObject of an object with ``object_tags``."""
    applying = [s for s in policy["Statement"] if _applies(s, principal, object_tags)]
    if any(s["Effect"] == "Deny" for s in applying):
        return "deny"
    return "allow" if identity_allows or any(s["Effect"] == "Allow" for s in applying) else "implicit deny"


def data_bucket_policy(synthesized) -> dict:
    data = synthesized.logical_id(synthesized.stack.storage.buckets["data"])
    [policy] = [p["Properties"]["PolicyDocument"] for p in synthesized.resources("AWS::S3::BucketPolicy").values()
                if p["Properties"]["Bucket"] == {"Ref": data}]
    return policy


def role(synthesized, construct) -> Principal:
    return Principal({"Fn::GetAtt": [synthesized.logical_id(construct), "Arn"]})


EMBARGOED = {"proposal_id": "pid_1_23", "release_date": "2027-11-22", "embargoed": "true"}
RELEASED = {**EMBARGOED, "embargoed": "false"}


@pytest.fixture(scope="module")
def policy(dev):
    return data_bucket_policy(dev)


def test_a_principal_of_the_proposal_reads_its_embargoed_products(policy):
    # Given a principal tagged with the product's proposal (a PI's role, or the portal's session for the PI)
    pi = Principal(f"arn:aws:iam::{ACCOUNT}:role/pi-session", tags={"proposal_id": "pid_1_23"})
    # Then the bucket policy itself grants the read, embargoed or not
    assert decide(policy, pi, EMBARGOED) == "allow"
    assert decide(policy, pi, RELEASED) == "allow"


def test_another_proposals_principal_is_denied_even_with_its_own_permissions(policy):
    other = Principal(f"arn:aws:iam::{ACCOUNT}:role/other-pi", tags={"proposal_id": "pid_9_99"})
    assert decide(policy, other, EMBARGOED, identity_allows=True) == "deny"


def test_an_untagged_principal_is_denied_an_embargoed_product_even_as_an_administrator(policy):
    admin = Principal(f"arn:aws:iam::{ACCOUNT}:role/Admin")
    assert decide(policy, admin, EMBARGOED, identity_allows=True) == "deny"
    # and once released, its own permissions decide again
    assert decide(policy, admin, RELEASED, identity_allows=True) == "allow"


def test_an_untagged_object_is_treated_as_embargoed(policy):
    # Given an object without embargo tags (a writer that forgot them): the policy fails closed
    admin = Principal(f"arn:aws:iam::{ACCOUNT}:role/Admin", tags={"proposal_id": "pid_1_23"})
    assert decide(policy, admin, {}, identity_allows=True) == "deny"
    assert decide(policy, Principal(f"arn:aws:iam::{ACCOUNT}:role/Admin"), {}, identity_allows=True) == "deny"


def test_the_archive_public_role_reads_released_products_only(dev, policy):
    archive = role(dev, dev.stack.embargo.public_reader)
    assert decide(policy, archive, RELEASED) == "allow"
    assert decide(policy, archive, EMBARGOED) == "deny"
    assert decide(policy, archive, {}) == "deny"


def test_the_stages_own_readers_are_not_denied_embargoed_products(dev, policy):
    # Tasks read master calibrations under embargo; the catalog reads what it wrote
    for reader in (dev.stack.compute.job_role, dev.stack.orchestration.catalog.role):
        assert decide(policy, role(dev, reader), EMBARGOED, identity_allows=True) == "allow"
    # Other functions of the stage have no such exemption
    assert decide(policy, role(dev, dev.stack.operations.backstop.role), EMBARGOED, identity_allows=True) == "deny"


def test_a_principal_of_another_account_is_not_granted_by_a_matching_tag(policy):
    outsider = Principal("arn:aws:iam::999988887777:role/x", tags={"proposal_id": "pid_1_23"}, account="999988887777")
    assert decide(policy, outsider, EMBARGOED) == "implicit deny"


def test_data_stewards_named_at_synthesis_read_embargoed_products(tmp_path):
    # Given the app synthesized with a data steward's role
    synthesized = synthesize("dev", tmp_path, dataStewards=STEWARD)
    policy = data_bucket_policy(synthesized)
    # Then that role reads embargoed products with its own permissions, and another untagged role still cannot
    assert decide(policy, Principal(STEWARD), EMBARGOED, identity_allows=True) == "allow"
    assert decide(policy, Principal(f"arn:aws:iam::{ACCOUNT}:role/Admin"), EMBARGOED, identity_allows=True) == "deny"


def test_a_data_steward_that_is_no_role_arn_is_refused_at_synthesis(tmp_path):
    with pytest.raises(ValueError, match="is not an IAM role ARN"):
        synthesize("dev", tmp_path, dataStewards="*")


def test_the_release_job_runs_daily_and_may_only_tag_products(dev):
    release = dev.stack.embargo.release
    statements = dev.statements(release.role)
    data = dev.logical_id(dev.stack.storage.buckets["data"])
    on_data = {a for s in statements if data in str(s["Resource"])
               for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    assert on_data == {"s3:PutObjectTagging", "s3:ListBucket"}
    variables = dev.resource(release.function)["Properties"]["Environment"]["Variables"]
    assert variables["OBSFLOW_DEFAULT_EMBARGO_DAYS"] == "365"


def test_the_default_embargo_named_at_synthesis_reaches_every_function(tmp_path):
    synthesized = synthesize("dev", tmp_path, defaultEmbargoDays=90)
    for function in synthesized.stack.functions.values():
        variables = synthesized.resource(function.function)["Properties"]["Environment"]["Variables"]
        assert variables["OBSFLOW_DEFAULT_EMBARGO_DAYS"] == "90"
