"""Scale-in the capacity planner agrees with: no removal it would launch back; idle instances."""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from scaler.plan.capacity import (
    ON_DEMAND,
    SPOT,
    CapacityMemory,
    CapacityPolicy,
    CapacitySnapshot,
    NodeView,
    PoolView,
    ServiceView,
)
from scaler.plan.consolidate import ConsolidationPolicy, paused
from scaler.plan.scale_in import (
    calm,
    capacity_agrees,
    idle_for,
    idle_since,
    launches_after,
    next_turn,
    without,
)

NOW = 50_000.0


def snapshot(used: list[int], on_demand: int = 0) -> CapacitySnapshot:
    """Instances of 4096 CPU / 8192 MiB, ``used[i]`` CPU units reserved on the i-th (one
    service's tasks of 512 units), the first ``on_demand`` of them on-demand."""
    nodes = []
    for i, cpu in enumerate(used):
        pool, capacity = ("od", ON_DEMAND) if i < on_demand else ("spot", SPOT)
        free = 4096 - cpu
        nodes.append(
            NodeView(
                f"i-{i}",
                pool,
                "a",
                capacity,
                "ACTIVE",
                4096,
                8192,
                free,
                8192 - cpu,
                None,
                cpu // 512,
            )
        )
    pools = (
        PoolView("spot", SPOT, "*", 4096, 8192, 0.06, len(used) - on_demand),
        PoolView("od", ON_DEMAND, "*", 4096, 8192, 0.19, on_demand),
    )
    tasks_on = {f"i-{i}": cpu // 512 for i, cpu in enumerate(used) if cpu}
    service = ServiceView(
        "web", sum(tasks_on.values()), 512, 512, tasks_on, healthy=sum(tasks_on.values())
    )
    return CapacitySnapshot(NOW, tuple(nodes), pools, (service,))


def test_removals_are_seen_as_drains_of_one_less_instance() -> None:
    after = without(snapshot([1024, 1024, 0]), frozenset({"i-1"}))
    assert [n.status for n in after.nodes] == ["ACTIVE", "DRAINING", "ACTIVE"]
    assert {p.name: p.size for p in after.pools} == {"spot": 2, "od": 0}


def test_removals_that_leave_room_and_headroom_stand() -> None:
    agrees = capacity_agrees(snapshot([1024, 1024, 1024, 0]), CapacityMemory(), CapacityPolicy())
    assert agrees(frozenset({"i-3"})) and agrees(frozenset({"i-2", "i-3"}))


def test_removals_the_headroom_would_launch_back_are_refused() -> None:
    snap = snapshot([3584, 3584, 512])
    policy = CapacityPolicy(headroom=0.2)
    assert launches_after(snap, CapacityMemory(), policy, frozenset({"i-2"})) == {"spot": 1}
    assert not capacity_agrees(snap, CapacityMemory(), policy)(frozenset({"i-2"}))


def test_the_on_demand_base_is_kept() -> None:
    snap = snapshot([512, 0, 0, 0], on_demand=1)
    policy = CapacityPolicy(on_demand_base=1)
    agrees = capacity_agrees(snap, CapacityMemory(), policy)
    assert not agrees(frozenset({"i-0"}))  # the base would be launched again
    assert agrees(frozenset({"i-1"}))


@settings(max_examples=300)
@given(
    st.lists(st.sampled_from([0, 512, 1024, 2048, 3584, 4096]), min_size=2, max_size=8),
    st.integers(0, 2),
    st.sampled_from([0.0, 0.05, 0.2]),
    st.integers(0, 2),
    st.data(),
)
def test_fewer_removals_never_turn_agreement_into_a_launch(
    used: list[int], on_demand: int, headroom: float, base: int, data: st.DataObject
) -> None:
    """Consolidation gives up its last removals until the plan holds: that is only safe if any
    subset of an agreed set is agreed too."""
    on_demand = min(on_demand, len(used))
    snap = snapshot(used, on_demand)
    policy = CapacityPolicy(headroom=headroom, on_demand_base=min(base, on_demand))
    agrees = capacity_agrees(snap, CapacityMemory(), policy)
    # consolidation only plans on a settled cluster: one the capacity planner adds nothing to
    assume(agrees(frozenset()))
    ids = [n.id for n in snap.nodes]
    gone = frozenset(data.draw(st.lists(st.sampled_from(ids), unique=True)))
    fewer = (
        frozenset(data.draw(st.lists(st.sampled_from(sorted(gone)), unique=True))) if gone else gone
    )
    if agrees(gone):
        assert agrees(fewer)


def _as_time_sees_it(
    snap: CapacitySnapshot,
    memory: CapacityMemory,
    capacity: CapacityPolicy,
    policy: ConsolidationPolicy,
    started: float,
) -> tuple[object, ...]:
    """What of a consolidation plan depends on the time: its quiet periods, and what the
    capacity planner would launch after each single removal (and none)."""
    ids = [frozenset[str](), *(frozenset({n.id}) for n in snap.nodes)]
    launches = tuple(sorted(launches_after(snap, memory, capacity, gone).items()) for gone in ids)
    return (paused(snap.now, policy, memory.last_spot_trouble(), started), launches)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from([0, 512, 2048, 3584, 4096]), min_size=2, max_size=6),
    st.lists(st.tuples(st.sampled_from(["spot", "od"]), st.floats(NOW - 2000, NOW)), max_size=3),
    st.one_of(st.none(), st.floats(NOW, NOW + 120)),
    st.floats(NOW - 4000, NOW),
    st.sampled_from([300.0, 900.0]),
    st.floats(0.0, 1.0),
)
def test_a_plan_comes_out_the_same_until_the_next_turn(
    used: list[int],
    troubles: list[tuple[str, float]],
    notice: float | None,
    started: float,
    cooldown: float,
    where: float,
) -> None:
    """Between now and :func:`next_turn` time alone changes nothing a consolidation plan
    depends on: a plan that chose nothing may stand that long."""
    snap = snapshot(used, on_demand=1)
    if notice is not None:
        snap = replace(snap, nodes=(replace(snap.nodes[-1], notice_ends=notice), *snap.nodes[:-1]))
    memory = CapacityMemory()
    for pool, at in troubles:
        memory = memory.noting(pool, at) if pool == "spot" else memory.failing(pool, at, False)
    capacity = CapacityPolicy(headroom=0.1, pool_cooldown=cooldown, revert_after=2 * cooldown)
    policy = ConsolidationPolicy(quiet_after=3000.0, after_start=1800.0)
    turn = next_turn(snap, memory, capacity, policy, started)
    assert turn > NOW
    end = math.nextafter(min(turn, NOW + 20_000), -math.inf)  # just before the turn
    now_seen = _as_time_sees_it(snap, memory, capacity, policy, started)
    for then in (NOW + where * (end - NOW), end):
        later = replace(snap, now=then)
        assert _as_time_sees_it(later, memory, capacity, policy, started) == now_seen


