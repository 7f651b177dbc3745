"""Background attempts wait while urgent calls are pending, never longer than the patience."""

from __future__ import annotations

import asyncio

from scaler.aws.concurrency import PriorityGate


async def test_background_waits_until_the_last_urgent_call_is_over() -> None:
    gate = PriorityGate()
    order: list[str] = []

    async def background() -> None:
        await gate.background()
        order.append("read")

    async with gate.urgent():
        reader = asyncio.create_task(background())
        async with gate.urgent():
            await asyncio.sleep(0)
            order.append("drain")
        await asyncio.sleep(0)
        order.append("complete")
        assert not reader.done()
    await reader
    assert order == ["drain", "complete", "read"]
    assert gate.held == 1 and gate.urgent_calls == 0


async def test_background_goes_at_once_when_nothing_urgent_is_pending() -> None:
    gate = PriorityGate()
    await gate.background()
    assert gate.held == 0


async def test_an_urgent_call_that_fails_still_lets_background_go() -> None:
    gate = PriorityGate()
    try:
        async with gate.urgent():
            raise RuntimeError("throttled")
    except RuntimeError:
        pass
    assert gate.urgent_calls == 0
    await gate.background()
    assert gate.held == 0


async def test_background_waits_no_longer_than_its_patience() -> None:
    gate = PriorityGate(patience=0.01)
    async with gate.urgent():
        await gate.background()  # returns although the urgent call is still pending
        assert gate.urgent_calls == 1
    assert gate.held == 1
