"""The leader lease in a DynamoDB table (see :mod:`scaler.lease` for the rules).

The table has one string partition key, ``name``; each cluster's lease is the item
``name = "<cluster>/leader"`` with ``holder``, ``expires_at`` and ``term``. Every write is
conditional, so two replicas cannot both succeed:

- take: ``UpdateItem`` setting holder and expiry and adding 1 to ``term``, on the condition
  that there is no lease, it has expired, or it is already ours;
- renew: ``UpdateItem`` setting the expiry, on the condition that it is ours;
- give up (at shutdown): ``UpdateItem`` setting the expiry to 0, on the condition that it is
  ours, so the next replica takes over at once.

The same table holds the notices replicas share with the leader, under other names
(:mod:`scaler.aws.shared_notices`).

A replica that cannot reach the table keeps trying every ``renew_every`` seconds and stops
acting when its last successful write is too old (:func:`scaler.lease.acts_until`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

from scaler.aws.clients import error_code
from scaler.clock import Clock
from scaler.lease import LeaseTerms, acts_until
from scaler.metrics import Metrics

log = logging.getLogger(__name__)
LOST = "ConditionalCheckFailedException"


class Leadership(Protocol):
    """Whether this replica may run the periodic work now."""

    def holds(self) -> bool: ...

    async def run_forever(self, stop: asyncio.Event) -> None: ...

    async def give_up(self) -> None: ...


class Always:
    """No lease table: this scaler is the only one, and always leads."""

    def holds(self) -> bool:
        return True

    async def run_forever(self, stop: asyncio.Event) -> None:
        await stop.wait()

    async def give_up(self) -> None:
        return None


class DynamoLease:
    def __init__(
        self,
        dynamodb: Any,
        table: str,
        cluster: str,
        me: str,
        terms: LeaseTerms,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self.table = table
        self.key = {"name": {"S": f"{cluster}/leader"}}
        self.me = me
        self._dynamodb = dynamodb
        self._terms = terms
        self._clock = clock
        self._metrics = metrics
        self._until = float("-inf")  # monotonic time until which we may act
        metrics.leader.set_function(lambda: float(self.holds()))  # true at every scrape
        self.term: int | None = None

    def holds(self) -> bool:
        return self._clock.monotonic() < self._until

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Take and renew the lease until ``stop``; the caller gives it up (:meth:`give_up`)
        once the work it guards has ended, not before."""
        while not stop.is_set():
            await self.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._terms.renew_every)

    async def tick(self) -> None:
        """Take or renew the lease, once."""
        started = self._clock.monotonic()
        held = self.holds()
        try:
            term = await (self._renew() if held else self._take())
        except Exception as exc:
            if error_code(exc) != LOST:
                log.warning("lease not written", extra={"table": self.table, "error": repr(exc)})
            elif held:
                self._lose("another replica holds the lease")
            return
        self._until = acts_until(started, self._terms)
        if not held:
            self.term = term
            self._metrics.lease_changes.labels("acquired").inc()
            log.info("leading", extra={"holder": self.me, "term": term, "table": self.table})
        if self._clock.monotonic() >= self._until:  # the write took too long to count
            self._lose("lease write slower than its margin")

    async def give_up(self) -> None:
        if not self.holds():
            return
        self._until = float("-inf")
        self._metrics.lease_changes.labels("released").inc()
        with contextlib.suppress(Exception):
            await self._dynamodb.update_item(
                TableName=self.table,
                Key=self.key,
                UpdateExpression="SET expires_at = :zero",
                ConditionExpression="holder = :me",
                ExpressionAttributeValues={":zero": {"N": "0"}, ":me": {"S": self.me}},
            )
        log.info("lease given up", extra={"holder": self.me, "table": self.table})

    def _lose(self, why: str) -> None:
        self._until = float("-inf")
        self._metrics.lease_changes.labels("lost").inc()
        log.warning("leadership lost", extra={"holder": self.me, "reason": why})

    def _expiry(self) -> tuple[float, str]:
        now = self._clock.now().timestamp()
        return now, f"{now + self._terms.duration:.3f}"

    async def _take(self) -> int:
        now, expires = self._expiry()
        reply = await self._dynamodb.update_item(
            TableName=self.table,
            Key=self.key,
            UpdateExpression="SET holder = :me, expires_at = :exp ADD term :one",
            ConditionExpression="attribute_not_exists(holder) OR expires_at < :now OR holder = :me",
            ExpressionAttributeValues={
                ":me": {"S": self.me},
                ":exp": {"N": expires},
                ":now": {"N": f"{now:.3f}"},
                ":one": {"N": "1"},
            },
            ReturnValues="ALL_NEW",
        )
        return int(reply["Attributes"]["term"]["N"])

    async def _renew(self) -> int:
        _, expires = self._expiry()
        await self._dynamodb.update_item(
            TableName=self.table,
            Key=self.key,
            UpdateExpression="SET expires_at = :exp",
            ConditionExpression="holder = :me",
            ExpressionAttributeValues={":me": {"S": self.me}, ":exp": {"N": expires}},
        )
        return self.term or 0
