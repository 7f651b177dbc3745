"""Scale-out by task shape: waiting tasks are packed onto the instance types that can hold them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from scaler.ecs.placement import first_fit_decreasing
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

NOW = 10_000.0
NO_HEADROOM = CapacityPolicy(headroom=0.0)
CALM = CapacityMemory()

# an m5.large-like pool (cheapest) and an m5.xlarge-like one
SMALL = PoolView("spot-small", SPOT, "a", 2048, 8192, 0.03, 0)
LARGE = PoolView("spot-large", SPOT, "a", 4096, 16384, 0.06, 0)
OD_LARGE = PoolView("od-large", ON_DEMAND, "a", 4096, 16384, 0.19, 0)


def service(name: str, cpu: int, memory: int, unplaced: int) -> ServiceView:
    return ServiceView(name, unplaced, cpu, memory, {}, unplaced)


def snap(
    pools: Sequence[PoolView], services: Sequence[ServiceView], nodes: Sequence[NodeView] = ()
) -> CapacitySnapshot:
    size = Counter(n.pool for n in nodes if not n.doomed)
    return CapacitySnapshot(
        NOW, tuple(nodes), tuple(replace(p, size=size[p.name]) for p in pools), tuple(services)
    )


def launched(s: CapacitySnapshot, memory: CapacityMemory = CALM) -> dict[str, int]:
    plan = plan_capacity(s, memory, NO_HEADROOM)
    return plan.launches({p.name: p for p in s.pools})


def test_first_fit_decreasing_places_largest_first() -> None:
    left, bins = first_fit_decreasing([(1, 1), (3, 3), (2, 2)], [(4, 4), (2, 2)])
    assert left == []
    assert bins == [(0, 0), (0, 0)]  # 3 then 1 in the first; 2 in the second


def test_first_fit_decreasing_leaves_what_fits_nowhere() -> None:
    left, bins = first_fit_decreasing([(1, 10), (1, 1)], [(4, 4)])
    assert left == [(1, 10)]
    assert bins == [(3, 3)]


def test_tasks_larger_than_the_cheapest_type_get_a_type_they_fit() -> None:
    s = snap([SMALL, LARGE], [service("big", 1024, 10240, 3)])
    assert launched(s) == {"spot-large": 3}  # one 10 GiB task per 16 GiB instance


def test_a_type_no_waiting_task_fits_is_never_launched() -> None:
    s = snap([SMALL], [service("big", 1024, 10240, 3)])
    plan = plan_capacity(s, CALM, NO_HEADROOM)
    assert plan.launches({p.name: p for p in s.pools}) == {}
    assert any("fit no instance type" in r for r in plan.reasons)


def test_small_tasks_still_go_to_the_cheapest_per_task() -> None:
    # four 2 GiB tasks: one small instance (0.03) holds all four; a large one costs twice as much
    s = snap([SMALL, LARGE], [service("web", 512, 2048, 4)])
    assert launched(s) == {"spot-small": 1}


def test_mixed_shapes_small_tasks_fill_the_large_instances_first() -> None:
    # two 10 GiB tasks and two 4 GiB tasks: each large instance takes a big one and a small one
    s = snap([SMALL, LARGE], [service("big", 1024, 10240, 2), service("web", 512, 4096, 2)])
    assert launched(s) == {"spot-large": 2}


def test_on_demand_only_if_no_spot_type_fits() -> None:
    s = snap([SMALL, OD_LARGE], [service("big", 1024, 10240, 1)])
    assert launched(s) == {"od-large": 1}


def test_doomed_tasks_fit_on_free_room_where_they_fit() -> None:
    # a doomed instance's 10 GiB task: a healthy small instance has 8 GiB free, no use to it
    doomed = NodeView("d", "spot-large", "a", SPOT, "ACTIVE", 4096, 16384, 3072, 6144, NOW + 60, 1)
    free = NodeView("f", "spot-small", "a", SPOT, "ACTIVE", 2048, 8192, 2048, 8192)
    big = ServiceView("big", 1, 1024, 10240, {"d": 1}, 0, 1)
    s = snap([SMALL, LARGE], [big], [doomed, free])
    assert launched(s) == {"spot-large": 1}


def test_a_launching_instance_that_fits_counts() -> None:
    coming = NodeView("l", "spot-large", "a", SPOT, "launching", 4096, 16384, 4096, 16384)
    s = snap([SMALL, LARGE], [service("big", 1024, 10240, 2)], [coming])
    assert launched(s) == {"spot-large": 1}  # one more: the launching one holds one of the two


def test_a_cooling_type_is_not_replaced_by_one_that_fits_nothing() -> None:
    s = snap([SMALL, LARGE], [service("big", 1024, 10240, 2)])
    assert launched(s, CapacityMemory({"spot-large": NOW - 10})) == {}


# -- properties -----------------------------------------------------------------------------------


@st.composite
def shaped(draw: st.DrawFn) -> CapacitySnapshot:
    types = draw(
        st.lists(
            st.tuples(st.sampled_from([1024, 2048, 4096, 8192]), st.sampled_from([2, 4, 8])),
            min_size=1,
            max_size=4,
        )
    )
    pools = [
        PoolView(
            f"p{i}",
            draw(st.sampled_from([SPOT, SPOT, ON_DEMAND])),
            draw(st.sampled_from(["a", "b"])),
            cpu,
            cpu * ratio,
            round(draw(st.floats(0.01, 1.0)), 3),
            0,
        )
        for i, (cpu, ratio) in enumerate(types)
    ]
    services = [
        service(
            f"s{i}",
            draw(st.sampled_from([256, 512, 1024, 2048, 4096, 6144])),
            draw(st.sampled_from([512, 2048, 6144, 10240, 20480, 40960])),
            draw(st.integers(1, 3)),
        )
        for i in range(draw(st.integers(1, 3)))
    ]
    return snap(pools, services)


def _assignable(tasks: list[tuple[int, int]], bins: list[tuple[int, int]]) -> bool:
    """Whether every task can go in some bin (exhaustive search: the sizes are small)."""
    if not tasks:
        return True
    (cpu, mem), rest = tasks[0], tasks[1:]
    for i, (free_cpu, free_mem) in enumerate(bins):
        if free_cpu >= cpu and free_mem >= mem:
            bins[i] = (free_cpu - cpu, free_mem - mem)
            ok = _assignable(rest, bins)
            bins[i] = (free_cpu, free_mem)
            if ok:
                return True
    return False


GENEROUS = CapacityPolicy(headroom=0.0, max_on_demand=1000, max_hourly_spend=10_000.0)


@settings(max_examples=150, deadline=None)
@given(shaped())
def test_launches_fit_the_waiting_tasks_and_give_each_room(s: CapacitySnapshot) -> None:
    plan = plan_capacity(s, CALM, GENEROUS)
    pools = {p.name: p for p in s.pools}
    tasks = [(v.cpu, v.memory) for v in s.services for _ in range(v.unplaced)]

    def fits(p: PoolView, t: tuple[int, int]) -> bool:
        return p.cpu >= t[0] and p.memory >= t[1]

    got = plan.launches(pools)
    for name in got:
        assert any(fits(pools[name], t) for t in tasks), f"{name} fits none of the tasks"
    placeable = sorted((t for t in tasks if any(fits(p, t) for p in s.pools)), reverse=True)
    bins = [(pools[n].cpu, pools[n].memory) for n, count in got.items() for _ in range(count)]
    assert _assignable(placeable, bins), f"{placeable} do not all fit in {got}"


def test_a_task_only_an_instance_there_is_can_hold_still_counts() -> None:
    # no pool may grow, but a launching instance holds the task: it takes room from the headroom
    fixed = replace(SMALL, managed=False)
    coming = NodeView("l", fixed.name, "a", SPOT, "launching", 2048, 8192, 2048, 8192)
    s = snap([fixed], [service("web", 512, 2048, 1)], [coming])
    plan = plan_capacity(s, CALM, CapacityPolicy(headroom=0.0, headroom_cpu=2000))
    assert not any("fit no instance type" in r for r in plan.reasons)
    assert "deficit left: no pool may grow (caps or cooldowns)" in plan.reasons


def test_an_instance_the_plan_launched_holds_as_much_once_active_and_empty() -> None:
    # three 128/512 tasks and two 512/256 ones lose their place; a 512/2048 and a 512/1024
    # instance are launching. The three small fill the first, one large the second, and the
    # plan launches a 512/1024 instance for the last. Once that one is ACTIVE and empty (the
    # others still launching) it has the same room, so the plan made again launches nothing.
    short = PoolView("spot-short", SPOT, "a", 512, 1024, 0.01, 0)
    tall = PoolView("spot-tall", SPOT, "a", 512, 2048, 0.02, 0)
    lost = NodeView("d", short.name, "a", SPOT, "ACTIVE", 512, 1024, 0, 0, NOW + 60, 5)
    coming = [
        NodeView("l1", tall.name, "a", SPOT, "launching", 512, 2048, 512, 2048),
        NodeView("l2", short.name, "a", SPOT, "launching", 512, 1024, 512, 1024),
    ]
    services = [
        ServiceView("small", 3, 128, 512, {"d": 3}, 0, 3),
        ServiceView("large", 2, 512, 256, {"d": 2}, 0, 2),
    ]
    before = snap([short, tall], services, [lost, *coming])
    assert launched(before) == {"spot-short": 1}
    active = NodeView("new", short.name, "a", SPOT, "ACTIVE", 512, 1024, 512, 1024)
    assert launched(snap([short, tall], services, [lost, *coming, active])) == {}
