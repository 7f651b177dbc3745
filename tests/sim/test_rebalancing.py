"""Task rebalancing in the simulator: the built-in deploy-skew scenario, the accounting of
minimum-health violations, and surge moves carried out as the production controller does."""

from __future__ import annotations

import pytest

from scaler.ecs.cluster import InstanceType, ServiceSpec, Strategy, Task
from scaler.plan.rebalance import RebalancePolicy
from scaler.sim.builtin import builtin
from scaler.sim.engine import Sim
from scaler.sim.policies import POLICIES, ScalerPolicy
from scaler.sim.scenario import Pool, Scenario

A = "us-east-1a"
XLARGE = InstanceType("m5.xlarge", 4, 16384, 0.192)


class Watched(ScalerPolicy):
    """The scaler's policy, recording every task its rebalancer stops."""

    def __init__(self) -> None:
        super().__init__()
        self.stopped: list[tuple[float, Task]] = []
        self.started: list[Task] = []  # every task ECS started, in order
        self.began: list[tuple[float, str]] = []  # every move the rebalancer began

    def start(self, sim: Sim) -> None:
        super().start(sim)
        stop = sim.stop_task
        observe = sim.cluster._observe

        def watched(task: Task, reason: str) -> None:
            if reason == "rebalance":
                self.stopped.append((sim.now, task))
            stop(task, reason)

        def seen(kind: str, obj: object) -> None:
            if kind == "start" and isinstance(obj, Task):
                self.started.append(obj)
            observe(kind, obj)

        def record(service: str, now: float) -> None:
            self.began.append((now, service))
            remember(service, now)

        sim.stop_task = watched  # type: ignore[method-assign]
        sim.cluster._observe = seen
        remember = self.rebalancer.history.record
        self.rebalancer.history.record = record  # type: ignore[method-assign]

    def replacements(self) -> dict[str, float]:
        """Task id -> the time of the move it replaced: the first task of the moved service
        that ECS started once the move began (for a surge, the extra task)."""
        found: dict[str, float] = {}
        for at, moved in self.stopped:
            began = max(t for t, s in self.began if s == moved.service.name and t <= at)
            first = next(
                t
                for t in self.started
                if t.service.name == moved.service.name and t.created_at >= began
            )
            found[first.id] = began
        return found


@pytest.mark.slow
@pytest.mark.parametrize("seed", [7, 11, 23])
def test_deploy_skew_cools_hot_instances_safely(seed: int) -> None:
    scenario = builtin("deploy-skew", seed=seed)
    native = Sim(scenario, POLICIES["ecs-native"](), seed).run()
    policy = Watched()
    scaler = Sim(scenario, policy, seed).run()
    assert scaler["hot_instance_share"] < native["hot_instance_share"]
    assert scaler["min_healthy_violations"] == 0
    assert scaler["availability"] >= native["availability"] - 0.0005
    cooldown = policy.rebalance.task_cooldown
    replaced = policy.replacements()
    for at, task in policy.stopped:
        # the replacement of a move is not moved again within the cooldown (no ping-pong)
        assert task.id not in replaced or at - replaced[task.id] >= cooldown
    assert policy.stopped, "the rebalancer made moves"


def _one_hot_instance(min_healthy: int, max_percent: int = 200) -> Scenario:
    """Four 1024-unit web tasks (cpu_use 0.9) on the first of three m5.xlarge."""
    web = ServiceSpec(
        "web",
        4,
        1024,
        1024,
        min_healthy,
        max_percent,
        (Strategy("spread", "instanceId"),),
        cpu_use=0.9,
        start_delay=10,
        health_delay=20,
    )
    pools = (Pool("spot-a", "spot", XLARGE.name, A, price=0.07, initial=3),)
    return Scenario("hot", 1.0, {XLARGE.name: XLARGE}, pools, (web,), ())


def _pile_on_first(sim: Sim) -> None:
    state = sim.cluster.services["web"]
    first = sorted(sim.cluster.instances.values(), key=lambda i: i.id)[0]
    for task in list(state.tasks.values()):
        sim.cluster.stop_task(task, 0.0, "setup")
    for _ in range(4):
        task = sim.cluster.start_task(state, first, first.az, 0.0)
        task.running_at = task.healthy_at = 0.0
        sim.cluster.mark_running(task)
        sim.acct.task_healthy(task)


@pytest.mark.parametrize(
    ("min_healthy", "max_percent", "surge"), [(50, 100, False), (50, 200, True), (100, 200, True)]
)
def test_a_hot_instance_is_cooled_without_going_below_minimum_health(
    min_healthy: int, max_percent: int, surge: bool
) -> None:
    policy = ScalerPolicy(rebalance=RebalancePolicy(min_task_age=60))
    sim = Sim(_one_hot_instance(min_healthy, max_percent), policy, seed=1)
    sim.begin()
    _pile_on_first(sim)
    sim.step_until(3600)
    result = sim.finish()
    first = sorted(sim.cluster.instances.values(), key=lambda i: i.id)[0]
    assert len(first.tasks) < 4
    assert result["min_healthy_violations"] == 0
    assert sim.cluster.services["web"].spec.desired == 4  # a surge is always undone
    assert (sim.api_calls["UpdateService"] > 0) == surge  # replacement first when room allows


def test_a_stop_below_minimum_health_is_counted() -> None:
    sim = Sim(_one_hot_instance(100), POLICIES["ecs-native"](), seed=1)
    sim.begin()
    _pile_on_first(sim)
    task = next(iter(sim.cluster.services["web"].tasks.values()))
    sim.stop_task(task, "rebalance")
    assert sim.acct.min_healthy_violations == 1
