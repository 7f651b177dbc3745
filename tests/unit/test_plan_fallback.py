"""Falling back to on-demand when spot is dry: several spot pools asked at once, and on-demand in
the plan right after they refused."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from scaler.plan.capacity import (
    ON_DEMAND,
    SPOT,
    CapacityMemory,
    CapacityPlan,
    CapacityPolicy,
    CapacitySnapshot,
    NodeView,
    PoolView,
    ServiceView,
    plan_capacity,
)

NOW = 10_000.0
PERIOD = 15.0  # seconds between plans
POLICY = CapacityPolicy(headroom=0.0)
AZS = ("a", "b", "c")
TYPES = ((2048, 8192, 0.03), (4096, 8192, 0.05), (4096, 16384, 0.06), (8192, 32768, 0.12))
# 19 spot pools, as a cluster with many types has them, and an on-demand pool per AZ
SPOT_POOLS = [
    PoolView(f"spot-{i}-{az}", SPOT, az, cpu, mem, round(price + 0.001 * i, 4), 0)
    for i, (cpu, mem, price) in enumerate(TYPES * 2)
    for az in AZS
][:19]
OD_POOLS = [PoolView(f"od-{az}", ON_DEMAND, az, 4096, 16384, 0.19, 0) for az in AZS]


def dry_snapshot(now: float, sizes: Counter[str]) -> CapacitySnapshot:
    """Twelve 1024/2048 tasks that ECS could not place, and whatever was launched so far."""
    pools = tuple(replace(p, size=sizes[p.name]) for p in (*SPOT_POOLS, *OD_POOLS))
    nodes = tuple(
        NodeView(
            f"{p.name}-{i}", p.name, p.az, p.capacity, "launching", p.cpu, p.memory, p.cpu, p.memory
        )
        for p in pools
        for i in range(p.size)
    )
    web = ServiceView("web", 12, 1024, 2048, {}, 12)
    return CapacitySnapshot(now, nodes, pools, (web,))


def asked(plan: CapacityPlan, pools: dict[str, PoolView]) -> dict[str, list[str]]:
    """Each pool the plan grows, with the pools that may launch its instances instead."""
    return {p: [p, *plan.alternatives.get(p, ())] for p in plan.launches(pools)}


def test_every_spot_pool_refusing_puts_on_demand_in_the_next_plan() -> None:
    memory = CapacityMemory()
    sizes: Counter[str] = Counter()
    refused_at: float | None = None
    for turn in range(10):
        now = NOW + turn * PERIOD
        snap = dry_snapshot(now, sizes)
        pools = {p.name: p for p in snap.pools}
        plan = plan_capacity(snap, memory, POLICY)
        for pool, candidates in asked(plan, pools).items():
            if pools[pool].capacity == ON_DEMAND:
                assert refused_at is not None and now - refused_at <= PERIOD, (
                    f"first on-demand launch {now - (refused_at or now):.0f}s after spot refused"
                )
                return
            for candidate in candidates:  # the spot market is dry: every spot pool refuses
                memory = memory.failing(candidate, now, spot=True)
            refused_at = refused_at if refused_at is not None else now
    raise AssertionError("no on-demand launch in 10 plans")


def test_alternatives_are_spot_pools_that_hold_the_task() -> None:
    snap = dry_snapshot(NOW, Counter())
    plan = plan_capacity(snap, CapacityMemory(), POLICY)
    pools = {p.name: p for p in snap.pools}
    assert plan.alternatives, "several spot pools are named for the need"
    for pool, others in plan.alternatives.items():
        assert pool in plan.launches(pools)
        assert pool not in others
        for other in others:
            assert pools[other].capacity == SPOT
            assert pools[other].cpu >= 1024 and pools[other].memory >= 2048


def test_cooling_pools_are_no_alternatives() -> None:
    snap = dry_snapshot(NOW, Counter())
    memory = CapacityMemory({"spot-1-a": NOW - 10, "spot-2-b": NOW - 10})
    plan = plan_capacity(snap, memory, POLICY)
    named = {o for others in plan.alternatives.values() for o in others}
    assert named and not named & {"spot-1-a", "spot-2-b"}
