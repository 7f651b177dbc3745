"""Bounded concurrency for batches of read calls (kind to AWS's read buckets)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import TypeVar

T = TypeVar("T")
CONCURRENT_CALLS = 5


async def bounded(calls: Sequence[Awaitable[T]], limit: int = CONCURRENT_CALLS) -> list[T]:
    """Await ``calls`` with at most ``limit`` in flight; results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Awaitable[T]) -> T:
        async with gate:
            return await call

    return list(await asyncio.gather(*(one(c) for c in calls)))
