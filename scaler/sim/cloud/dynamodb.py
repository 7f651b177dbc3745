"""Simulated DynamoDB: the lease table the replicas share, with DynamoDB's conditional writes.

Tables are made by the world (:meth:`Dynamodb.table`), keyed by one string attribute, as the
deployment makes the lease table. Writes are atomic in the loop (no await between reading and
writing an item), so a condition that holds when judged holds when written: two replicas
racing for the lease see one ``ConditionalCheckFailedException``, as they would in AWS. Reads are
strongly consistent. A ``Scan`` pages by ``Limit`` with ``LastEvaluatedKey``, filters after the
page is read (as DynamoDB does), and projects the attributes asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scaler.sim.cloud.expressions import ExpressionError, Item, holds, tokens, update
from scaler.sim.cloud.transport import AwsError, Operations

FAILED = "ConditionalCheckFailedException"
PAGE = 100  # items a scan reads when no Limit is given (DynamoDB reads up to 1 MB)


@dataclass
class Table:
    name: str
    key: str
    items: dict[str, Item] = field(default_factory=dict)  # key value -> item


class Dynamodb(Operations):
    def __init__(self) -> None:
        self.tables: dict[str, Table] = {}

    def table(self, name: str, key: str = "name") -> Table:
        """Make (or find) the table ``name`` keyed by the string attribute ``key``."""
        return self.tables.setdefault(name, Table(name, key))

    def _table(self, name: str) -> Table:
        if name not in self.tables:
            raise AwsError(
                "ResourceNotFoundException",
                f"Requested resource not found: Table: {name} not found",
            )
        return self.tables[name]

    async def describe_table(self, TableName: str) -> dict[str, Any]:
        table = self._table(TableName)
        schema = [{"AttributeName": table.key, "KeyType": "HASH"}]
        return {"Table": {"TableName": table.name, "TableStatus": "ACTIVE", "KeySchema": schema}}

    async def get_item(self, TableName: str, Key: Item, **_: Any) -> dict[str, Any]:
        table = self._table(TableName)
        found = table.items.get(_key(table, Key))
        return {"Item": dict(found)} if found is not None else {}

    async def put_item(
        self,
        TableName: str,
        Item: Item,
        ConditionExpression: str | None = None,
        ExpressionAttributeNames: dict[str, str] | None = None,
        ExpressionAttributeValues: dict[str, Any] | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        table = self._table(TableName)
        key = _key(table, Item)
        old = table.items.get(key, {})
        _check(ConditionExpression, old, ExpressionAttributeNames, ExpressionAttributeValues)
        table.items[key] = dict(Item)
        return {}

    async def update_item(
        self,
        TableName: str,
        Key: Item,
        UpdateExpression: str,
        ConditionExpression: str | None = None,
        ExpressionAttributeNames: dict[str, str] | None = None,
        ExpressionAttributeValues: dict[str, Any] | None = None,
        ReturnValues: str = "NONE",
        **_: Any,
    ) -> dict[str, Any]:
        table = self._table(TableName)
        key = _key(table, Key)
        old = table.items.get(key, {})
        names, values = ExpressionAttributeNames or {}, ExpressionAttributeValues or {}
        _check(ConditionExpression, old, names, values)
        try:
            new = update(UpdateExpression, {**old, **Key}, names, values)
        except (ExpressionError, KeyError) as exc:
            raise AwsError("ValidationException", f"Invalid UpdateExpression: {exc}") from None
        table.items[key] = new
        return {"Attributes": dict(new)} if ReturnValues == "ALL_NEW" else {}

    async def scan(
        self,
        TableName: str,
        Limit: int = PAGE,
        ExclusiveStartKey: Item | None = None,
        FilterExpression: str | None = None,
        ProjectionExpression: str | None = None,
        ExpressionAttributeNames: dict[str, str] | None = None,
        ExpressionAttributeValues: dict[str, Any] | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        table = self._table(TableName)
        names, values = ExpressionAttributeNames or {}, ExpressionAttributeValues or {}
        keys = sorted(table.items)
        start = 0 if ExclusiveStartKey is None else _after(keys, _key(table, ExclusiveStartKey))
        page = keys[start : start + Limit]
        try:
            items = [
                table.items[k]
                for k in page
                if holds(FilterExpression, table.items[k], names, values)
            ]
        except ExpressionError as exc:
            raise AwsError("ValidationException", f"Invalid FilterExpression: {exc}") from None
        reply: dict[str, Any] = {
            "Items": [_project(i, ProjectionExpression, names) for i in items],
            "Count": len(items),
            "ScannedCount": len(page),
        }
        if start + Limit < len(keys):
            reply["LastEvaluatedKey"] = {table.key: {"S": page[-1]}}
        return reply


def _key(table: Table, item: Item) -> str:
    if table.key not in item or "S" not in item[table.key]:
        raise AwsError("ValidationException", "The provided key element does not match the schema")
    return str(item[table.key]["S"])


def _after(keys: list[str], key: str) -> int:
    return next((i for i, k in enumerate(keys) if k > key), len(keys))


def _check(
    condition: str | None,
    item: Item,
    names: dict[str, str] | None,
    values: dict[str, Any] | None,
) -> None:
    try:
        ok = holds(condition, item, names or {}, values or {})
    except ExpressionError as exc:
        raise AwsError("ValidationException", f"Invalid ConditionExpression: {exc}") from None
    if not ok:
        raise AwsError(FAILED, "The conditional request failed")


def _project(item: Item, projection: str | None, names: dict[str, str]) -> Item:
    if not projection:
        return dict(item)
    wanted = {names.get(t, t) for t in tokens(projection) if t != ","}
    return {k: v for k, v in item.items() if k in wanted}
