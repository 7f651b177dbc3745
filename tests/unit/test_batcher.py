"""The batcher: windows, size limits, coalescing, per-item failures."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from scaler.aws.batcher import Batcher


class Recorder:
    def __init__(self, fail: set[int] | None = None, boom: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.fail = fail or set()
        self.boom = boom

    async def __call__(self, items: Sequence[int]) -> dict[int, int | BaseException]:
        self.batches.append(list(items))
        if self.boom:
            raise ConnectionError("down")
        return {i: (ValueError(i) if i in self.fail else i * 10) for i in items}


async def test_items_in_one_window_share_a_call() -> None:
    rec = Recorder()
    batcher: Batcher[int, int] = Batcher(rec, max_size=10, window=0.05)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(7)))
    assert results == [i * 10 for i in range(7)]
    assert rec.batches == [list(range(7))]


async def test_a_full_batch_goes_at_once_and_the_rest_follows() -> None:
    rec = Recorder()
    batcher: Batcher[int, int] = Batcher(rec, max_size=10, window=60)
    pending = [asyncio.create_task(batcher.submit(i)) for i in range(23)]
    await asyncio.sleep(0.01)
    assert [len(b) for b in rec.batches] == [10, 10]
    await batcher.close()
    assert await asyncio.gather(*pending) == [i * 10 for i in range(23)]
    assert [len(b) for b in rec.batches] == [10, 10, 3]


async def test_equal_items_are_coalesced() -> None:
    rec = Recorder()
    batcher: Batcher[int, int] = Batcher(rec, max_size=10, window=0.02)
    assert list(await asyncio.gather(batcher.submit(4), batcher.submit(4))) == [40, 40]
    assert rec.batches == [[4]]


async def test_failures_are_per_item() -> None:
    rec = Recorder(fail={2})
    batcher: Batcher[int, int] = Batcher(rec, max_size=10, window=0.01)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(4)), return_exceptions=True)
    assert results[:2] == [0, 10] and results[3] == 30
    assert isinstance(results[2], ValueError)


async def test_a_failed_call_fails_every_item_in_it() -> None:
    batcher: Batcher[int, int] = Batcher(Recorder(boom=True), max_size=10, window=0.01)
    with pytest.raises(ConnectionError):
        await batcher.submit(1)
