"""Where the slots of the shared disruption budget live (:mod:`scaler.plan.budget_slots`).

Two stores behind one port, :class:`BudgetSlots`:

- :class:`Unshared`: no lease table, this scaler is the only one. Every slot is granted: the
  drain gate's own count, under its lock, already keeps one process within the budget.
- :class:`DynamoSlots`: replicas share the lease table. Slot ``k`` of a cluster is the item
  ``name = "<cluster>/budget/<k>"`` with ``instance``, ``holder``, ``taken`` and ``expires``
  (epoch seconds; also the table's TTL attribute). Every write is conditional:

  - read: one paginated, strongly consistent ``Scan`` filtered on the cluster's prefix;
  - take: ``PutItem`` on the condition that there is no such item, it has expired, it names the
    same instance, or it still holds what the reader saw (a slot the reader found no longer in
    use): of two replicas taking one slot, one fails with ``ConditionalCheckFailedException``;
  - release (a drain that did not happen): ``UpdateItem`` setting ``expires`` to 0, on the
    condition that the slot is still the holder's.
"""

from __future__ import annotations

import math
import re
from typing import Any, Protocol

from scaler.aws.clients import error_code
from scaler.plan.budget_slots import Slot

LOST = "ConditionalCheckFailedException"
NAMES = {"#n": "name", "#i": "instance", "#h": "holder", "#t": "taken", "#exp": "expires"}


class BudgetSlots(Protocol):
    """The slots of the disruption budget, shared or not."""

    async def read(self) -> list[Slot]:
        """Every slot of the cluster, expired or not."""
        ...

    async def take(
        self, index: int, instance_id: str, seen: Slot | None, now: float
    ) -> Slot | None:
        """Take slot ``index`` for ``instance_id`` unless another drain holds it (None);
        ``seen``: what the slot held when read (None: nothing)."""
        ...

    async def release(self, slot: Slot) -> None:
        """Free ``slot`` if it is still as taken."""
        ...


class Unshared:
    """One scaler alone: every slot is granted, none is stored."""

    async def read(self) -> list[Slot]:
        return []

    async def take(
        self, index: int, instance_id: str, seen: Slot | None, now: float
    ) -> Slot | None:
        return Slot(index, instance_id, "", now, math.inf)

    async def release(self, slot: Slot) -> None:
        return None


class DynamoSlots:
    def __init__(self, dynamodb: Any, table: str, cluster: str, me: str, hold: float) -> None:
        self._dynamodb = dynamodb
        self.table = table
        self.prefix = f"{cluster}/budget/"
        self.me = me
        self._hold = hold  # seconds a slot lasts unless freed or taken over

    def _key(self, index: int) -> dict[str, Any]:
        return {"name": {"S": f"{self.prefix}{index}"}}

    async def read(self) -> list[Slot]:
        paginator = self._dynamodb.get_paginator("scan")
        found: list[Slot] = []
        async for page in paginator.paginate(
            TableName=self.table,
            ConsistentRead=True,
            FilterExpression="begins_with(#n, :prefix)",
            ExpressionAttributeNames={"#n": "name"},
            ExpressionAttributeValues={":prefix": {"S": self.prefix}},
        ):
            found += [s for s in map(self._slot, page.get("Items", [])) if s is not None]
        return sorted(found, key=lambda s: s.index)

    async def take(
        self, index: int, instance_id: str, seen: Slot | None, now: float
    ) -> Slot | None:
        slot = Slot(index, instance_id, self.me, now, float(math.ceil(now + self._hold)))
        condition = "attribute_not_exists(#n) OR #exp < :now OR #i = :i"
        values = {":now": {"N": _n(now)}, ":i": {"S": instance_id}}
        if seen is not None:
            condition += " OR (#h = :h AND #t = :t)"
            values |= {":h": {"S": seen.holder}, ":t": {"N": _n(seen.taken)}}
        try:
            await self._dynamodb.put_item(
                TableName=self.table,
                Item={
                    **self._key(index),
                    "instance": {"S": instance_id},
                    "holder": {"S": self.me},
                    "taken": {"N": _n(now)},
                    "expires": {"N": _n(slot.expires)},
                },
                ConditionExpression=condition,
                ExpressionAttributeNames=_names(condition),
                ExpressionAttributeValues=values,
            )
        except Exception as exc:
            if error_code(exc) == LOST:
                return None
            raise
        return slot

    async def release(self, slot: Slot) -> None:
        condition = "#h = :h AND #t = :t AND #i = :i"
        try:
            await self._dynamodb.update_item(
                TableName=self.table,
                Key=self._key(slot.index),
                UpdateExpression="SET #exp = :zero",
                ConditionExpression=condition,
                ExpressionAttributeNames=_names(f"{condition} #exp"),
                ExpressionAttributeValues={
                    ":zero": {"N": "0"},
                    ":h": {"S": slot.holder},
                    ":t": {"N": _n(slot.taken)},
                    ":i": {"S": slot.instance_id},
                },
            )
        except Exception as exc:
            if error_code(exc) != LOST:  # taken over meanwhile: not ours to free
                raise

    def _slot(self, item: dict[str, Any]) -> Slot | None:
        try:
            return Slot(
                int(item["name"]["S"].removeprefix(self.prefix)),
                item["instance"]["S"],
                item["holder"]["S"],
                float(item["taken"]["N"]),
                float(item["expires"]["N"]),
            )
        except (KeyError, ValueError):
            return None


def _n(value: float) -> str:
    """A DynamoDB number that reads back as the same float (a slot is known by its ``taken``)."""
    return repr(float(value))


def _names(expression: str) -> dict[str, str]:
    """The placeholders ``expression`` uses (DynamoDB refuses unused ones)."""
    return {k: NAMES[k] for k in re.findall(r"#\w+", expression)}
