"""Correlated cooldowns (:func:`scaler.plan.cooldown.correlated`): an instance type in trouble in
several AZs, or an AZ in trouble for several types, is cooled down whole."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from scaler.plan.capacity import (
    ON_DEMAND,
    SPOT,
    CapacityMemory,
    CapacityPolicy,
    CapacitySnapshot,
    NodeView,
    PoolView,
    ServiceView,
    plan_capacity,
)
from scaler.plan.cooldown import Storms, correlated

NOW = 10_000.0
KINDS = {
    f"{t}-{az}": (t, az) for t in ("m5.xlarge", "c5.xlarge", "r5.xlarge") for az in ("a", "b", "c")
}


def test_nothing_in_trouble_cools_nothing() -> None:
    assert correlated({}, KINDS, NOW, window=300, cooldown=900) == Storms()


def test_one_pool_alone_is_no_storm() -> None:
    assert correlated({"m5.xlarge-a": NOW - 10}, KINDS, NOW, 300, 900) == Storms()


def test_two_types_of_one_az_together_cool_the_az() -> None:
    got = correlated({"m5.xlarge-a": NOW - 10, "c5.xlarge-a": NOW - 200}, KINDS, NOW, 300, 900)
    assert got == Storms(azs=frozenset({"a"}))
    assert got.holds("r5.xlarge", "a") and not got.holds("r5.xlarge", "b")


def test_one_type_in_two_azs_together_cools_the_type() -> None:
    got = correlated({"c5.xlarge-a": NOW - 10, "c5.xlarge-c": NOW - 100}, KINDS, NOW, 300, 900)
    assert got == Storms(types=frozenset({"c5.xlarge"}))
    assert got.holds("c5.xlarge", "b") and not got.holds("m5.xlarge", "b")


def test_troubles_further_apart_than_the_window_are_not_together() -> None:
    troubles = {"m5.xlarge-a": NOW - 10, "c5.xlarge-a": NOW - 400}
    assert correlated(troubles, KINDS, NOW, 300, 900) == Storms()


def test_a_storm_cools_for_the_cooldown_after_its_last_trouble() -> None:
    troubles = {"m5.xlarge-a": NOW - 850, "c5.xlarge-a": NOW - 880}
    assert correlated(troubles, KINDS, NOW, 300, 900).azs == {"a"}
    assert correlated(troubles, KINDS, NOW + 60, 300, 900) == Storms()


def test_more_pools_may_be_required_together() -> None:
    troubles = {"m5.xlarge-a": NOW - 10, "c5.xlarge-a": NOW - 20}
    assert correlated(troubles, KINDS, NOW, 300, 900, together=3) == Storms()
    troubles["r5.xlarge-a"] = NOW - 30
    assert correlated(troubles, KINDS, NOW, 300, 900, together=3).azs == {"a"}


def test_pools_of_unknown_type_or_every_az_correlate_on_what_is_known() -> None:
    kinds = {"g1": ("", "*"), "g2": ("", "*"), "g3": ("m5.xlarge", "*"), "g4": ("m5.xlarge", "*")}
    troubles = {name: NOW - 10 for name in kinds}
    assert correlated(troubles, kinds, NOW, 300, 900) == Storms(types=frozenset({"m5.xlarge"}))


# -- the planner: replacements avoid the stormy AZ -------------------------------------------------


def pool(t: str, az: str, capacity: str = SPOT) -> PoolView:
    price = {"m5.xlarge": 0.07, "c5.xlarge": 0.06, "r5.xlarge": 0.09}[t]
    name = f"{'spot' if capacity == SPOT else 'od'}-{t}-{az}"
    return PoolView(
        name,
        capacity,
        az,
        4096,
        16384,
        price * (3 if capacity == ON_DEMAND else 1),
        0,
        instance_type=t,
    )


POOLS = [pool(t, az) for t in ("m5.xlarge", "c5.xlarge", "r5.xlarge") for az in ("a", "b")] + [
    pool("m5.xlarge", az, ON_DEMAND) for az in ("a", "b")
]


def stormy() -> CapacitySnapshot:
    """Two spot pools of AZ a (two types) under notice; AZ b calm."""
    by = {p.name: p for p in POOLS}
    doomed = [by["spot-m5.xlarge-a"], by["spot-c5.xlarge-a"]]
    nodes = [
        NodeView(f"d{i}", p.name, "a", SPOT, "ACTIVE", 4096, 16384, 0, 0, NOW + 100, 4)
        for i, p in enumerate(doomed)
    ]
    nodes.append(
        NodeView("b1", "spot-m5.xlarge-b", "b", SPOT, "ACTIVE", 4096, 16384, 0, 0, None, 4)
    )
    web = ServiceView("web", 12, 1024, 4096, {"d0": 4, "d1": 4, "b1": 4}, 0, 12)
    size = Counter(n.pool for n in nodes if not n.doomed)
    return CapacitySnapshot(
        NOW, tuple(nodes), tuple(replace(p, size=size[p.name]) for p in POOLS), (web,)
    )


def test_replacements_avoid_the_stormy_az() -> None:
    snap = stormy()
    memory = (
        CapacityMemory().noting("spot-m5.xlarge-a", NOW - 20).noting("spot-c5.xlarge-a", NOW - 5)
    )
    plan = plan_capacity(snap, memory, CapacityPolicy(headroom=0.0))
    pools = {p.name: p for p in snap.pools}
    got = plan.launches(pools)
    assert sum(got.values()) == 2
    assert all(pools[p].az == "b" and pools[p].capacity == SPOT for p in got), got
    assert not any(pools[o].az == "a" for others in plan.alternatives.values() for o in others)


def test_replacements_avoid_a_type_in_trouble_everywhere() -> None:
    pools = [pool("c5.xlarge", az) for az in ("a", "b", "c")] + [pool("m5.xlarge", "c")]
    web = ServiceView("web", 4, 1024, 4096, {}, 4)
    snap = CapacitySnapshot(NOW, (), tuple(pools), (web,))
    memory = CapacityMemory().noting("spot-c5.xlarge-a", NOW - 20)
    memory = memory.noting("spot-c5.xlarge-b", NOW - 5)
    plan = plan_capacity(snap, memory, CapacityPolicy(headroom=0.0))
    assert plan.launches({p.name: p for p in snap.pools}) == {"spot-m5.xlarge-c": 1}
