"""Simulated DynamoDB: the lease table the replicas share, with DynamoDB's conditional writes.

Tables are made by the world (:meth:`Dynamodb.table`), keyed by one string attribute, as the
deployment makes the lease table. Writes are atomic in the loop (no await between reading and
writing an item), so a condition that holds when judged holds when written: two replicas
racing for the lease see one ``ConditionalCheckFailedException``, as they would in AWS. Reads are
strongly consistent. A ``Scan`` pages by ``Limit`` with ``LastEvaluatedKey``, filters after the
page is read (as DynamoDB does), and projects the attributes asked for.

Time to live: a table made with ``ttl`` (the attribute the deployment names in its
``TimeToLiveSpecification``) loses the items whose TTL attribute (epoch seconds) is past, as
DynamoDB's background deletion does: not at once but ``TTL_LAG`` later (DynamoDB deletes expired
items "typically within a few days"; until then they are read, and billed, like any other), swept
once a simulated hour. Readers must not rely on it: an expired item may still be there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scaler.sim.cloud.expressions import ExpressionError, Item, holds, tokens, update
from scaler.sim.cloud.transport import AwsError, Operations

FAILED = "ConditionalCheckFailedException"
PAGE = 100  # items a scan reads when no Limit is given (DynamoDB reads up to 1 MB)
TTL_LAG = 2 * 86400.0  # seconds past its expiry an item is deleted
TTL_SWEEP = 3600.0  # seconds between sweeps for expired items


@dataclass
class Table:
    name: str
    key: str
    items: dict[str, Item] = field(default_factory=dict)  # key value -> item
    ttl: str | None = None  # the TTL attribute (None: no time to live)
    swept: float = float("-inf")  # when expired items were last deleted


class Dynamodb(Operations):
    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        """``clock``: epoch seconds now, for time to live (None: nothing expires)."""
        self.tables: dict[str, Table] = {}
        self._clock = clock

    def table(self, name: str, key: str = "name", ttl: str | None = None) -> Table:
        """Make (or find) the table ``name`` keyed by the string attribute ``key``, with time
        to live on the attribute ``ttl`` (None: none)."""
        return self.tables.setdefault(name, Table(name, key, ttl=ttl))

    def _table(self, name: str) -> Table:
        if name not in self.tables:
            raise AwsError(
                "ResourceNotFoundException",
                f"Requested resource not found: Table: {name} not found",
            )
        table = self.tables[name]
        if table.ttl is not None and self._clock is not None:
            _sweep(table, self._clock())
        return table

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


def _sweep(table: Table, now: float) -> None:
    """Delete the items whose TTL attribute is ``TTL_LAG`` past, once every ``TTL_SWEEP``."""
    if now - table.swept < TTL_SWEEP:
        return
    table.swept = now
    attribute = table.ttl or ""
    for key in [k for k, item in table.items.items() if _expired(item.get(attribute), now)]:
        del table.items[key]


def _expired(value: dict[str, Any] | None, now: float) -> bool:
    """Whether a TTL attribute's value is long enough past (only numbers count, as in
    DynamoDB: an item without one, or with another type, never expires)."""
    if value is None or "N" not in value:
        return False
    return float(value["N"]) + TTL_LAG < now
