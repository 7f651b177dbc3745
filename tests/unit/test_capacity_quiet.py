"""Quiet cycles (:mod:`scaler.capacity.quiet`): after a cycle that left the cluster settled, the
next cycles read nothing but the probe until anything they read, or time alone, could change
the plan. The controller runs on a manual clock against in-process ports."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from scaler.capacity.controller import CapacityController
from scaler.capacity.observed import Observed
from scaler.capacity.quiet import QUIET_CYCLES, ripens, unsettled
from scaler.clock import ManualClock
from scaler.metrics import Metrics
from scaler.notices import NoticeBoard
from scaler.plan.capacity import (
    CapacityMemory,
    CapacityPlan,
    CapacityPolicy,
    CapacitySnapshot,
    NodeView,
    PoolView,
    ServiceView,
)
from tests.unit.test_capacity_controller import Actuator, Reader

POOL = PoolView("spot-asg", "spot", "*", 2048, 4096, 0.1, 2, max_size=5)
START = datetime(2031, 5, 1, tzinfo=UTC)
INTERVAL = 30.0


def _node(iid: str, status: str = "ACTIVE", ends: float | None = None) -> NodeView:
    return NodeView(iid, POOL.name, "a", "spot", status, 2048, 4096, 1024, 2048, ends, 2)


class SettledReader(Reader):
    """Two busy instances, one service with every task placed, a group at its size."""

    def __init__(self) -> None:
        super().__init__()
        self.probes = 0
        self.same = True  # what the probe answers
        self.nodes: tuple[NodeView, ...] = (_node("i-1"), _node("i-2"))
        self.unplaced = 0

    async def read(self, now: float) -> Observed:
        self.read_at.append(now)
        svc = ServiceView("web", 4, 512, 1024, {"i-1": 2, "i-2": 2}, unplaced=self.unplaced)
        snap = CapacitySnapshot(now, self.nodes, (POOL,), (svc,))
        sizes = {POOL.name: 2}
        return Observed(
            snap, max_size={POOL.name: 5}, min_size={POOL.name: 0}, desired=sizes,
            live=dict(sizes), facts={},
        )  # fmt: skip

    async def unchanged(self, now: float) -> bool:
        self.probes += 1
        return self.same


def _controller(
    consolidator: object = None,
) -> tuple[CapacityController, SettledReader, Actuator, ManualClock, Metrics]:
    clock, reader, actuator, metrics = ManualClock(START), SettledReader(), Actuator(), Metrics()
    controller = CapacityController(
        reader, actuator, NoticeBoard(), CapacityPolicy(), metrics, INTERVAL, clock=clock
    )
    return controller, reader, actuator, clock, metrics


def _cycles(metrics: Metrics, read: str) -> float:
    return float(metrics.capacity_cycles.labels(read)._value.get())


async def test_after_a_settled_cycle_the_next_ones_are_quiet_until_the_longest_wait() -> None:
    controller, reader, _, clock, metrics = _controller()
    await controller.cycle()
    assert controller.quiet is not None
    assert controller.quiet.until == START.timestamp() + QUIET_CYCLES * INTERVAL
    for _ in range(QUIET_CYCLES - 1):
        clock.advance(INTERVAL)
        assert await controller.quiet_cycle()
    clock.advance(INTERVAL)
    assert not await controller.quiet_cycle(), "the longest wait is over: a full cycle"
    assert len(reader.read_at) == 1 and reader.probes == QUIET_CYCLES - 1
    assert _cycles(metrics, "quiet") == QUIET_CYCLES - 1 and _cycles(metrics, "full") == 1
    assert controller.cycles == QUIET_CYCLES and controller.ready_at == controller.cycles


async def test_news_of_any_kind_ends_the_quiet() -> None:
    controller, reader, actuator, clock, _ = _controller()
    news = [0]
    controller.news = lambda: news[0]
    cases: dict[str, Callable[[], object]] = {
        "an event for the cluster": lambda: news.__setitem__(0, news[0] + 1),
        "a notice on the board": lambda: controller._board.warned("i-1", clock.now().timestamp()),
        "a change the scaler made": lambda: setattr(actuator, "acted", actuator.acted + 1),
        "the probe saw a change": lambda: setattr(reader, "same", False),
    }
    for name, happen in cases.items():
        controller._board = NoticeBoard()
        reader.same = True
        await controller.cycle()
        clock.advance(INTERVAL)
        assert await controller.quiet_cycle(), name
        happen()
        clock.advance(INTERVAL)
        assert not await controller.quiet_cycle(), name


@pytest.mark.parametrize("what", ["launching", "draining", "notice", "unplaced", "owing"])
async def test_a_cluster_in_motion_is_never_quiet(what: str) -> None:
    controller, reader, actuator, clock, _ = _controller()
    now = START.timestamp()
    if what == "launching":
        reader.nodes = (*reader.nodes, _node("i-3", "launching"))
    elif what == "draining":
        reader.nodes = (_node("i-1", "DRAINING"), reader.nodes[1])
    elif what == "notice":
        reader.nodes = (_node("i-1", ends=now + 120.0), reader.nodes[1])
    elif what == "unplaced":
        reader.unplaced = 1
    else:
        actuator.asked[POOL.name] = (3, now)
    await controller.cycle()
    clock.advance(INTERVAL)
    assert controller.quiet is None and not await controller.quiet_cycle()


async def test_a_woken_or_leaderless_controller_runs_full_cycles() -> None:
    import asyncio

    controller, reader, _, _, _ = _controller()
    await controller.cycle()
    assert controller.quiet is not None
    controller.wake.set()
    stop = asyncio.Event()

    async def one_turn() -> None:
        await asyncio.sleep(0)
        stop.set()

    await asyncio.gather(controller.run_forever(stop), one_turn())
    assert len(reader.read_at) == 2, "woken: a full cycle, not a quiet one"


def test_time_alone_ripens_troubles_idle_instances_and_other_turns() -> None:
    policy = CapacityPolicy(pool_cooldown=900.0, revert_after=1800.0, storm_window=300.0)
    memory = CapacityMemory(interrupted={"spot-a": 1000.0}, failed={"spot-b": 1500.0})
    assert ripens(1100.0, memory, policy, {}, None) == 1300.0  # the storm window of spot-a
    assert ripens(1850.0, memory, policy, {}, None) == 1900.0  # spot-a's cooldown
    assert ripens(4000.0, memory, policy, {}, None) == math.inf
    assert ripens(4000.0, memory, policy, {"i-9": 3900.0}, 600.0) == 4500.0
    assert ripens(4000.0, memory, policy, {"i-9": 3900.0}, None, [4100.0]) == 4100.0


def test_every_reason_not_to_be_quiet_is_named() -> None:
    snap = CapacitySnapshot(0.0, (_node("i-1"),), (POOL,), ())
    settled = Observed(snap, desired={POOL.name: 1}, live={POOL.name: 1}, facts={})
    plan = CapacityPlan()
    assert unsettled(settled, plan, False, {}, False) is None
    grow = CapacityPlan(pool_targets={POOL.name: POOL.size + 1})
    assert unsettled(settled, grow, False, {}, False) == "the plan acts"
    assert unsettled(settled, plan, True, {}, False) == "the cycle changed something"
    assert unsettled(settled, plan, False, {}, True) == "a roll or a migration may act"
    assert unsettled(replace(settled, facts=None), plan, False, {}, False) is not None
    assert unsettled(replace(settled, stale=(_node("i-2"),)), plan, False, {}, False) is not None
    resizing = replace(settled, desired={POOL.name: 2})
    assert unsettled(resizing, plan, False, {}, False) == "groups resize"
    assert unsettled(settled, plan, False, {POOL.name: 0.0}, False) == "groups owe instances"


async def test_a_failed_probe_calls_for_a_full_cycle() -> None:
    controller, reader, _, clock, _ = _controller()
    await controller.cycle()

    async def throttled(now: float) -> bool:
        raise RuntimeError("Rate exceeded")

    reader.unchanged = throttled  # type: ignore[method-assign]
    clock.advance(INTERVAL)
    assert not await controller.quiet_cycle()


async def test_consolidations_next_plan_ends_the_quiet() -> None:
    class Standing:
        def __init__(self) -> None:
            self.drained_at: list[float] = []

        def due(self, now: float) -> bool:
            return False

        def stands_until(self, now: float) -> float:
            return now + 2 * INTERVAL

    controller, *_ = _controller()
    controller.consolidator = Standing()  # type: ignore[assignment]
    await controller.cycle()
    assert controller.quiet is not None
    assert controller.quiet.until == START.timestamp() + 2 * INTERVAL


async def test_news_that_comes_during_the_cycle_ends_the_quiet_after_it() -> None:
    controller, reader, _, clock, _ = _controller()
    news = [0]
    controller.news = lambda: news[0]
    read = reader.read

    async def read_then_hear(now: float) -> Observed:
        observed = await read(now)
        news[0] += 1  # an event taken while the cycle acts on what it read
        return observed

    reader.read = read_then_hear  # type: ignore[method-assign]
    await controller.cycle()
    clock.advance(INTERVAL)
    assert not await controller.quiet_cycle(), "the read did not see that news"


def test_a_consolidation_stand_counts_only_in_the_cycle_that_made_or_found_it() -> None:
    from typing import Any, cast

    from scaler.aws.consolidation import Consolidator
    from tests.integration.helpers import settings_for

    plans = Consolidator(cast(Any, None), settings_for("http://q"), CapacityPolicy(), every=120.0)
    plans._last = 1000.0
    assert plans.stands_until(1000.0) == 1120.0, "no stand: the next due time"
    plans._stands, plans._stood_at = (cast(Any, "inputs"), 5000.0), 1000.0
    assert plans.stands_until(1000.0) == 5000.0
    assert plans.stands_until(1030.0) == 1120.0, "not looked at since: its inputs may differ"
    plans.drained_at = [900.0]
    assert plans.stands_until(1000.0) == 4500.0, "a drain leaves the hour's budget then"
