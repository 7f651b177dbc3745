"""``bounded`` awaits calls a few at a time; cancelled, it leaves no call un-awaited."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import warnings

from scaler.aws.concurrency import bounded


async def _slow(results: list[int], n: int) -> int:
    await asyncio.sleep(10)
    results.append(n)
    return n


def test_results_come_in_order() -> None:
    async def main() -> list[int]:
        return await bounded([asyncio.sleep(0.01 * (3 - n), result=n) for n in range(3)], limit=2)

    assert asyncio.run(main()) == [0, 1, 2]


def test_cancelled_while_calls_wait_their_turn_closes_them() -> None:
    done: list[int] = []

    async def main() -> None:
        task = asyncio.ensure_future(bounded([_slow(done, n) for n in range(4)], limit=1))
        await asyncio.sleep(0.01)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(main())
        gc.collect()
    assert not done
    assert not [w for w in caught if "never awaited" in str(w.message)]
