"""Daemon services (``scheduling = "daemon"``): one task on every ACTIVE instance, placed before
replica tasks, not a deficit for the planners, stopped last when the instance drains."""

from __future__ import annotations

from typing import Any

import pytest

from scaler.ecs.cluster import ACTIVE, DRAINING, STOPPED
from scaler.sim.engine import Sim
from scaler.sim.policies import POLICIES, ScalerPolicy, capacity_snapshot
from scaler.sim.scenario import ScenarioError, from_dict
from tests.sim.workload_scenarios import base

AGENT = {"name": "agent", "scheduling": "daemon", "cpu": 256, "memory": 512}


def _sim(policy: str = "scaler", **top: Any) -> Sim:
    raw = base(**top)
    raw["services"].append(dict(AGENT))
    return Sim(from_dict(raw), POLICIES[policy](), 5)


def _daemons(sim: Sim) -> dict[str, int]:
    """Live daemon tasks per instance."""
    return {
        i.id: sum(1 for t in i.tasks.values() if t.service.name == "agent" and t.state != STOPPED)
        for i in sim.cluster.instances.values()
    }


def test_one_daemon_task_on_every_instance_from_the_start() -> None:
    sim = _sim()
    sim.begin()
    assert set(_daemons(sim).values()) == {1}
    assert sim.cluster.services["agent"].unplaced == 0


def test_a_new_instance_gets_its_daemon_task_at_registration() -> None:
    sim = _sim()
    sim.begin()
    sim.launch("spot-m5.xlarge-us-east-1a", 1, "test")
    sim.step_until(200)  # registered by now (boot delay 60-120 s)
    assert len(sim.cluster.instances) == 9
    assert set(_daemons(sim).values()) == {1}


def test_daemon_tasks_are_placed_before_replica_tasks() -> None:
    """An instance that registers while replica tasks wait for room takes its daemon task first,
    however much the replicas want."""
    raw = base()
    raw["services"] = [
        {"name": "big", "desired": 12, "cpu": 3968, "memory": 4096},
        dict(AGENT),
    ]
    sim = Sim(from_dict(raw), ScalerPolicy(), 5)
    sim.begin()
    sim.step_until(900)
    assert all(i.status == ACTIVE for i in sim.cluster.instances.values())
    assert set(_daemons(sim).values()) == {1}
    # the replicas took the rest: 3968 + 256 = 4096 cpu units, one replica per instance
    assert sum(1 for t in sim.cluster.services["big"].tasks.values()) == 12


def test_daemon_is_no_deficit_but_reserves_room_on_new_instances() -> None:
    sim = _sim()
    sim.begin()
    snap = capacity_snapshot(sim)
    assert "agent" not in {s.name for s in snap.services}
    pool = next(p for p in snap.pools if p.name == "spot-m5.xlarge-us-east-1a")
    assert (pool.cpu, pool.memory) == (4096 - 256, 16384 - 512)


def test_daemon_task_stops_last_when_its_instance_drains() -> None:
    sim = _sim()
    sim.begin()
    sim.step_until(60)
    inst = next(i for i in sim.cluster.instances.values() if len(i.tasks) > 1)
    sim.drain([inst])
    sim.step_until(sim.now + 3)
    assert inst.status == DRAINING
    assert any(t.service.name == "agent" for t in inst.tasks.values())  # replicas still there
    sim.step_until(sim.now + 600)
    assert not inst.tasks  # replicas moved, then the daemon task stopped


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_every_policy_runs_with_a_daemon(policy: str) -> None:
    sim = _sim(policy, hours=0.5, events=[{"at": 300, "type": "scale", "factor": 2.0}])
    result = sim.run()
    assert result["availability"] > 0.8
    assert set(_daemons(sim).values()) <= {1}


def test_idle_instances_with_only_a_daemon_task_are_scaled_in() -> None:
    sim = _sim(hours=1.5, events=[{"at": 60, "type": "scale", "factor": 0.25}])
    sim.run()
    assert len(sim.cluster.instances) < 8


def test_daemon_validation_names_the_path() -> None:
    raw = base()
    raw["services"].append({**AGENT, "scheduling": "deamon"})
    with pytest.raises(ScenarioError) as caught:
        from_dict(raw)
    assert caught.value.problems == [
        "services[2].scheduling: unknown value 'deamon'; did you mean 'daemon'?"
    ]


def test_a_replica_service_still_needs_desired() -> None:
    raw = base()
    raw["services"].append({"name": "x", "cpu": 256, "memory": 512})
    with pytest.raises(ScenarioError) as caught:
        from_dict(raw)
    assert caught.value.problems == ["services[2].desired: required but missing"]
