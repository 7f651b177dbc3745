"""Bounded concurrency for batches of read calls, and urgent calls ahead of background ones.

:func:`bounded` keeps a batch of reads kind to AWS's read buckets.

:class:`PriorityGate` puts the calls that cost an interruption notice when late (drains,
deregistrations, lifecycle heartbeats and completions) ahead of background ECS calls (ListTasks,
DescribeTasks, DescribeContainerInstances... of the guard, the capacity and rebalance loops, the
lifecycle follower's polls). Urgent work holds the gate from the moment it is asked for (a drain
waiting for its batch counts) until its last retry is over; meanwhile every background attempt
waits before it is sent (:class:`scaler.aws.clients.AwsClients` makes the background ECS client
wait at botocore's ``before-send``, so botocore's own retries wait too). A background attempt
waits at most ``patience`` seconds, so a stream of urgent calls slows the background loops
without stopping them (the lifecycle follower's polls decide when an action is completed).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import TypeVar

T = TypeVar("T")
CONCURRENT_CALLS = 5
PATIENCE = 10.0  # seconds a background attempt waits at most for urgent calls


async def bounded(calls: Sequence[Awaitable[T]], limit: int = CONCURRENT_CALLS) -> list[T]:
    """Await ``calls`` with at most ``limit`` in flight; results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Awaitable[T]) -> T:
        try:
            async with gate:
                return await call
        except asyncio.CancelledError:
            if inspect.iscoroutine(call):
                call.close()  # cancelled before its turn: never started, and never will be
            raise

    return list(await asyncio.gather(*(one(c) for c in calls)))


class PriorityGate:
    """Background attempts wait while any urgent call is asked for or in flight."""

    def __init__(self, patience: float = PATIENCE) -> None:
        self._patience = patience
        self._urgent = 0
        self._clear = asyncio.Event()
        self._clear.set()
        self.held = 0  # background attempts that had to wait

    @property
    def urgent_calls(self) -> int:
        return self._urgent

    @contextlib.asynccontextmanager
    async def urgent(self) -> AsyncIterator[None]:
        """Hold background attempts back for the duration (entered without yielding)."""
        self._urgent += 1
        self._clear.clear()
        try:
            yield
        finally:
            self._urgent -= 1
            if self._urgent == 0:
                self._clear.set()

    async def background(self, **_: object) -> None:
        """Wait until no urgent call is pending (at most ``patience`` seconds)."""
        if self._urgent == 0:
            return
        self.held += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._clear.wait(), self._patience)
