"""Rebalancing and consolidation with services bound to capacity providers: no planned move
puts a bound service's task on another provider's instance, and an instance is not given back
when only other providers' instances have room for its bound tasks."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from scaler.ecs.cluster import Cluster, InstanceType, ServiceSpec, Strategy
from scaler.ecs.scheduler import Scheduler
from scaler.plan.consolidate import ConsolidationPolicy, plan_consolidation
from scaler.plan.rebalance import RebalancePolicy, plan_moves

M5 = InstanceType("m5.xlarge", 4, 16384, 0.192)
NOW = 10_000.0
PROVIDERS = ("cp-a", "cp-b", "")
SPREAD = (Strategy("spread", "attribute:ecs.availability-zone"), Strategy("spread", "instanceId"))


def settle(cluster: Cluster) -> None:
    """Every task RUNNING and healthy long ago."""
    for state in cluster.services.values():
        for task in state.tasks.values():
            task.running_at = task.healthy_at = 0.0
            cluster.mark_running(task)


@st.composite
def bound_clusters(draw: st.DrawFn) -> Cluster:
    cluster = Cluster()
    for n in range(draw(st.integers(2, 8))):
        provider = draw(st.sampled_from(PROVIDERS))
        az = draw(st.sampled_from(["us-east-1a", "us-east-1b"]))
        inst = cluster.launch(provider or "p", M5, az, "spot", 0.07, 0.0, f"i-{n}", "", provider)
        cluster.register(inst, 0.0)
    scheduler = Scheduler(cluster, random.Random(draw(st.integers(0, 99))), ["us-east-1a"])
    for n in range(draw(st.integers(1, 4))):
        providers = tuple(sorted(draw(st.sets(st.sampled_from(PROVIDERS[:2]), max_size=2))))
        spec = ServiceSpec(
            f"svc-{n}",
            draw(st.integers(1, 10)),
            draw(st.sampled_from([256, 512, 1024])),
            1024,
            draw(st.sampled_from([50, 100])),
            200,
            draw(st.sampled_from([SPREAD, (Strategy("binpack", "cpu"),)])),
            cpu_use=1.0,
            capacity_providers=providers,
        )
        scheduler.reconcile(cluster.add_service(spec), 0.0)
    settle(cluster)
    return cluster


@settings(max_examples=150, deadline=None)
@given(bound_clusters(), st.integers(0, 5))
def test_no_planned_move_puts_a_bound_task_on_another_providers_instance(
    cluster: Cluster, seed: int
) -> None:
    policy = RebalancePolicy(hot_threshold=0.5, deviation=0.1, min_gain=0.0)
    plan = plan_moves(cluster.instances, cluster.services, NOW, policy, seed=seed)
    for move in plan.moves:
        allowed = cluster.services[move.service].spec.capacity_providers
        destination = cluster.instances[move.destination]
        assert not allowed or destination.provider in allowed, move


def test_a_hot_bound_task_does_not_move_to_another_providers_cool_instance() -> None:
    cluster = Cluster()
    hot = cluster.launch("a", M5, "us-east-1a", "spot", 0.07, 0.0, "i-hot", "", "cp-a")
    cool = cluster.launch("b", M5, "us-east-1a", "spot", 0.07, 0.0, "i-cool", "", "cp-b")
    for inst in (hot, cool):
        cluster.register(inst, 0.0)
    spec = ServiceSpec(
        "web", 4, 1024, 1024, 50, 200, SPREAD, cpu_use=1.0, capacity_providers=("cp-a",)
    )
    Scheduler(cluster, random.Random(1), ["us-east-1a"]).reconcile(cluster.add_service(spec), 0)
    settle(cluster)
    assert len(hot.tasks) == 4
    plan = plan_moves(cluster.instances, cluster.services, NOW, RebalancePolicy())
    assert plan.hot == ("i-hot",)
    assert plan.moves == ()


def test_an_instance_whose_bound_tasks_fit_only_on_another_provider_is_kept() -> None:
    cluster = Cluster()
    small = cluster.launch("a", M5, "us-east-1a", "on-demand", 0.19, 0.0, "i-a", "", "cp-a")
    roomy = cluster.launch("b", M5, "us-east-1a", "spot", 0.07, 0.0, "i-b", "", "cp-b")
    spare = cluster.launch("b", M5, "us-east-1a", "spot", 0.07, 0.0, "i-c", "", "cp-b")
    for inst in (small, roomy, spare):
        cluster.register(inst, 0.0)
    bound = ServiceSpec("web", 1, 256, 512, 100, 200, SPREAD, capacity_providers=("cp-a",))
    Scheduler(cluster, random.Random(1), ["us-east-1a"]).reconcile(cluster.add_service(bound), 0)
    settle(cluster)
    policy = ConsolidationPolicy(max_disrupted=1.0, keep_free=0.0)
    only = {"i-a"}
    assert (
        plan_consolidation(cluster.instances, cluster.services, NOW, policy, only=only).remove == ()
    )
    # the same task unbound would move to cp-b's room, and its instance be given back
    cluster.services["web"].spec = ServiceSpec("web", 1, 256, 512, 100, 200, SPREAD)
    for task in cluster.services["web"].tasks.values():
        task.service = cluster.services["web"].spec
    removed = plan_consolidation(cluster.instances, cluster.services, NOW, policy, only=only).remove
    assert [r.instance for r in removed] == ["i-a"]
