"""Task rebalancing: only useful moves, never below minimum health, within budgets, no ping-pong."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from scaler.ecs.cluster import (
    Cluster,
    Instance,
    InstanceType,
    ServiceSpec,
    ServiceState,
    Strategy,
)
from scaler.ecs.scheduler import Scheduler
from scaler.plan.cooldown import Cooling, MoveHistory
from scaler.plan.rebalance import (
    SURGE,
    RebalancePolicy,
    hot_instances,
    load,
    movable,
    move_kind,
    plan_moves,
)
from tests.unit.test_plan_rebalance_reference import cases

M5 = InstanceType("m5.xlarge", 4, 16384, 0.192)
SPREAD = (Strategy("spread", "attribute:ecs.availability-zone"), Strategy("spread", "instanceId"))
NOW = 10_000.0


def cluster_with(
    loads: list[int], *, min_healthy: int = 50, cpu_use: float = 1.0, free: int = 2
) -> tuple[Cluster, ServiceState]:
    """Instances holding ``loads[i]`` tasks of one 1024-CPU service each, plus ``free`` nearly
    empty ones (one small task of another service each: busy, not idle); every task RUNNING and
    healthy long ago."""
    cluster = Cluster()
    for n in range(len(loads) + free):
        inst = cluster.launch("p", M5, "us-east-1a", "spot", 0.07, 0.0, id=f"i-{n}")
        cluster.register(inst, 0.0)
    spec = ServiceSpec("web", sum(loads), 1024, 1024, min_healthy, 200, SPREAD, cpu_use=cpu_use)
    state = cluster.add_service(spec)
    instances = list(cluster.instances.values())
    for inst, count in zip(instances, loads, strict=False):
        for _ in range(count):
            _run(cluster, state, inst)
    if free:
        base = cluster.add_service(ServiceSpec("base", free, 128, 128, 100, 100, SPREAD))
        for inst in instances[len(loads) :]:
            _run(cluster, base, inst)
    return cluster, state


def _run(cluster: Cluster, state: ServiceState, inst: Instance) -> None:
    task = cluster.start_task(state, inst, inst.az, 0.0)
    task.running_at = task.healthy_at = 0.0
    cluster.mark_running(task)


def test_a_hot_instance_loses_tasks_to_the_coolest_instances() -> None:
    cluster, _ = cluster_with([4, 1])  # i-0 at 100%, i-1 at 25%, i-2 and i-3 empty
    plan = plan_moves(cluster.instances, cluster.services, NOW, RebalancePolicy())
    assert plan.hot == ("i-0",)
    assert [m.source for m in plan.moves] == ["i-0"]  # one move per service at a time
    assert plan.moves[0].destination in {"i-2", "i-3"}


def test_nothing_moves_when_nothing_is_hot() -> None:
    cluster, _ = cluster_with([2, 2], free=0)
    assert plan_moves(cluster.instances, cluster.services, NOW, RebalancePolicy()).moves == ()


def test_a_move_whose_replacement_would_land_back_is_not_made() -> None:
    cluster, _ = cluster_with([4], free=0)  # nowhere else to go
    assert plan_moves(cluster.instances, cluster.services, NOW, RebalancePolicy()).moves == ()


def test_minimum_healthy_percent_is_never_broken() -> None:
    cluster, _ = cluster_with([4, 1], min_healthy=100)
    policy = RebalancePolicy(surge=False)
    assert plan_moves(cluster.instances, cluster.services, NOW, policy).moves == ()


def test_a_service_that_may_not_lose_a_task_gets_its_replacement_first() -> None:
    cluster, state = cluster_with([4, 1], min_healthy=100)
    plan = plan_moves(cluster.instances, cluster.services, NOW, RebalancePolicy())
    (move,) = plan.moves
    assert move.surge and move.source == "i-0" and move.destination in {"i-2", "i-3"}
    assert plan.reasons[0].startswith("surge-move web task off i-0")
    assert move_kind(state.tasks[move.task], state, NOW, RebalancePolicy()) == SURGE


def test_no_surge_beyond_maximum_percent() -> None:
    cluster, state = cluster_with([4, 1], min_healthy=100)
    state.spec = replace(state.spec, max_percent=100)
    assert plan_moves(cluster.instances, cluster.services, NOW, RebalancePolicy()).moves == ()


def test_a_surge_predicts_placement_beside_the_hot_task() -> None:
    # binpack: once the task stopped, its room on i-0 would be the tightest fit (it would land
    # back); with the task still there, the extra task goes to the fullest other instance
    cluster, state = cluster_with([4, 1], min_healthy=100)
    state.spec = replace(state.spec, strategies=(Strategy("binpack", "cpu"),))
    (move,) = plan_moves(cluster.instances, cluster.services, NOW, RebalancePolicy()).moves
    assert move.surge and move.destination == "i-1"
    stop = RebalancePolicy(surge=False)
    state.spec = replace(state.spec, min_healthy_percent=50)
    assert plan_moves(cluster.instances, cluster.services, NOW, stop).moves == ()


def test_young_tasks_are_not_moved() -> None:
    cluster, state = cluster_with([4, 1])
    for task in state.tasks.values():
        task.created_at = NOW - 60  # just started
    policy = RebalancePolicy(min_task_age=300)
    assert plan_moves(cluster.instances, cluster.services, NOW, policy).moves == ()


def test_a_replacement_is_not_moved_again_within_the_cooldown() -> None:
    cluster, state = cluster_with([4, 1])
    history = MoveHistory()
    history.record("web", NOW - 1000)
    for task in state.tasks.values():
        task.created_at = NOW - 900  # started after the move
    policy = RebalancePolicy(task_cooldown=1800, min_task_age=300)

    def plan(now: float) -> list[str]:
        cooling = history.cooling(now, policy.task_cooldown)
        moves = plan_moves(cluster.instances, cluster.services, now, policy, cooling=cooling)
        return [m.task for m in moves.moves]

    # the replacement is not known yet: every task started since the move may be it
    assert plan(NOW) == []
    hot = cluster.instances["i-0"]
    replacement = sorted(hot.tasks)[0]
    history.replaced("web", replacement)
    # known now: the others (started after the move, say by a deployment) may move
    (moved,) = plan(NOW)
    assert moved != replacement
    every = Cooling(frozenset(hot.tasks))  # all of them replacements: none moves
    assert plan_moves(cluster.instances, cluster.services, NOW, policy, cooling=every).moves == ()
    history.record("web", NOW - 10)
    assert history.last_hour(NOW) == 2
    assert plan(NOW) != [], "tasks older than a move are not its replacement"


def test_the_cooldown_holds_a_replacement_until_it_is_over() -> None:
    history = MoveHistory()
    history.record("web", 0.0)
    assert history.cooling(10.0, 1800.0).holds("web", "any", 5.0), "unmatched: any newer task"
    assert not history.cooling(10.0, 1800.0).holds("web", "any", -5.0), "older tasks are free"
    history.replaced("web", "arn-2")
    cooling = history.cooling(1799.0, 1800.0)
    assert cooling.holds("web", "arn-2", 5.0) and not cooling.holds("web", "arn-3", 5.0)
    assert cooling.renamed({"arn-2": "t-9"}).holds("web", "t-9", 5.0)
    assert not cooling.renamed({}).holds("web", "t-9", 5.0), "a replacement no longer running"
    assert not history.cooling(1800.0, 1800.0).holds("web", "arn-2", 5.0)
    history.forget(1800.0, 1800.0)
    assert history.replacements == {} and history.unmatched == {}


def test_no_move_when_ecs_may_put_the_replacement_on_another_hot_instance() -> None:
    # spread by instance: i-1 and i-2 tie (no web task); i-1 is made hot by another service
    cluster, _ = cluster_with([3, 0], free=1)
    other = cluster.add_service(
        ServiceSpec("batch", 3, 1024, 1024, 50, 200, (Strategy("binpack", "cpu"),), cpu_use=1.0)
    )
    i1 = cluster.instances["i-1"]
    for _ in range(3):
        task = cluster.start_task(other, i1, i1.az, 0.0)
        task.running_at = task.healthy_at = 0.0
        cluster.mark_running(task)
    policy = RebalancePolicy(hot_threshold=0.7)
    plan = plan_moves(cluster.instances, cluster.services, NOW, policy)
    assert all(m.destination != "i-1" for m in plan.moves)
    assert not any(m.service == "web" for m in plan.moves), "i-1 or i-2: half the time hot"


def test_no_move_mid_deployment_or_while_a_replacement_is_starting() -> None:
    _, state = cluster_with([4, 1])
    state.revision += 1
    assert not any(movable(t, state, NOW, RebalancePolicy()) for t in state.tasks.values())
    state.revision -= 1
    next(iter(state.tasks.values())).healthy_at = NOW + 30  # a replacement not yet healthy
    assert not any(movable(t, state, NOW, RebalancePolicy()) for t in state.tasks.values())


def test_the_hourly_budget_is_respected() -> None:
    cluster, _ = cluster_with([4, 1])
    policy = RebalancePolicy(max_moves_per_hour=5)
    assert (
        plan_moves(cluster.instances, cluster.services, NOW, policy, moves_last_hour=5).moves == ()
    )


# -- properties -----------------------------------------------------------------------------


@st.composite
def clusters(draw: st.DrawFn) -> tuple[Cluster, RebalancePolicy]:
    cluster = Cluster()
    count = draw(st.integers(1, 8))
    for n in range(count):
        inst = cluster.launch("p", M5, f"us-east-1{'abc'[n % 3]}", "spot", 0.07, 0.0, id=f"i-{n}")
        cluster.register(inst, 0.0)
    rng = random.Random(draw(st.integers(0, 1000)))
    scheduler = Scheduler(cluster, rng, ["us-east-1a", "us-east-1b", "us-east-1c"])
    for s in range(draw(st.integers(1, 4))):
        spec = ServiceSpec(
            f"svc-{s}",
            draw(st.integers(1, 8)),
            draw(st.sampled_from([256, 512, 1024])),
            512,
            draw(st.sampled_from([0, 50, 100])),
            200,
            draw(st.sampled_from([SPREAD, (Strategy("binpack", "cpu"),)])),
            cpu_use=draw(st.floats(0.2, 1.5)),
        )
        state = cluster.add_service(spec)
        scheduler.reconcile(state, 0.0)
        for task in state.tasks.values():
            task.running_at = task.healthy_at = 0.0
            cluster.mark_running(task)
    policy = RebalancePolicy(
        hot_threshold=draw(st.floats(0.3, 0.9)),
        max_moves=draw(st.integers(0, 5)),
        max_moves_per_hour=draw(st.integers(0, 10)),
    )
    return cluster, policy


@settings(max_examples=150, deadline=None)
@given(clusters(), st.integers(0, 10))
def test_plans_respect_budgets_health_and_converge(
    drawn: tuple[Cluster, RebalancePolicy], moved: int
) -> None:
    cluster, policy = drawn
    plan = plan_moves(cluster.instances, cluster.services, NOW, policy, moves_last_hour=moved)
    assert len(plan.moves) <= max(0, min(policy.max_moves, policy.max_moves_per_hour - moved))
    assert len({m.service for m in plan.moves}) == len(plan.moves), "one move per service"
    for move in plan.moves:
        state = cluster.services[move.service]
        healthy = sum(t.healthy(NOW) for t in state.tasks.values())
        need = -(-state.spec.desired * state.spec.min_healthy_percent // 100)
        room = healthy + 1 <= state.spec.desired * state.spec.max_percent // 100
        if move.surge:  # the replacement first (whenever maximumPercent leaves room)
            assert room
        else:
            assert not room and healthy - 1 >= need, "never below minimumHealthyPercent"
        assert move.destination != move.source
    # apply the plan as ECS would (replacement where predicted, then the stop) and plan again:
    # the replacements are new, the services have a move in their cooldown: nothing new for them
    for move in plan.moves:
        state = cluster.services[move.service]
        cluster.stop_task(state.tasks[move.task], NOW, "rebalance")
        dest = cluster.instances[move.destination]
        cluster.start_task(state, dest, dest.az, NOW)
    later = NOW + policy.min_task_age
    last = Cooling(since={m.service: NOW for m in plan.moves})
    for state in cluster.services.values():
        for task in state.tasks.values():
            task.running_at = task.healthy_at = min(task.healthy_at, NOW)
            if task.state != "STOPPED":
                cluster.mark_running(task)
    again = plan_moves(cluster.instances, cluster.services, later, policy, cooling=last)
    moved_tasks = {
        t
        for s in cluster.services.values()
        for t, task in s.tasks.items()
        if task.created_at >= NOW
    }
    assert not any(m.task in moved_tasks for m in again.moves), "no ping-pong"


def test_load_and_hot_detection() -> None:
    cluster, _ = cluster_with([4, 3, 0], free=0)
    loads = sorted(round(load(i), 2) for i in cluster.instances.values())
    assert loads == [0.0, 0.75, 1.0]
    hot = hot_instances(cluster.instances.values(), RebalancePolicy(hot_threshold=0.8))
    assert [i.id for i in hot] == ["i-0"]


def test_a_service_with_a_task_on_a_draining_instance_is_left_alone() -> None:
    cluster, state = cluster_with([4, 1])
    cluster.drain(cluster.instances["i-1"])  # ECS is already moving web's task off i-1
    assert not any(movable(t, state, NOW, RebalancePolicy()) for t in state.tasks.values())
    assert plan_moves(cluster.instances, cluster.services, NOW, RebalancePolicy()).moves == ()


def test_an_instance_hot_only_by_deviation_is_cooled_too() -> None:
    cluster, _ = cluster_with([3], free=3)  # 75%: under 80%, far above the mean
    plan = plan_moves(cluster.instances, cluster.services, NOW, RebalancePolicy(deviation=0.3))
    assert plan.hot == ("i-0",) and len(plan.moves) == 1


def test_no_moves_while_a_disruption_is_under_way() -> None:
    cluster, state = cluster_with([4, 1], free=3)
    cluster.drain(cluster.instances["i-4"])  # an instance on its way out (no web task on it)
    plan = plan_moves(cluster.instances, cluster.services, NOW, RebalancePolicy())
    assert plan.moves == () and plan.hot == ("i-0",)
    assert plan.reasons == ("paused: 1 instance(s) draining",)
    cluster.instances["i-4"].status = "ACTIVE"
    state.unplaced = 2  # the scheduler could not place tasks: room is short
    plan = plan_moves(cluster.instances, cluster.services, NOW, RebalancePolicy())
    assert plan.moves == () and plan.reasons[0].startswith("paused: tasks that could not be placed")
    state.unplaced = 0
    assert plan_moves(cluster.instances, cluster.services, NOW, RebalancePolicy()).moves


def test_no_replacement_onto_an_idle_instance() -> None:
    # spread by instance: ECS would start the replacement on an instance running no service
    # task, which idle scale-in would otherwise give back
    cluster, _ = cluster_with([4, 1], free=0)
    for n in (2, 3):
        idle = cluster.launch("p", M5, "us-east-1a", "spot", 0.07, 0.0, id=f"i-{n}")
        cluster.register(idle, 0.0)
    assert plan_moves(cluster.instances, cluster.services, NOW, RebalancePolicy()).moves == ()
    plan = plan_moves(cluster.instances, cluster.services, NOW, RebalancePolicy(spare_idle=False))
    assert [m.destination in {"i-2", "i-3"} for m in plan.moves] == [True]


def test_no_replacement_onto_a_leaving_instance() -> None:
    cluster, _ = cluster_with([4, 1])  # i-2 and i-3 tie for the replacement
    args = (cluster.instances, cluster.services, NOW, RebalancePolicy())
    assert plan_moves(*args, leaving={"i-2"}).moves == ()
    assert plan_moves(*args, leaving={"i-2"}, seed=1).moves == ()
    (move,) = plan_moves(*args, leaving=set()).moves
    assert move.destination in {"i-2", "i-3"}


def test_a_hot_instance_that_a_move_empties_comes_first() -> None:
    cluster, _ = cluster_with([4], free=0)  # i-0 at 100%
    big = InstanceType("m5.2xlarge", 8, 32768, 0.384)
    lone = cluster.add_service(ServiceSpec("lone", 1, 3584, 1024, 0, 200, SPREAD, cpu_use=1.0))
    one = cluster.launch("p", M5, "us-east-1a", "spot", 0.07, 0.0, id="i-1")
    cluster.register(one, 0.0)
    _run(cluster, lone, one)  # 87.5%: hot, its only task
    base = cluster.add_service(ServiceSpec("base", 1, 128, 128, 100, 100, SPREAD))
    dest = cluster.launch("p", big, "us-east-1a", "spot", 0.07, 0.0, id="i-2")
    cluster.register(dest, 0.0)
    _run(cluster, base, dest)
    policy = RebalancePolicy(max_moves=1)
    (move,) = plan_moves(cluster.instances, cluster.services, NOW, policy).moves
    assert (move.source, move.destination) == ("i-1", "i-2"), "i-1 can then be given back"
    plan = plan_moves(cluster.instances, cluster.services, NOW, replace(policy, spare_idle=False))
    assert plan.moves[0].source == "i-0", "hottest first"


@settings(max_examples=300, deadline=None)
@given(cases(), st.data())
def test_moves_never_need_new_capacity_nor_land_on_instances_given_back(
    case: tuple[Cluster, RebalancePolicy, Cooling, int, int], data: st.DataObject
) -> None:
    cluster, drawn, cooling, moved, seed = case
    policy = replace(drawn, spare_idle=True)
    ids = sorted(cluster.instances)
    leaving = data.draw(st.sets(st.sampled_from(ids)), label="leaving")
    idle = {i for i, inst in cluster.instances.items() if not inst.busy()}
    room = {i: (inst.free_cpu, inst.free_mem) for i, inst in cluster.instances.items()}
    plan = plan_moves(
        cluster.instances, cluster.services, NOW, policy, moved, seed, cooling, leaving
    )
    assert len(plan.moves) <= max(0, min(policy.max_moves, policy.max_moves_per_hour - moved))
    for move in plan.moves:
        dest = cluster.instances[move.destination]
        assert dest.status == "ACTIVE" and move.destination not in leaving | idle
        spec = cluster.services[move.service].spec
        cpu, mem = room[move.destination]
        assert cpu >= spec.cpu and mem >= spec.memory, "room on an instance already running"
        room[move.destination] = (cpu - spec.cpu, mem - spec.memory)
