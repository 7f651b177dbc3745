"""What /healthz and /readyz report, on a manual clock: never awaited AWS, always with an age."""

from __future__ import annotations

import asyncio

from scaler.clock import ManualClock
from scaler.http import READY_STALE, Health


def test_alive_while_starting_then_follows_the_intake() -> None:
    clock = ManualClock()
    health = Health(clock, stuck_after=120)
    clock.advance(1000)
    assert health.alive() is None  # start-up has its own deadline
    health.last_tick = lambda: 900.0
    assert health.alive() is None
    clock.advance(30)
    assert health.alive() == "intake loop has not ticked for 130s"


def test_readiness_is_the_last_result_with_its_age() -> None:
    clock = ManualClock()
    health = Health(clock, stuck_after=120)
    assert health.readiness() == ("starting: not checked yet", None)
    health.record("starting: AWS_ENDPOINT_URL: cannot reach http://127.0.0.1:1")
    clock.advance(2.5)
    assert health.readiness() == (
        "starting: AWS_ENDPOINT_URL: cannot reach http://127.0.0.1:1",
        2.5,
    )
    health.record(None)
    clock.advance(1)
    assert health.readiness() == (None, 1)


def test_a_result_too_old_to_trust_is_not_ready() -> None:
    clock = ManualClock()
    health = Health(clock, stuck_after=120)
    health.record(None)
    clock.advance(READY_STALE + 5)
    assert health.readiness() == (
        f"readiness not checked for {READY_STALE + 5:.0f}s",
        READY_STALE + 5,
    )


async def test_a_check_that_hangs_is_cut_off_and_reported() -> None:
    clock = ManualClock()
    health = Health(clock, stuck_after=120)
    stop = asyncio.Event()

    async def hangs() -> str | None:
        await asyncio.Event().wait()
        return None

    watching = asyncio.create_task(health.watch(hangs, lambda _: None, stop, limit=0.01))
    while health.readiness()[1] is None:  # noqa: ASYNC110 (waiting for the watcher)
        await asyncio.sleep(0.01)
    stop.set()
    await watching
    assert health.readiness() == ("the readiness check got no answer from AWS within 0.01s", 0)


async def test_a_failed_check_says_why_in_the_callers_words() -> None:
    health = Health(ManualClock(), stuck_after=120)
    stop = asyncio.Event()

    async def fails() -> str | None:
        stop.set()
        raise ConnectionError("refused")

    await health.watch(fails, lambda exc: f"explained: {exc}", stop)
    assert health.readiness()[0] == "explained: refused"
