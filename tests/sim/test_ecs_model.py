"""The ECS behaviour model (scaler.ecs) against ECS's documented rules.

The rules are stated in the docstrings of scaler.ecs.placement and scaler.ecs.scheduler.

Every test builds a small cluster by hand and drives the scheduler with explicit times: tasks
become RUNNING when the test calls ``mark_running`` (at ``running_at``) and count as healthy from
``healthy_at``.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace

import pytest

from scaler.ecs.cluster import (
    ACTIVE,
    DRAINING,
    LAUNCHING,
    PENDING,
    RUNNING,
    STOPPED,
    Cluster,
    Constraint,
    Instance,
    InstanceType,
    ServiceSpec,
    ServiceState,
    Strategy,
)
from scaler.ecs.placement import member_of
from scaler.ecs.scheduler import Reconciled, Scheduler, bounds

A, B, C = AZS = ("us-east-1a", "us-east-1b", "us-east-1c")
LARGE = InstanceType("m5.large", 2, 8192, 0.096)
XLARGE = InstanceType("m5.xlarge", 4, 16384, 0.192)

AZ_SPREAD = Strategy("spread", "attribute:ecs.availability-zone")
INSTANCE_SPREAD = Strategy("spread", "instanceId")
BINPACK_CPU = Strategy("binpack", "cpu")
BINPACK_MEMORY = Strategy("binpack", "memory")

START, HEALTH = 20.0, 40.0  # the default start and health delays of a ServiceSpec


# -- helpers ----------------------------------------------------------------------------------


def add(
    cluster: Cluster,
    itype: InstanceType = XLARGE,
    az: str = A,
    now: float = 0.0,
    *,
    register: bool = True,
) -> Instance:
    inst = cluster.launch(f"pool-{itype.name}-{az}", itype, az, "spot", 0.05, now)
    if register:
        cluster.register(inst, now)
    return inst


def spec(
    desired: int,
    name: str = "web",
    cpu: int = 256,
    memory: int = 512,
    *,
    strategies: tuple[Strategy, ...] = (AZ_SPREAD,),
    constraints: tuple[Constraint, ...] = (),
    min_healthy: int = 100,
    max_percent: int = 200,
    az_rebalancing: bool = True,
) -> ServiceSpec:
    return ServiceSpec(
        name=name,
        desired=desired,
        cpu=cpu,
        memory=memory,
        min_healthy_percent=min_healthy,
        max_percent=max_percent,
        strategies=strategies,
        constraints=constraints,
        start_delay=START,
        health_delay=HEALTH,
        az_rebalancing=az_rebalancing,
    )


def scheduler(cluster: Cluster, seed: int = 1) -> Scheduler:
    return Scheduler(cluster, random.Random(seed), AZS)


def per_instance(state: ServiceState) -> Counter[str]:
    return Counter(t.instance.id for t in state.tasks.values() if t.instance is not None)


def per_az(state: ServiceState) -> Counter[str]:
    return Counter(t.az for t in state.tasks.values())


def on(inst: Instance, state: ServiceState) -> int:
    return sum(1 for t in state.tasks.values() if t.instance is inst)


def healthy(state: ServiceState, now: float) -> int:
    return sum(1 for t in state.tasks.values() if t.healthy(now))


def run_due(cluster: Cluster, states: Iterable[ServiceState], now: float) -> None:
    """Mark RUNNING every PENDING task whose start delay has passed (what the engine does)."""
    for state in states:
        for task in list(state.tasks.values()):
            if task.state == PENDING and task.running_at <= now:
                cluster.mark_running(task)


def warm(cluster: Cluster, sched: Scheduler, state: ServiceState) -> None:
    """Place the service at t=0 and let its tasks run and become healthy (t=60)."""
    sched.reconcile(state, 0.0)
    run_due(cluster, [state], START)
    assert all(t.healthy(START + HEALTH) for t in state.tasks.values())


def step(
    cluster: Cluster, sched: Scheduler, state: ServiceState, start: float, end: float
) -> list[tuple[float, Reconciled]]:
    """Reconcile once a second from ``start`` to ``end``, running tasks when due."""
    log = []
    t = start
    while t <= end:
        run_due(cluster, [state], t)
        log.append((t, sched.reconcile(state, t)))
        t += 1.0
    return log


# -- placement strategies ---------------------------------------------------------------------


def test_binpack_cpu_picks_the_instance_with_least_cpu_left_that_fits() -> None:
    cluster = Cluster()
    tiny = add(cluster, InstanceType("tiny", 1, 65536, 0.1))  # 1024 cpu: does not fit 1536
    lean = add(cluster, InstanceType("lean-cpu", 2, 32768, 0.1))  # 512 cpu left after one
    wide = add(cluster, InstanceType("wide-cpu", 4, 8192, 0.1))  # less memory, more cpu
    state = cluster.add_service(spec(1, cpu=1536, memory=2048, strategies=(BINPACK_CPU,)))
    scheduler(cluster).reconcile(state, 0.0)
    assert per_instance(state) == {lean.id: 1}
    assert on(tiny, state) == on(wide, state) == 0


def test_binpack_cpu_fills_the_fullest_instance_first() -> None:
    cluster = Cluster()
    small, big = add(cluster, LARGE), add(cluster, XLARGE)
    state = cluster.add_service(spec(3, cpu=1024, memory=512, strategies=(BINPACK_CPU,)))
    scheduler(cluster).reconcile(state, 0.0)
    assert per_instance(state) == {small.id: 2, big.id: 1}


def test_binpack_memory_picks_the_instance_with_least_memory_left_that_fits() -> None:
    cluster = Cluster()
    add(cluster, InstanceType("tiny", 1, 4096, 0.1))  # the least memory, but too little cpu
    add(cluster, InstanceType("lean-cpu", 2, 32768, 0.1))
    wide = add(cluster, InstanceType("wide-cpu", 4, 8192, 0.1))
    state = cluster.add_service(spec(1, cpu=1536, memory=2048, strategies=(BINPACK_MEMORY,)))
    scheduler(cluster).reconcile(state, 0.0)
    assert per_instance(state) == {wide.id: 1}


def test_spread_on_az_balances_the_services_tasks_over_azs() -> None:
    cluster = Cluster()
    for az, n in ((A, 1), (B, 2), (C, 3)):  # uneven instances per AZ
        for _ in range(n):
            add(cluster, az=az)
    state = cluster.add_service(spec(9, strategies=(AZ_SPREAD,)))
    scheduler(cluster).reconcile(state, 0.0)
    assert per_az(state) == {A: 3, B: 3, C: 3}


def test_spread_on_instance_id_puts_one_task_per_instance_before_doubling_up() -> None:
    cluster = Cluster()
    insts = [add(cluster, t) for t in (LARGE, XLARGE, LARGE, XLARGE)]
    state = cluster.add_service(spec(4, strategies=(INSTANCE_SPREAD,)))
    sched = scheduler(cluster)
    sched.reconcile(state, 0.0)
    assert per_instance(state) == {i.id: 1 for i in insts}
    cluster.set_desired("web", 7)
    sched.reconcile(state, 1.0)
    assert sorted(per_instance(state).values()) == [1, 2, 2, 2]
    cluster.set_desired("web", 8)
    sched.reconcile(state, 2.0)
    assert per_instance(state) == {i.id: 2 for i in insts}


def test_spread_on_instance_id_counts_only_the_services_own_tasks() -> None:
    cluster = Cluster()
    first, second = add(cluster), add(cluster)
    other = cluster.add_service(spec(3, name="other", strategies=(BINPACK_CPU,)))
    sched = scheduler(cluster)
    sched.reconcile(other, 0.0)
    assert sorted([on(first, other), on(second, other)]) == [0, 3]
    crowded = first if on(first, other) == 3 else second
    web = cluster.add_service(spec(2, strategies=(INSTANCE_SPREAD,)))
    sched.reconcile(web, 0.0)
    assert on(crowded, web) == 1  # the other service's three tasks there do not count


def test_spread_on_az_counts_only_the_services_own_tasks() -> None:
    cluster = Cluster()
    a, b = add(cluster, az=A), add(cluster, az=B)
    other = cluster.add_service(
        spec(
            4,
            name="other",
            constraints=(Constraint("memberOf", f"attribute:ecs.availability-zone == {A}"),),
        )
    )
    sched = scheduler(cluster)
    sched.reconcile(other, 0.0)
    assert on(a, other) == 4
    web = cluster.add_service(spec(4, strategies=(AZ_SPREAD,)))
    sched.reconcile(web, 0.0)
    assert per_az(web) == {A: 2, B: 2}
    assert on(b, web) == 2


def test_spread_az_then_binpack_memory_is_even_over_azs_and_packed_within_each() -> None:
    cluster = Cluster()
    small = {az: add(cluster, LARGE, az) for az in (A, B)}
    for az in (A, B):
        add(cluster, XLARGE, az)  # more memory left: binpack avoids these
    state = cluster.add_service(spec(6, memory=1024, strategies=(AZ_SPREAD, BINPACK_MEMORY)))
    scheduler(cluster).reconcile(state, 0.0)
    assert per_az(state) == {A: 3, B: 3}
    assert per_instance(state) == {small[A].id: 3, small[B].id: 3}


def _random_layout(seed: int) -> list[str]:
    cluster = Cluster()
    for az in AZS:
        add(cluster, az=az)
        add(cluster, az=az)
    state = cluster.add_service(spec(12, strategies=(Strategy("random"),)))
    Scheduler(cluster, random.Random(seed), AZS).reconcile(state, 0.0)
    return [t.instance.id for t in state.tasks.values() if t.instance is not None]


def test_random_placement_is_deterministic_for_a_seed() -> None:
    first = _random_layout(1)
    assert len(first) == 12
    assert first == _random_layout(1)
    assert len(set(first)) > 1  # it does spread tasks about
    assert any(_random_layout(seed) != first for seed in (2, 3, 4, 5))  # the seed matters


# -- constraints --------------------------------------------------------------------------------


def test_distinct_instance_puts_a_services_tasks_on_distinct_instances() -> None:
    cluster = Cluster()
    insts = [add(cluster) for _ in range(3)]
    distinct = (Constraint("distinctInstance"),)
    sched = scheduler(cluster)
    web = cluster.add_service(spec(3, strategies=(BINPACK_CPU,), constraints=distinct))
    api = cluster.add_service(spec(3, name="api", strategies=(BINPACK_CPU,), constraints=distinct))
    sched.reconcile(web, 0.0)
    sched.reconcile(api, 0.0)
    assert per_instance(web) == {i.id: 1 for i in insts}  # binpack alone would stack them
    assert per_instance(api) == {i.id: 1 for i in insts}  # other services may share a host
    assert web.unplaced == api.unplaced == 0


def test_distinct_instance_with_too_few_instances_leaves_tasks_unplaced() -> None:
    cluster = Cluster()
    add(cluster)
    add(cluster)
    state = cluster.add_service(spec(5, constraints=(Constraint("distinctInstance"),)))
    result = scheduler(cluster).reconcile(state, 0.0)
    assert len(state.tasks) == 2
    assert result.unplaced == state.unplaced == 3
    assert result.started == 2


@pytest.mark.parametrize(
    ("expression", "allowed"),
    [
        ("attribute:ecs.instance-type == m5.large", {("m5.large", A), ("m5.large", B)}),
        ("attribute:ecs.instance-type != m5.large", {("m5.xlarge", A), ("m5.xlarge", C)}),
        (
            f"attribute:ecs.availability-zone in [{A}, {B}]",
            {("m5.large", A), ("m5.large", B), ("m5.xlarge", A)},
        ),
        (f"attribute:ecs.availability-zone !in [{A}, {B}]", {("m5.xlarge", C)}),
    ],
)
def test_member_of_constrains_placement(expression: str, allowed: set[tuple[str, str]]) -> None:
    cluster = Cluster()
    for itype, az in ((LARGE, A), (LARGE, B), (XLARGE, A), (XLARGE, C)):
        add(cluster, itype, az)
    state = cluster.add_service(spec(8, constraints=(Constraint("memberOf", expression),)))
    scheduler(cluster).reconcile(state, 0.0)
    used = {(t.instance.type.name, t.az) for t in state.tasks.values() if t.instance is not None}
    assert len(state.tasks) == 8
    assert used == allowed


def test_member_of_with_no_matching_instance_leaves_every_task_unplaced() -> None:
    cluster = Cluster()
    add(cluster, XLARGE)
    expression = "attribute:ecs.instance-type == m5.large"
    state = cluster.add_service(spec(3, constraints=(Constraint("memberOf", expression),)))
    scheduler(cluster).reconcile(state, 0.0)
    assert not state.tasks
    assert state.unplaced == 3


def test_a_capacity_provider_strategy_binds_tasks_to_its_providers_instances() -> None:
    cluster = Cluster()
    ours = [cluster.launch("cp-a", XLARGE, az, "spot", 0.05, 0.0, provider="cp-a") for az in (A, B)]
    theirs = cluster.launch("cp-b", XLARGE, C, "spot", 0.05, 0.0, provider="cp-b")
    plain = add(cluster, XLARGE, C)
    for inst in (*ours, theirs):
        cluster.register(inst, 0.0)
    bound = ServiceSpec("web", 12, 256, 512, capacity_providers=("cp-a",))
    state = cluster.add_service(bound)
    scheduler(cluster).reconcile(state, 0.0)
    assert len(state.tasks) == 12
    assert {t.instance.id for t in state.tasks.values() if t.instance} == {i.id for i in ours}
    free = cluster.add_service(ServiceSpec("free", 3, 256, 512))
    scheduler(cluster).reconcile(free, 0.0)
    assert {t.instance.id for t in free.tasks.values() if t.instance} <= {
        *(i.id for i in ours),
        theirs.id,
        plain.id,
    }


def test_room_on_another_providers_instances_leaves_a_bound_service_unplaced() -> None:
    cluster = Cluster()
    other = cluster.launch("cp-b", XLARGE, A, "spot", 0.05, 0.0, provider="cp-b")
    cluster.register(other, 0.0)
    add(cluster, XLARGE, B)  # no provider
    state = cluster.add_service(ServiceSpec("web", 3, 256, 512, capacity_providers=("cp-a",)))
    scheduler(cluster).reconcile(state, 0.0)
    assert not state.tasks
    assert state.unplaced == 3


def test_any_provider_of_a_weighted_strategy_may_hold_its_tasks() -> None:
    cluster = Cluster()
    for provider in ("cp-a", "cp-b", "cp-c"):
        cluster.register(
            cluster.launch(provider, LARGE, A, "spot", 0.05, 0.0, provider=provider), 0
        )
    bound = ServiceSpec(
        "web", 6, 256, 512, strategies=(INSTANCE_SPREAD,), capacity_providers=("cp-a", "cp-b")
    )
    state = cluster.add_service(bound)
    scheduler(cluster).reconcile(state, 0.0)
    assert Counter(t.instance.provider for t in state.tasks.values() if t.instance) == {
        "cp-a": 3,
        "cp-b": 3,
    }


def test_member_of_reads_the_capacity_provider_attribute() -> None:
    inst = Instance("i-1", "p", LARGE, A, "spot", 0.05, 0.0, provider="cp-a")
    assert member_of(inst, "attribute:ecs.capacity-provider-name == cp-a")
    assert not member_of(inst, "attribute:ecs.capacity-provider-name in [cp-b, cp-c]")


@pytest.mark.parametrize("expression", ["nonsense", "attribute:ecs.cpu-architecture exists"])
def test_an_unsupported_member_of_expression_raises(expression: str) -> None:
    cluster = Cluster()
    add(cluster)
    state = cluster.add_service(spec(1, constraints=(Constraint("memberOf", expression),)))
    with pytest.raises(ValueError, match="memberOf"):
        scheduler(cluster).reconcile(state, 0.0)


@pytest.mark.parametrize(
    "expression",
    [
        "attribute:ecs.instance-type =~ m5.*",
        "attribute:ecs.instance-type exists",
        "runningTasksCount > 1",
    ],
)
def test_an_unsupported_operator_is_not_silently_misparsed(expression: str) -> None:
    cluster = Cluster()
    inst = add(cluster, LARGE)
    with pytest.raises(ValueError):
        member_of(inst, expression)


# -- filters --------------------------------------------------------------------------------------


def test_only_active_instances_get_tasks() -> None:
    cluster = Cluster()
    booting = add(cluster, register=False)
    draining = add(cluster)
    cluster.drain(draining)
    assert (booting.status, draining.status) == (LAUNCHING, DRAINING)
    state = cluster.add_service(spec(2))
    sched = scheduler(cluster)
    sched.reconcile(state, 0.0)
    assert not state.tasks
    assert state.unplaced == 2
    active = add(cluster)
    assert active.status == ACTIVE
    sched.reconcile(state, 1.0)
    assert per_instance(state) == {active.id: 2}
    assert state.unplaced == 0


@pytest.mark.parametrize(
    ("itype", "fits"),
    [
        (InstanceType("cpu-only", 4, 1024, 0.1), False),  # 4096 cpu, 1024 MiB
        (InstanceType("memory-only", 1, 16384, 0.1), False),  # 1024 cpu, 16 GiB
        (InstanceType("both", 2, 4096, 0.1), True),
    ],
)
def test_a_task_needs_both_cpu_and_memory_to_fit(itype: InstanceType, fits: bool) -> None:
    cluster = Cluster()
    add(cluster, itype)
    state = cluster.add_service(spec(1, cpu=2048, memory=2048))
    scheduler(cluster).reconcile(state, 0.0)
    assert len(state.tasks) == (1 if fits else 0)
    assert state.unplaced == (0 if fits else 1)


def test_placement_accounts_for_resources_already_taken() -> None:
    cluster = Cluster()
    add(cluster, LARGE)  # 2048 cpu, 8192 MiB
    state = cluster.add_service(spec(5, cpu=512, memory=1024))
    scheduler(cluster).reconcile(state, 0.0)
    assert len(state.tasks) == 4
    assert state.unplaced == 1


# -- draining within minimumHealthyPercent / maximumPercent -------------------------------------


def _drain_setup(
    min_healthy: int, max_percent: int
) -> tuple[Cluster, Scheduler, ServiceState, Instance, Instance]:
    """Four healthy tasks on ``old`` (t=60); ``new`` registers at t=100 and ``old`` drains."""
    cluster = Cluster()
    old = add(cluster)
    state = cluster.add_service(spec(4, min_healthy=min_healthy, max_percent=max_percent))
    sched = scheduler(cluster)
    warm(cluster, sched, state)
    assert on(old, state) == 4
    new = add(cluster, now=100.0)
    assert cluster.drain(old)
    return cluster, sched, state, old, new


def test_drain_min_50_max_200_starts_replacements_first_and_stops_half_at_once() -> None:
    cluster, sched, state, old, new = _drain_setup(50, 200)
    first = sched.reconcile(state, 100.0)
    assert (first.started, first.stopped) == (4, 2)
    assert (on(old, state), on(new, state)) == (2, 4)
    log = step(cluster, sched, state, 101.0, 100.0 + START + HEALTH - 1)
    assert all(r.stopped == r.started == 0 for _, r in log)
    assert on(old, state) == 2  # the other two wait for healthy replacements
    done = sched.reconcile(state, 100.0 + START + HEALTH)
    assert (done.started, done.stopped) == (0, 2)
    assert (on(old, state), on(new, state)) == (0, 4)


def test_drain_max_100_stops_first_then_starts() -> None:
    cluster, sched, state, old, new = _drain_setup(50, 100)
    first = sched.reconcile(state, 100.0)
    assert (first.started, first.stopped) == (0, 2)
    second = sched.reconcile(state, 101.0)
    assert (second.started, second.stopped) == (2, 0)
    assert (on(old, state), on(new, state)) == (2, 2)
    t = 102.0
    while t <= 400.0:  # never above 100 % of desired, never below 50 % healthy
        run_due(cluster, [state], t)
        sched.reconcile(state, t)
        assert len(state.tasks) <= 4
        assert healthy(state, t) >= 2
        t += 1.0
    assert (on(old, state), on(new, state)) == (0, 4)


def test_drain_min_100_stops_old_tasks_only_after_replacements_are_healthy() -> None:
    cluster, sched, state, old, new = _drain_setup(100, 200)
    first = sched.reconcile(state, 100.0)
    assert (first.started, first.stopped) == (4, 0)
    log = step(cluster, sched, state, 101.0, 100.0 + START + HEALTH - 1)
    assert sum(r.stopped for _, r in log) == 0
    assert on(old, state) == 4
    assert all(t.state == RUNNING for t in state.tasks.values())
    done = sched.reconcile(state, 100.0 + START + HEALTH)
    assert done.stopped == 4
    assert (on(old, state), on(new, state)) == (0, 4)


def test_drain_min_100_max_100_never_finishes() -> None:
    cluster, sched, state, old, new = _drain_setup(100, 100)
    log = step(cluster, sched, state, 100.0, 3700.0)
    assert sum(r.started + r.stopped for _, r in log) == 0
    assert (on(old, state), on(new, state)) == (4, 0)
    assert old.status == DRAINING


def _pending_on_draining() -> tuple[Cluster, Scheduler, ServiceState, Instance, Instance]:
    """Four PENDING tasks on ``old``, which drains at t=5 with room on ``new`` (100 % / 100 %)."""
    cluster = Cluster()
    old = add(cluster)
    state = cluster.add_service(spec(4, min_healthy=100, max_percent=100))
    sched = scheduler(cluster)
    sched.reconcile(state, 0.0)
    assert all(t.state == PENDING for t in state.tasks.values())
    new = add(cluster, now=5.0)
    cluster.drain(old)
    return cluster, sched, state, old, new


def test_pending_tasks_on_a_draining_instance_stop_immediately() -> None:
    _, sched, state, old, new = _pending_on_draining()
    doomed = list(old.tasks.values())
    result = sched.reconcile(state, 5.0)  # even at 100 % / 100 %
    assert [t.state for t in doomed] == [STOPPED] * 4
    assert result.started == 4
    assert (on(old, state), on(new, state)) == (0, 4)
    assert old.tasks == {}


def test_pending_tasks_stopped_on_a_draining_instance_are_counted_once() -> None:
    _, sched, state, _, _ = _pending_on_draining()
    assert sched.reconcile(state, 5.0).stopped == 4


def test_running_unhealthy_tasks_on_a_draining_instance_stop_without_waiting() -> None:
    cluster = Cluster()
    old = add(cluster)
    state = cluster.add_service(spec(2, min_healthy=100, max_percent=200))
    sched = scheduler(cluster)
    sched.reconcile(state, 0.0)
    run_due(cluster, [state], START)
    add(cluster, now=START + 1)
    cluster.drain(old)
    result = sched.reconcile(state, START + 1)  # RUNNING, not yet healthy
    assert (result.started, result.stopped) == (2, 2)
    assert on(old, state) == 0


# -- deployments ----------------------------------------------------------------------------------


def test_deployment_replaces_old_revision_tasks_within_the_bounds() -> None:
    cluster = Cluster()
    add(cluster)
    add(cluster)
    state = cluster.add_service(spec(4, min_healthy=50, max_percent=200))
    sched = scheduler(cluster)
    warm(cluster, sched, state)
    state.revision += 1
    first = sched.reconcile(state, 100.0)
    assert (first.started, first.stopped) == (4, 2)
    revisions = Counter(t.revision for t in state.tasks.values())
    assert revisions == {1: 2, 2: 4}
    log = step(cluster, sched, state, 101.0, 100.0 + START + HEALTH - 1)
    assert sum(r.stopped for _, r in log) == 0
    done = sched.reconcile(state, 100.0 + START + HEALTH)
    assert done.stopped == 2
    assert Counter(t.revision for t in state.tasks.values()) == {2: 4}


def test_deployment_with_max_100_stops_before_it_starts() -> None:
    cluster = Cluster()
    add(cluster)
    state = cluster.add_service(spec(4, min_healthy=50, max_percent=100))
    sched = scheduler(cluster)
    warm(cluster, sched, state)
    state.revision += 1
    first = sched.reconcile(state, 100.0)
    assert (first.started, first.stopped) == (0, 2)
    step(cluster, sched, state, 101.0, 400.0)
    assert Counter(t.revision for t in state.tasks.values()) == {2: 4}


def test_deployment_with_min_100_max_100_is_stuck() -> None:
    cluster = Cluster()
    add(cluster)
    state = cluster.add_service(spec(4, min_healthy=100, max_percent=100))
    sched = scheduler(cluster)
    warm(cluster, sched, state)
    state.revision += 1
    log = step(cluster, sched, state, 100.0, 400.0)
    assert sum(r.started + r.stopped for _, r in log) == 0
    assert Counter(t.revision for t in state.tasks.values()) == {1: 4}


# -- scale-in -------------------------------------------------------------------------------------


def _mixed_health() -> tuple[Cluster, Scheduler, ServiceState, dict[str, str]]:
    """Two healthy tasks, one RUNNING but not yet healthy, one PENDING (at t=130)."""
    cluster = Cluster()
    add(cluster)
    state = cluster.add_service(spec(2, az_rebalancing=False))
    sched = scheduler(cluster)
    warm(cluster, sched, state)
    kind = {t.id: "healthy" for t in state.tasks.values()}
    cluster.set_desired("web", 3)
    sched.reconcile(state, 100.0)  # RUNNING at 120, healthy at 160
    cluster.set_desired("web", 4)
    sched.reconcile(state, 125.0)  # RUNNING at 145
    run_due(cluster, [state], 130.0)
    for task in state.tasks.values():
        if task.id not in kind:
            kind[task.id] = "pending" if task.state == PENDING else "unhealthy"
    assert sorted(kind.values()) == ["healthy", "healthy", "pending", "unhealthy"]
    return cluster, sched, state, kind


def test_scale_in_stops_pending_tasks_first() -> None:
    cluster, sched, state, kind = _mixed_health()
    cluster.set_desired("web", 3)
    result = sched.reconcile(state, 130.0)
    assert result.stopped == 1
    assert sorted(kind[t] for t in state.tasks) == ["healthy", "healthy", "unhealthy"]


def test_scale_in_stops_pending_then_unhealthy_tasks() -> None:
    cluster, sched, state, kind = _mixed_health()
    cluster.set_desired("web", 2)
    result = sched.reconcile(state, 130.0)
    assert result.stopped == 2
    assert sorted(kind[t] for t in state.tasks) == ["healthy", "healthy"]


def test_scale_in_takes_from_the_fullest_az() -> None:
    cluster = Cluster()
    add(cluster, az=A)
    add(cluster, az=B)
    state = cluster.add_service(spec(4, az_rebalancing=False))
    sched = scheduler(cluster)
    warm(cluster, sched, state)
    assert per_az(state) == {A: 2, B: 2}
    cluster.set_desired("web", 2)
    sched.reconcile(state, 100.0)
    assert per_az(state) == {A: 1, B: 1}


def test_binpack_scale_in_stops_the_task_on_the_instance_left_with_most_free_resources() -> None:
    cluster = Cluster()
    full = add(cluster, LARGE)  # 2048 cpu
    roomy = add(cluster, XLARGE)  # 4096 cpu
    state = cluster.add_service(spec(3, cpu=1024, memory=512, strategies=(BINPACK_CPU,)))
    sched = scheduler(cluster)
    warm(cluster, sched, state)
    assert (on(full, state), on(roomy, state)) == (2, 1)
    cluster.set_desired("web", 2)
    sched.reconcile(state, 100.0)
    assert (on(full, state), on(roomy, state)) == (2, 0)


# -- AZ rebalancing -------------------------------------------------------------------------------


def _skewed(strategies: tuple[Strategy, ...]) -> tuple[Cluster, Scheduler, ServiceState]:
    """Six healthy tasks all in AZ a (t=60); room in b and c from t=100."""
    cluster = Cluster()
    add(cluster, az=A)
    state = cluster.add_service(spec(6, strategies=strategies))
    sched = scheduler(cluster)
    warm(cluster, sched, state)
    assert per_az(state) == {A: 6}
    add(cluster, az=B, now=100.0)
    add(cluster, az=C, now=100.0)
    return cluster, sched, state


def test_az_spread_service_is_rebalanced_start_first() -> None:
    cluster, sched, state = _skewed((AZ_SPREAD, BINPACK_CPU))
    first = sched.reconcile(state, 100.0)
    assert (first.started, first.stopped) == (1, 0)
    assert per_az(state) == {A: 6, B: 1}
    log = step(cluster, sched, state, 101.0, 100.0 + START + HEALTH - 1)
    assert sum(r.started + r.stopped for _, r in log) == 0  # waits for the new task
    second = sched.reconcile(state, 100.0 + START + HEALTH)
    assert second.stopped == 1
    assert per_az(state)[A] == 5
    assert sum(per_az(state).values()) == 7  # and it started the next one in the same pass


def test_az_spread_service_is_rebalanced_to_even_azs() -> None:
    cluster, sched, state = _skewed((AZ_SPREAD, BINPACK_CPU))
    peak = 0
    t = 100.0
    while t <= 1000.0:
        run_due(cluster, [state], t)
        sched.reconcile(state, t)
        peak = max(peak, len(state.tasks))
        assert healthy(state, t) >= 6  # start-first: never below desired
        t += 1.0
    assert per_az(state) == {A: 2, B: 2, C: 2}
    assert peak == 7  # one at a time
    assert all(t.healthy(1000.0) for t in state.tasks.values())


@pytest.mark.parametrize(
    "strategies", [(BINPACK_CPU,), (BINPACK_MEMORY, AZ_SPREAD), (INSTANCE_SPREAD, AZ_SPREAD)]
)
def test_a_service_without_az_spread_first_is_not_rebalanced(
    strategies: tuple[Strategy, ...],
) -> None:
    cluster, sched, state = _skewed(strategies)
    log = step(cluster, sched, state, 100.0, 1000.0)
    assert sum(r.started + r.stopped for _, r in log) == 0
    assert per_az(state) == {A: 6}


def test_rebalancing_can_be_turned_off() -> None:
    cluster = Cluster()
    add(cluster, az=A)
    state = cluster.add_service(spec(6, az_rebalancing=False))
    sched = scheduler(cluster)
    warm(cluster, sched, state)
    add(cluster, az=B, now=100.0)
    log = step(cluster, sched, state, 100.0, 500.0)
    assert sum(r.started + r.stopped for _, r in log) == 0


# -- bounds -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("desired", "min_percent", "max_percent", "expected"),
    [
        (2, 75, 200, (2, 4)),  # min rounds up: no task may stop
        (3, 100, 125, (3, 3)),  # max rounds down: no task may start
        (4, 50, 200, (2, 8)),
        (4, 100, 100, (4, 4)),
        (5, 50, 150, (3, 7)),
        (0, 100, 200, (0, 0)),
    ],
)
def test_bounds_round_min_up_and_max_down(
    desired: int, min_percent: int, max_percent: int, expected: tuple[int, int]
) -> None:
    assert bounds(desired, min_percent, max_percent) == expected


# -- counts -----------------------------------------------------------------------------------


def test_a_service_counts_its_running_tasks_as_they_start_run_and_stop() -> None:
    """``ServiceState.running`` (what DescribeServices' runningCount reads) is the count of its
    RUNNING tasks through starts, runs, drains and stops, DEACTIVATING ones excluded."""
    cluster = Cluster()
    insts = [add(cluster, az=az) for az in AZS]
    state = cluster.add_service(replace(spec(9), deregistration_delay=30.0))
    sched, rng = scheduler(cluster), random.Random(5)
    for t in range(0, 600, 5):
        run_due(cluster, [state], float(t))
        sched.reconcile(state, float(t))
        live = list(state.tasks.values())
        if live and rng.random() < 0.3:
            cluster.stop_task(
                rng.choice(live), float(t), rng.choice(["scale-in", "instance-terminated"])
            )
        if t == 300:
            cluster.drain(insts[0])
        assert state.running == sum(1 for x in state.tasks.values() if x.state == RUNNING)
    assert state.running > 0