def test_the_next_turn_is_the_first_duration_to_run_out() -> None:
    snap = snapshot([1024, 0])
    capacity, policy = CapacityPolicy(pool_cooldown=900.0), ConsolidationPolicy()
    assert next_turn(snap, CapacityMemory(), capacity, policy) == math.inf
    troubled = CapacityMemory().noting("spot", NOW - 100)
    assert next_turn(snap, troubled, capacity, policy) == NOW + 800  # the pool's cooldown
    assert next_turn(snap, troubled, capacity, policy, started=NOW - 1750) == NOW + 50
    noticed = replace(snap, nodes=(replace(snap.nodes[0], notice_ends=NOW + 60), snap.nodes[1]))
    lead = NOW + 60 - capacity.evacuate_lead
    assert next_turn(noticed, troubled, capacity, policy) == lead


def test_idle_is_active_without_a_service_task_nor_a_notice() -> None:
    snap = snapshot([1024, 0, 0, 0, 0])
    nodes = list(snap.nodes)
    nodes[2] = replace(nodes[2], status="DRAINING")
    nodes[3] = replace(nodes[3], notice_ends=NOW + 120)
    snap = replace(snap, nodes=tuple(nodes))
    assert idle_since(snap, {"spot"}, {}) == {"i-1": NOW, "i-4": NOW}
    assert idle_since(snap, {"od"}, {}) == {}  # not the scaler's pools


def test_idle_time_carries_over_and_ends_with_a_task() -> None:
    before = {"i-1": NOW - 600, "i-0": NOW - 900, "i-9": NOW - 900}
    idle = idle_since(snapshot([1024, 0, 0]), {"spot"}, before)
    assert idle == {"i-1": NOW - 600, "i-2": NOW}  # i-0 runs a task now, i-9 is gone
    assert idle_for(idle, NOW, 600) == ["i-1"]
    assert idle_for(idle, NOW + 600, 600) == ["i-1", "i-2"]  # the longest idle first


@given(
    st.dictionaries(st.sampled_from([f"i-{n}" for n in range(8)]), st.floats(0, NOW)),
    st.floats(0, 3600),
)
def test_only_instances_idle_long_enough_are_named(idle: dict[str, float], after: float) -> None:
    named = idle_for(idle, NOW, after)
    assert set(named) == {i for i, since in idle.items() if NOW - since >= after}
    assert [idle[i] for i in named] == sorted(idle[i] for i in named)


def test_calm_once_spot_trouble_is_old_enough() -> None:
    assert calm(CapacityMemory(), NOW, 900)
    troubled = CapacityMemory().noting("spot", NOW - 600).failing("od", NOW, spot=False)
    assert not calm(troubled, NOW, 900)  # an interruption 10 minutes ago
    assert calm(troubled, NOW + 300, 900)  # on-demand launch failures are not spot trouble
