"""Notices and replacement requests shared between replicas, in the lease table.

Every replica consumes the queue, but only the leader runs the capacity controller; what a
follower hears must reach it (:mod:`scaler.notices`). With ``SCALER_LEASE_TABLE`` set, each
replica writes what it hears as one item per cluster, instance and kind, beside the lease:

- ``name = "<cluster>/notice/<instance id>/<kind>"``, ``instance``, ``kind`` (``warning``,
  ``recommendation``, ``final`` or ``replacement``), ``at`` and ``end`` (epoch seconds),
  ``expires`` (epoch seconds: the table's TTL attribute; readers ignore expired items whether or
  not DynamoDB has deleted them yet) and, on a replacement request the leader has satisfied,
  ``ready``;
- the write is a ``PutItem`` on the condition that there is no such item or it is older, so two
  replicas writing the same notice agree on the newest (an equal or newer one is kept as it is).

The leader reads the cluster's unexpired items once per capacity cycle (one paginated ``Scan``
filtered on the cluster's prefix and the expiry: the table's only key is ``name``, so no
``Query`` can return more than one item) and merges them into its board
(:meth:`~scaler.notices.NoticeBoard.merge`). For each replacement request not yet ready, it waits
for a capacity cycle begun after it read the request to find nothing missing or coming, and then
sets ``ready`` (``UpdateItem`` on the condition that the request is still the same one). The
follower that asked polls its request (``GetItem``) until it is ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import TYPE_CHECKING, Any

from scaler.aws.clients import error_code
from scaler.clock import Clock
from scaler.notices import REPLACEMENT, NoticeBoard, SharedNotice

if TYPE_CHECKING:
    from scaler.capacity.controller import CapacityController

log = logging.getLogger(__name__)
LOST = "ConditionalCheckFailedException"
NAMES = {
    "#n": "name",
    "#i": "instance",
    "#k": "kind",
    "#at": "at",
    "#end": "end",
    "#exp": "expires",
    "#ready": "ready",
}


class SharedNotices:
    def __init__(self, dynamodb: Any, table: str, cluster: str, clock: Clock) -> None:
        self._dynamodb = dynamodb
        self._clock = clock
        self.table = table
        self.prefix = f"{cluster}/notice/"
        self._waiting: dict[tuple[str, float], asyncio.Task[None]] = {}

    def _key(self, instance_id: str, kind: str) -> dict[str, Any]:
        return {"name": {"S": f"{self.prefix}{instance_id}/{kind}"}}

    async def publish(self, notice: SharedNotice) -> None:
        """Write ``notice`` unless the table holds one as new or newer; failures are logged
        (the replica that heard it has acted on it: draining does not wait for the table)."""
        item = {
            **self._key(notice.instance_id, notice.kind),
            "instance": {"S": notice.instance_id},
            "kind": {"S": notice.kind},
            "at": {"N": _n(notice.at)},
            "expires": {"N": str(math.ceil(notice.expires))},  # TTL: whole seconds
        }
        if notice.end is not None:
            item["end"] = {"N": _n(notice.end)}
        try:
            await self._dynamodb.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression="attribute_not_exists(#n) OR #at < :at",
                ExpressionAttributeNames={"#n": "name", "#at": "at"},
                ExpressionAttributeValues={":at": item["at"]},
            )
        except Exception as exc:
            if error_code(exc) != LOST:
                log.warning(
                    "notice not shared with the other replicas",
                    extra={
                        "instance_id": notice.instance_id,
                        "kind": notice.kind,
                        "error": repr(exc),
                    },
                )

    async def read(self, now: float) -> list[SharedNotice]:
        """The cluster's unexpired notices (one paginated Scan)."""
        paginator = self._dynamodb.get_paginator("scan")
        found: list[SharedNotice] = []
        async for page in paginator.paginate(
            TableName=self.table,
            ConsistentRead=True,
            FilterExpression="begins_with(#n, :prefix) AND #exp > :now",
            ProjectionExpression="#i, #k, #at, #end, #exp, #ready",
            ExpressionAttributeNames=NAMES,
            ExpressionAttributeValues={":prefix": {"S": self.prefix}, ":now": {"N": _n(now)}},
        ):
            found += [n for n in map(_notice, page.get("Items", [])) if n is not None]
        return found

    async def pull(self, board: NoticeBoard, now: float, controller: CapacityController) -> None:
        """Merge the shared notices into the leader's ``board``; answer replacement requests
        once ``controller`` has the capacity. Failures are logged: the cycle goes on."""
        try:
            notices = await self.read(now)
        except Exception as exc:
            log.warning("shared notices not read", extra={"table": self.table, "error": repr(exc)})
            return
        board.merge(notices, now)
        asked = {
            (n.instance_id, n.at): n for n in notices if n.kind == REPLACEMENT and n.ready is None
        }
        for key in [k for k, task in self._waiting.items() if task.done() and k not in asked]:
            del self._waiting[key]
        for key, request in asked.items():
            if key not in self._waiting:
                answer = self._answer(request, controller, controller.cycles)
                self._waiting[key] = asyncio.create_task(answer)

    async def _answer(
        self, request: SharedNotice, controller: CapacityController, asked_after: int
    ) -> None:
        """Mark ``request`` ready once a cycle that knew of it (this one, or a later one) finds
        nothing missing or coming, as :class:`~scaler.replacement.CapacityReplacement` does."""
        await controller.ready_after(asked_after)
        now = self._clock.now().timestamp()
        try:
            await self._dynamodb.update_item(
                TableName=self.table,
                Key=self._key(request.instance_id, request.kind),
                UpdateExpression="SET #ready = :now",
                ConditionExpression="#at = :at",
                ExpressionAttributeNames={"#ready": "ready", "#at": "at"},
                ExpressionAttributeValues={":now": {"N": _n(now)}, ":at": {"N": _n(request.at)}},
            )
            log.info("replacement ready", extra={"instance_id": request.instance_id})
        except Exception as exc:
            if error_code(exc) != LOST:
                self._waiting.pop((request.instance_id, request.at), None)  # tried again next read
                log.warning("replacement not answered", extra={"error": repr(exc)})

    async def ready(self, request: SharedNotice, poll: float) -> bool:
        """Wait for the leader to answer ``request`` (or a newer request for the instance)."""
        key = self._key(request.instance_id, request.kind)
        while True:
            try:
                reply = await self._dynamodb.get_item(
                    TableName=self.table, Key=key, ConsistentRead=True
                )
                found = _notice(reply.get("Item", {}))
                if found is not None and found.ready is not None and found.at >= request.at:
                    return True
            except Exception as exc:
                log.warning("replacement request not read", extra={"error": repr(exc)})
            await asyncio.sleep(poll)

    async def close(self) -> None:
        for task in self._waiting.values():
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._waiting.values(), return_exceptions=True)
        self._waiting.clear()


def _n(value: float) -> str:
    """A DynamoDB number that reads back as the same float (a request is known by its ``at``)."""
    return repr(float(value))


def _notice(item: dict[str, Any]) -> SharedNotice | None:
    try:
        return SharedNotice(
            item["instance"]["S"],
            item["kind"]["S"],
            float(item["at"]["N"]),
            float(item["end"]["N"]) if "end" in item else None,
            float(item["expires"]["N"]),
            float(item["ready"]["N"]) if "ready" in item else None,
        )
    except (KeyError, ValueError):
        return None
