"""The rebalance planner decides exactly as its reference (the planner before its speed-up) did:
the same moves, destinations, reasons and hot instances on random small clusters."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from scaler.ecs.cluster import (
    Cluster,
    Constraint,
    InstanceType,
    ServiceSpec,
    Strategy,
)
from scaler.ecs.scheduler import Scheduler
from scaler.plan.cooldown import Cooling
from scaler.plan.rebalance import RebalancePolicy, plan_moves
from tests.unit import rebalance_reference

TYPES = (InstanceType("m5.xlarge", 4, 16384, 0.192), InstanceType("m5.large", 2, 8192, 0.096))
AZS = ("us-east-1a", "us-east-1b", "us-east-1c")
STRATEGIES = (
    (Strategy("spread", "attribute:ecs.availability-zone"), Strategy("spread", "instanceId")),
    (Strategy("spread", "attribute:ecs.availability-zone"), Strategy("binpack", "memory")),
    (Strategy("binpack", "cpu"),),
    (Strategy("random"),),
    (Strategy("spread", "attribute:ecs.instance-type"),),
    (),
)
CONSTRAINTS = (
    (),
    (Constraint("distinctInstance"),),
    (Constraint("memberOf", "attribute:ecs.availability-zone in [us-east-1a, us-east-1b]"),),
    (Constraint("memberOf", "attribute:ecs.instance-type == m5.xlarge"),),
)
NOW = 10_000.0


@st.composite
def cases(draw: st.DrawFn) -> tuple[Cluster, RebalancePolicy, Cooling, int, int]:
    cluster = Cluster()
    for n in range(draw(st.integers(1, 10))):
        inst = cluster.launch(
            "p",
            draw(st.sampled_from(TYPES)),
            AZS[draw(st.integers(0, 2))],
            "spot",
            0.07,
            0.0,
            id=f"i-{n}",
            provider=draw(st.sampled_from(["", "cp-a", "cp-b"])),
        )
        cluster.register(inst, 0.0)
    rng = random.Random(draw(st.integers(0, 1000)))
    scheduler = Scheduler(cluster, rng, list(AZS))
    instances = list(cluster.instances.values())
    for s in range(draw(st.integers(1, 5))):
        spec = ServiceSpec(
            f"svc-{s}",
            draw(st.integers(1, 8)),
            draw(st.sampled_from([256, 512, 1024])),
            draw(st.sampled_from([512, 2048, 4096])),
            draw(st.sampled_from([0, 50, 100])),
            draw(st.sampled_from([100, 150, 200])),
            draw(st.sampled_from(STRATEGIES)),
            draw(st.sampled_from(CONSTRAINTS)),
            cpu_use=draw(st.floats(0.2, 1.6)),
            az_rebalancing=draw(st.booleans()),
            capacity_providers=draw(st.sampled_from([(), ("cp-a",)])),
        )
        state = cluster.add_service(spec)
        skewed = draw(st.booleans())  # piled onto few instances, as ECS would not
        for _ in range(spec.desired if skewed else 0):
            inst = instances[int(len(instances) * rng.random() ** 3)]
            if inst.free_cpu >= spec.cpu and inst.free_mem >= spec.memory:
                cluster.start_task(state, inst, inst.az, 0.0)
        scheduler.reconcile(state, 0.0)
        for task in state.tasks.values():
            task.created_at = draw(st.sampled_from([0.0, NOW - 100, NOW - 1000]))
            task.running_at = task.healthy_at = min(task.created_at, NOW)
            cluster.mark_running(task)
        if draw(st.integers(0, 9)) == 0:
            state.revision += 1  # mid-deployment
        if draw(st.integers(0, 9)) != 0:
            state.unplaced = 0  # mostly: a shortage pauses every plan
    if draw(st.integers(0, 19)) == 0:
        cluster.drain(instances[0])
    policy = RebalancePolicy(
        hot_threshold=draw(st.floats(0.2, 0.95)),
        deviation=draw(st.sampled_from([0.05, 0.1, 0.3])),
        max_moves=draw(st.integers(0, 6)),
        max_moves_per_hour=draw(st.integers(0, 12)),
        min_task_age=draw(st.sampled_from([0.0, 300.0])),
        surge=draw(st.booleans()),
        min_gain=draw(st.sampled_from([0.0, 0.5, 0.9])),
        max_predictions=draw(st.integers(1, 8)),
        spare_idle=False,  # the reference knew nothing of idle instances
    )
    tasks = [t for s in cluster.services.values() for t in s.tasks]
    held = frozenset(t for t in tasks if draw(st.integers(0, 9)) == 0)
    since = {name: NOW - 500 for name in cluster.services if draw(st.integers(0, 4)) == 0}
    return cluster, policy, Cooling(held, since), draw(st.integers(0, 3)), draw(st.integers(0, 99))


@settings(max_examples=400, deadline=None)
@given(cases())
def test_the_planner_decides_as_its_reference(
    case: tuple[Cluster, RebalancePolicy, Cooling, int, int],
) -> None:
    cluster, policy, cooling, moved, seed = case
    before = {i.id: (i.free_cpu, i.free_mem, len(i.tasks)) for i in cluster.instances.values()}
    args = (cluster.instances, cluster.services, NOW, policy)
    expected = rebalance_reference.plan_moves(*args, moved, seed, cooling)
    assert plan_moves(*args, moved, seed, cooling) == expected
    after = {i.id: (i.free_cpu, i.free_mem, len(i.tasks)) for i in cluster.instances.values()}
    assert after == before, "the cluster is not changed"
