"""Catalog tables: one DynamoDB table per pynamodb model, with exactly the keys and indexes it declares."""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from obsflow import tables
from obsflow.settings import Settings
from obsflow.tables import run_counts
from obsflow_infra.config import StageConfig

_TYPES = {"S": dynamodb.AttributeType.STRING, "N": dynamodb.AttributeType.NUMBER, "B": dynamodb.AttributeType.BINARY}
_PROJECTIONS = {"ALL": dynamodb.ProjectionType.ALL, "KEYS_ONLY": dynamodb.ProjectionType.KEYS_ONLY,
                "INCLUDE": dynamodb.ProjectionType.INCLUDE}

# Tables written in the same transactions as another: whoever may use the one may use them (a run's status and
# its count, obsflow.tables.run_counts).
MOVES_WITH = {"runs": (run_counts.TABLE,)}


def _keys(key_schema: list[dict], types: dict[str, str]) -> dict:
    """pynamodb's key schema -> the partition_key / sort_key arguments of a table or index."""
    keys = {}
    for key in key_schema:
        attribute = dynamodb.Attribute(name=key["AttributeName"], type=_TYPES[types[key["AttributeName"]]])
        keys["partition_key" if key["KeyType"] == "HASH" else "sort_key"] = attribute
    return keys


class CatalogTables(Construct):
    def __init__(self, scope: Construct, id: str, *, config: StageConfig, settings: Settings) -> None:
        super().__init__(scope, id)
        self.tables: dict[str, dynamodb.Table] = {}
        self.index_names: dict[str, list[str]] = {}
        for name, model in sorted(tables.models().items()):
            schema = model._get_schema()
            types = {a["AttributeName"]: a["AttributeType"] for a in schema["attribute_definitions"]}
            table = dynamodb.Table(
                self, name.title().replace("-", ""),
                table_name=settings.table_name(name),
                billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
                point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                    point_in_time_recovery_enabled=True),
                encryption=dynamodb.TableEncryption.AWS_MANAGED,
                deletion_protection=config.retain_data,
                removal_policy=config.removal_policy,
                **_keys(schema["key_schema"], types),
            )
            for index in schema["global_secondary_indexes"]:
                projection = index["projection"]
                table.add_global_secondary_index(
                    index_name=index["index_name"],
                    projection_type=_PROJECTIONS[projection["ProjectionType"]],
                    non_key_attributes=projection.get("NonKeyAttributes"),
                    **_keys(index["key_schema"], types),
                )
            self.tables[name] = table
            self.index_names[name] = [index["index_name"] for index in schema["global_secondary_indexes"]]

    def __getitem__(self, name: str) -> dynamodb.Table:
        return self.tables[name]

    def arns(self, *names: str) -> list[str]:
        """The ARNs of these tables and of each index they declare (named: no wildcard), with the tables that
        move with them."""
        names = tuple(dict.fromkeys(t for name in names for t in (name, *MOVES_WITH.get(name, ()))))
        return [arn for name in names for arn in (
            self.tables[name].table_arn, *(f"{self.tables[name].table_arn}/index/{i}" for i in self.index_names[name]))]
