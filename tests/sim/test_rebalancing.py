"""Task rebalancing in the simulator, by the shipped scaler (``SCALER_TASK_REBALANCE=true``): the
built-in deploy-skew scenario, the accounting of minimum-health violations, and surge moves."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

from scaler.ecs.cluster import InstanceType, ServiceSpec, Strategy, Task
from scaler.sim.builtin import builtin
from scaler.sim.engine import Policy, Sim
from scaler.sim.policies import EcsNative
from scaler.sim.scenario import Pool, Scenario
from tests.sim.shipped_helpers import ShippedRun, run_scaler

A = "us-east-1a"
XLARGE = InstanceType("m5.xlarge", 4, 16384, 0.192)
REBALANCE = {"task_rebalance": True}


class Watched(Sim):
    """The engine, recording every task ECS started, in order."""

    def __init__(self, scenario: Scenario, policy: Policy, seed: int, **options: Any) -> None:
        super().__init__(scenario, policy, seed, **options)
        self.started: list[Task] = []
        observe = self.cluster._observe

        def seen(kind: str, obj: object) -> None:
            if kind == "start" and isinstance(obj, Task):
                self.started.append(obj)
            observe(kind, obj)

        self.cluster._observe = seen


def _moves(run: ShippedRun) -> list[tuple[float, str, str, float]]:
    """(when stopped, task, service, when its move began) of every rebalancing stop: a surge
    move begins at its desired count's rise, a stop-first move at its stop."""
    surging: dict[str, float] = {}
    moves = []
    for r in run.trace:
        if r["what"] == "set_desired" and r["after"] == r["before"] + 1:
            surging[r["service"]] = r["t"]
        elif r["what"] == "stop_task" and r["why"] == "rebalance":
            began = surging.pop(r["service"], r["t"])
            moves.append((r["t"], r["task"], r["service"], began))
    return moves


def _replacements(run: ShippedRun) -> dict[str, float]:
    """Task id -> the time of the move it replaced: the first task of the moved service that
    ECS started once the move began (for a surge, the extra task)."""
    assert isinstance(run.sim, Watched)
    found: dict[str, float] = {}
    for _, _, service, began in _moves(run):
        first = next(
            (t for t in run.sim.started if t.service.name == service and t.created_at >= began),
            None,
        )
        if first is not None:
            found[first.id] = began
    return found


@cache
def _deploy_skew(seed: int) -> tuple[dict[str, Any], ShippedRun]:
    """The baseline's figures and the shipped scaler's run, on deploy-skew at ``seed``."""
    scenario = builtin("deploy-skew", seed=seed)
    native = Sim(scenario, EcsNative(), seed).run()
    return native, run_scaler(scenario, seed, REBALANCE, engine=Watched)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [7, 11, 23])
def test_deploy_skew_cools_hot_instances_without_ping_pong(seed: int) -> None:
    native, run = _deploy_skew(seed)
    scaler = run.figures
    assert scaler["hot_instance_share"] < native["hot_instance_share"]
    assert scaler["availability"] >= native["availability"] - 0.0005
    cooldown = run.settings.task_cooldown
    replaced = _replacements(run)
    moves = _moves(run)
    for at, task, _, _ in moves:
        # the replacement of a move is not moved again within the cooldown (no ping-pong)
        assert task not in replaced or at - replaced[task] >= cooldown
    assert moves, "the rebalancer made moves"


@pytest.mark.slow
@pytest.mark.parametrize("seed", [7, 11, 23])
def test_deploy_skew_moves_keep_minimum_health(seed: int) -> None:
    """A surge move stops the hot task only once the extra one is healthy (ECS says HEALTHY),
    not merely RUNNING."""
    _, run = _deploy_skew(seed)
    assert run.figures["min_healthy_violations"] == 0


def _one_hot_instance(min_healthy: int, max_percent: int = 200) -> Scenario:
    """Four 1024-unit web tasks (cpu_use 0.9) on the first of three m5.xlarge, each of which runs
    a small base task too (busy: the rebalancer leaves idle instances to be given back)."""
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
    base = ServiceSpec("base", 3, 128, 128, 100, 100, (Strategy("spread", "instanceId"),))
    pools = (Pool("spot-a", "spot", XLARGE.name, A, price=0.07, initial=3),)
    return Scenario("hot", 1.0, {XLARGE.name: XLARGE}, pools, (web, base), ())


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


class PiledOn(Sim):
    """The engine, its cluster starting with every web task on the first instance."""

    def _initial_state(self) -> None:
        super()._initial_state()
        _pile_on_first(self)


@pytest.mark.parametrize(
    ("min_healthy", "max_percent", "surge"), [(50, 100, False), (50, 200, True), (100, 200, True)]
)
def test_a_hot_instance_is_cooled_without_going_below_minimum_health(
    min_healthy: int, max_percent: int, surge: bool
) -> None:
    settings = {**REBALANCE, "task_min_age": 60}
    run = run_scaler(_one_hot_instance(min_healthy, max_percent), 1, settings, engine=PiledOn)
    sim, result = run.sim, run.figures
    first = sorted(sim.cluster.instances.values(), key=lambda i: i.id)[0]
    assert sum(t.service.name == "web" for t in first.tasks.values()) < 4
    assert result["min_healthy_violations"] == 0
    assert sim.cluster.services["web"].spec.desired == 4  # a surge is always undone
    assert (sim.api_calls["UpdateService"] > 0) == surge  # replacement first when room allows


def test_a_stop_below_minimum_health_is_counted() -> None:
    sim = Sim(_one_hot_instance(100), EcsNative(), seed=1)
    sim.begin()
    _pile_on_first(sim)
    task = next(iter(sim.cluster.services["web"].tasks.values()))
    sim.stop_task(task, "rebalance")
    assert sim.acct.min_healthy_violations == 1
