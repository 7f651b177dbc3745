"""The capacity planner with services bound to capacity providers: room on other providers'
instances does not count for them, and their top-up goes only to their providers' pools."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from scaler.plan.capacity import (
    ON_DEMAND,
    CapacityPolicy,
    CapacitySnapshot,
    NodeView,
    PoolView,
    deficit,
    plan_capacity,
    served,
)
from tests.unit.test_plan_capacity import CALM, NO_HEADROOM, launches, node, pool, snapshot, web

CP_A = replace(pool("asg-a", price=0.20), provider="cp-a")
CP_B = replace(pool("asg-b", price=0.05), provider="cp-b")  # cheaper: chosen if allowed


def of(n: NodeView, provider: str) -> NodeView:
    return replace(n, provider=provider)


def test_room_on_another_providers_instance_does_not_count_for_unplaced_bound_tasks() -> None:
    snap = snapshot(
        [CP_A, CP_B],
        [of(node("b1", CP_B, free=(1000, 4000)), "cp-b")],
        [replace(web({}, unplaced=2), providers=("cp-a",))],
    )
    plan = plan_capacity(snap, CALM, NO_HEADROOM)
    assert launches(snap, plan) == {"asg-a": 1}


def test_bound_tasks_losing_their_place_are_not_packed_into_another_providers_room() -> None:
    snap = snapshot(
        [CP_A, CP_B],
        [
            of(node("a1", CP_A, notice=NOW_SOON, tasks=4), "cp-a"),
            of(node("b1", CP_B, free=(1000, 4000)), "cp-b"),
        ],
        [replace(web({"a1": 4}, desired=4), providers=("cp-a",))],
    )
    plan = plan_capacity(snap, CALM, NO_HEADROOM)
    assert launches(snap, plan) == {"asg-a": 1}


def test_unbound_tasks_still_use_any_providers_room() -> None:
    snap = snapshot(
        [CP_A, CP_B],
        [
            of(node("a1", CP_A, notice=NOW_SOON, tasks=4), "cp-a"),
            of(node("b1", CP_B, free=(1000, 4000)), "cp-b"),
        ],
        [web({"a1": 4}, desired=4)],
    )
    assert launches(snap, plan_capacity(snap, CALM, NO_HEADROOM)) == {}


def test_another_providers_launching_instance_is_no_room_for_bound_tasks() -> None:
    snap = snapshot(
        [CP_A, CP_B],
        [of(node("b1", CP_B, status="launching"), "cp-b")],
        [replace(web({}, unplaced=2), providers=("cp-a",))],
    )
    assert launches(snap, plan_capacity(snap, CALM, NO_HEADROOM)) == {"asg-a": 1}


def test_any_provider_of_a_weighted_strategy_may_take_the_top_up() -> None:
    snap = snapshot([CP_A, CP_B], [], [replace(web({}, unplaced=2), providers=("cp-a", "cp-b"))])
    assert launches(snap, plan_capacity(snap, CALM, NO_HEADROOM)) == {"asg-b": 1}


def test_a_service_bound_to_a_provider_the_scaler_does_not_own_grows_nothing() -> None:
    bound = replace(web({}, unplaced=3), providers=("ecs-managed",))
    snap = snapshot([CP_A, CP_B], [], [bound])
    assert served(snap) == []
    assert deficit(snap, NO_HEADROOM) == (0, 0)
    assert launches(snap, plan_capacity(snap, CALM, NO_HEADROOM)) == {}


def test_bound_tasks_whose_pool_is_full_do_not_grow_another_providers_pool() -> None:
    full = replace(CP_A, max_size=0)
    snap = snapshot([full, CP_B], [], [replace(web({}, unplaced=2), providers=("cp-a",))])
    assert launches(snap, plan_capacity(snap, CALM, NO_HEADROOM)) == {}


def test_an_on_demand_instance_is_not_released_when_its_bound_tasks_have_nowhere_to_go() -> None:
    od = replace(pool("od-a", ON_DEMAND, price=0.3), provider="cp-od")
    spot_b = CP_B
    nodes = [
        of(node("o1", od, tasks=1, free=(750, 3000)), "cp-od"),
        of(node("b1", spot_b, free=(1000, 4000)), "cp-b"),
        of(node("b2", spot_b, free=(1000, 4000)), "cp-b"),
    ]
    bound = replace(web({"o1": 1}, desired=1), providers=("cp-od",))
    snap = snapshot([od, spot_b], nodes, [bound])
    plan = plan_capacity(snap, CALM, NO_HEADROOM)
    assert plan.release == ()
    assert launches(snap, plan) == {}
    free = snapshot([od, spot_b], nodes, [replace(bound, providers=())])
    assert plan_capacity(free, CALM, NO_HEADROOM).release == ("o1",)


NOW_SOON = 10_060.0

PROVIDERS = ("cp-a", "cp-b", "cp-c", "")


@st.composite
def bound_snapshots(draw: st.DrawFn) -> tuple[object, ...]:
    pools = [
        replace(
            pool(f"asg-{n}", price=draw(st.sampled_from([0.05, 0.1, 0.2]))),
            provider=provider,
            cpu=draw(st.sampled_from([500, 1000, 2000])),
            memory=draw(st.sampled_from([2000, 4000, 8000])),
        )
        for n, provider in enumerate(draw(st.lists(st.sampled_from(PROVIDERS), max_size=4)))
    ]
    providers = tuple(draw(st.sets(st.sampled_from(PROVIDERS[:3]), min_size=1)))
    nodes = []
    for n in range(draw(st.integers(0, 5))):
        p = draw(st.sampled_from(pools)) if pools else pool("other")
        status = draw(st.sampled_from(["ACTIVE", "launching", "DRAINING"]))
        free = (draw(st.integers(0, p.cpu)), draw(st.integers(0, p.memory)))
        notice = draw(st.sampled_from([None, NOW_SOON]))
        nodes.append(of(node(f"n{n}", p, status, free, notice=notice, tasks=1), p.provider))
    bound = replace(
        web(
            {n.id: 1 for n in nodes if n.status == "ACTIVE" and n.provider in providers},
            unplaced=draw(st.integers(0, 6)),
            cpu=draw(st.sampled_from([250, 500])),
            memory=draw(st.sampled_from([1000, 2000])),
        ),
        providers=providers,
    )
    headroom = draw(st.sampled_from([0.0, 0.1]))
    return snapshot(pools, nodes, [bound]), providers, headroom


@settings(max_examples=300, deadline=None)
@given(bound_snapshots())
def test_no_top_up_for_a_bound_service_lands_in_another_providers_pool(
    case: tuple[object, ...],
) -> None:
    snap, providers, headroom = case
    assert isinstance(snap, CapacitySnapshot)
    assert isinstance(providers, tuple) and isinstance(headroom, float)
    policy = CapacityPolicy(headroom=headroom)
    plan = plan_capacity(snap, CALM, policy)
    alone = launches(snap, plan_capacity(replace(snap, services=()), CALM, policy))
    by_name: dict[str, PoolView] = {p.name: p for p in snap.pools}
    for name, count in launches(snap, plan).items():
        if by_name[name].provider not in providers:  # only what the rest of the plan needs
            assert count <= alone.get(name, 0), (name, plan.reasons)
