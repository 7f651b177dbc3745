"""``deregistration_delay``: a stopped task stays DEACTIVATING that long, holding its room and
keeping its instance from being terminated, before it is STOPPED."""

from __future__ import annotations

from typing import Any

import pytest

from scaler.ecs.cluster import DEACTIVATING, DRAINING, STOPPED, Instance, Task
from scaler.sim.engine import Policy, Sim
from scaler.sim.policies import EcsNative, EcsScaler
from scaler.sim.scenario import Scenario, ScenarioError, from_dict
from tests.sim.shipped_helpers import run_scaler
from tests.sim.workload_scenarios import base

DELAY = 300.0


def _raw(delay: float = DELAY) -> dict[str, object]:
    raw = base(hours=1.0)
    for svc in raw["services"]:
        svc["deregistration_delay"] = delay
    return raw


def test_a_stopped_task_deactivates_then_stops() -> None:
    sim = Sim(from_dict(_raw()), EcsNative(), 2)
    sim.begin()
    sim.step_until(10)
    task = next(iter(sim.cluster.services["web"].tasks.values()))
    inst = task.instance
    assert inst is not None
    free = inst.free_cpu
    sim.stop_task(task, "test")
    assert task.state == DEACTIVATING
    assert task.id not in sim.cluster.services["web"].tasks  # not running, not healthy
    assert task.id in inst.tasks and inst.free_cpu == free  # still holds its room
    sim.step_until(10 + DELAY - 1)
    assert task.state == DEACTIVATING
    sim.step_until(10 + DELAY + 1)
    assert task.state == STOPPED
    assert task.id not in inst.tasks


def test_no_delay_stops_at_once() -> None:
    sim = Sim(from_dict(_raw(0)), EcsNative(), 2)
    sim.begin()
    task = next(iter(sim.cluster.services["web"].tasks.values()))
    sim.stop_task(task, "test")
    assert task.state == STOPPED


class Watched(Sim):
    """The engine, noting every instance terminated while a task on it still deregisters (a
    spot reclaim at its notice's end aside)."""

    def __init__(self, scenario: Scenario, policy: Policy, seed: int, **options: Any) -> None:
        super().__init__(scenario, policy, seed, **options)
        self.early: list[str] = []
        terminate = self.cluster.terminate

        def watch(inst: Instance, now: float) -> list[Task]:
            deactivating = any(t.state == DEACTIVATING for t in inst.tasks.values())
            if deactivating and inst.id not in self.doomed:
                self.early.append(inst.id)
            return terminate(inst, now)

        self.cluster.terminate = watch  # type: ignore[method-assign]


def _scaled_in() -> Scenario:
    """Demand drops to a quarter at a minute."""
    raw = _raw()
    raw["events"] = [{"at": 60, "type": "scale", "factor": 0.25}]
    raw["hours"] = 1.5
    return from_dict(raw)


@pytest.mark.parametrize("policy", ["ecs-native", "ecs-scaler"])
def test_no_baseline_terminates_an_instance_with_deactivating_tasks(policy: str) -> None:
    """Demand drops to a quarter: the baselines scale in, but no instance goes while a task on
    it is still deregistering."""
    sim = Watched(_scaled_in(), EcsNative() if policy == "ecs-native" else EcsScaler(), 4)
    sim.run()
    assert len(sim.terminated) > 0, "scaled in"
    assert sim.early == []


def test_the_shipped_scaler_terminates_no_instance_with_deactivating_tasks() -> None:
    """The same drop with consolidation on, the shipped scaler's way to scale in."""
    consolidating = {
        "consolidate": True,
        "consolidate_after_start": 600,
        "consolidate_quiet_after": 600,
    }  # a short run
    run = run_scaler(_scaled_in(), 4, consolidating, engine=Watched)
    assert len(run.sim.terminated) > 0, "scaled in"
    assert isinstance(run.sim, Watched) and run.sim.early == []


def test_draining_instance_waits_for_deregistration() -> None:
    sim = Sim(from_dict(_raw()), EcsNative(), 2)
    sim.begin()
    sim.step_until(60)
    inst = next(i for i in sim.cluster.instances.values() if i.tasks)
    sim.drain([inst])
    sim.step_until(sim.now + 200)
    assert inst.status == DRAINING and inst.tasks
    assert all(t.state == DEACTIVATING for t in inst.tasks.values())


def test_validation() -> None:
    with pytest.raises(ScenarioError) as caught:
        from_dict(_raw(-5))
    assert caught.value.problems[0] == (
        "services[0].deregistration_delay: must be at least 0 seconds (got -5)"
    )
