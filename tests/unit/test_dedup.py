"""The deduplicator: once per id, copies wait for the first, failures let a copy retry."""

from __future__ import annotations

import asyncio

from scaler.clock import ManualClock
from scaler.dedup import Deduplicator


async def test_first_claims_later_copies_are_duplicates() -> None:
    dedup = Deduplicator(ManualClock(), ttl=60)
    assert await dedup.claim("a")
    dedup.finish("a", succeeded=True)
    assert not await dedup.claim("a")


async def test_a_copy_waits_for_the_first_and_follows_its_outcome() -> None:
    dedup = Deduplicator(ManualClock(), ttl=60)
    assert await dedup.claim("a")
    copy = asyncio.create_task(dedup.claim("a"))
    await asyncio.sleep(0)
    assert not copy.done()
    dedup.finish("a", succeeded=False)
    assert await copy  # the first failed: the copy does the work


async def test_ids_expire_after_the_ttl_and_memory_is_pruned() -> None:
    clock = ManualClock()
    dedup = Deduplicator(clock, ttl=10)
    for i in range(100):
        assert await dedup.claim(str(i))
        dedup.finish(str(i), succeeded=True)
    clock.advance(11)
    assert await dedup.claim("0")
    dedup.finish("0", succeeded=True)
    assert len(dedup) == 1
