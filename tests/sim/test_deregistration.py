"""``deregistration_delay``: a stopped task stays DEACTIVATING that long, holding its room and
keeping its instance from being terminated, before it is STOPPED."""

from __future__ import annotations

import pytest

from scaler.ecs.cluster import DEACTIVATING, DRAINING, STOPPED
from scaler.sim.engine import Sim
from scaler.sim.policies import POLICIES, ScalerPolicy
from scaler.sim.scenario import ScenarioError, from_dict
from tests.sim.workload_scenarios import base

DELAY = 300.0


def _raw(delay: float = DELAY) -> dict[str, object]:
    raw = base(hours=1.0)
    for svc in raw["services"]:
        svc["deregistration_delay"] = delay
    return raw


def test_a_stopped_task_deactivates_then_stops() -> None:
    sim = Sim(from_dict(_raw()), ScalerPolicy(), 2)
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
    sim = Sim(from_dict(_raw(0)), ScalerPolicy(), 2)
    sim.begin()
    task = next(iter(sim.cluster.services["web"].tasks.values()))
    sim.stop_task(task, "test")
    assert task.state == STOPPED


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_no_policy_terminates_an_instance_with_deactivating_tasks(policy: str) -> None:
    """Demand drops to a quarter: every policy scales in, but no instance goes while a task on
    it is still deregistering."""
    raw = _raw()
    raw["events"] = [{"at": 60, "type": "scale", "factor": 0.25}]
    raw["hours"] = 1.5
    sim = Sim(from_dict(raw), POLICIES[policy](), 4)
    sim.begin()
    early: list[str] = []
    original = sim.cluster.terminate

    def watch(inst, now):  # type: ignore[no-untyped-def]
        if any(t.state == DEACTIVATING for t in inst.tasks.values()) and inst.id not in sim.doomed:
            early.append(inst.id)
        return original(inst, now)

    sim.cluster.terminate = watch  # type: ignore[method-assign]
    sim.step_until(sim.horizon)
    assert early == []


def test_draining_instance_waits_for_deregistration() -> None:
    sim = Sim(from_dict(_raw()), ScalerPolicy(), 2)
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
