"""Daemon services (``scheduling = "daemon"``): one task on every ACTIVE instance, placed before
replica tasks, not a deficit for the shipped scaler, stopped last when the instance drains."""

from __future__ import annotations

from typing import Any

import pytest

from scaler.ecs.cluster import ACTIVE, DRAINING, STOPPED
from scaler.sim.engine import Sim
from scaler.sim.policies import EcsNative, EcsScaler
from scaler.sim.scenario import Scenario, ScenarioError, from_dict
from tests.sim.shipped_helpers import run_scaler
from tests.sim.workload_scenarios import base

AGENT = {"name": "agent", "scheduling": "daemon", "cpu": 256, "memory": 512}


def _scenario(**top: Any) -> Scenario:
    raw = base(**top)
    raw["services"].append(dict(AGENT))
    return from_dict(raw)


def _sim(**top: Any) -> Sim:
    """The ECS model with a daemon, under the Auto Scaling baseline (the model is the point)."""
    return Sim(_scenario(**top), EcsNative(), 5)


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


def _big(hours: float = 1.0) -> Scenario:
    """12 replicas of 3968 CPU units: none fits an m5.xlarge beside its daemon task, two fit an
    m5.2xlarge beside it."""
    raw = base(hours=hours)
    raw["services"] = [
        {"name": "big", "desired": 12, "cpu": 3968, "memory": 4096},
        dict(AGENT),
    ]
    return from_dict(raw)


def test_daemon_tasks_are_placed_before_replica_tasks() -> None:
    """An instance that registers while replica tasks wait for room takes its daemon task first,
    however much the replicas want."""
    sim = Sim(_big(), EcsNative(), 5)
    sim.begin()
    sim.launch("spot-m5.2xlarge-us-east-1a", 6, "test")
    sim.step_until(900)
    assert all(i.status == ACTIVE for i in sim.cluster.instances.values())
    assert set(_daemons(sim).values()) == {1}
    # the replicas took the rest: 256 + 2 x 3968 = 8192 cpu units, two replicas per m5.2xlarge
    assert sum(1 for t in sim.cluster.services["big"].tasks.values()) == 12


def test_the_scaler_launches_room_the_replicas_fit_beside_the_daemon() -> None:
    """12 replicas of 3968 CPU units fit no m5.xlarge beside the 256-unit daemon task: the
    scaler sizes new room less the daemon's reservation and launches m5.2xlarge only (it
    launched 42 useless m5.xlarge when it did not)."""
    run = run_scaler(_big(hours=0.5), 5)
    assert sum(1 for t in run.sim.cluster.services["big"].tasks.values()) == 12
    assert len(run.sim.cluster.instances) <= 8 + 6


def test_daemon_is_no_deficit_for_the_scaler() -> None:
    """Every instance runs its daemon task and the replicas fit: the shipped scaler launches
    nothing."""
    run = run_scaler(_scenario(hours=0.25), 5)
    assert not [r for r in run.trace if r["what"] == "launch"]
    assert set(_daemons(run.sim).values()) == {1}


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


DOUBLED = {"hours": 0.5, "events": [{"at": 300, "type": "scale", "factor": 2.0}]}


@pytest.mark.parametrize("policy", ["ecs-native", "ecs-scaler"])
def test_every_baseline_runs_with_a_daemon(policy: str) -> None:
    made = EcsNative() if policy == "ecs-native" else EcsScaler()
    sim = Sim(_scenario(**DOUBLED), made, 5)
    result = sim.run()
    assert result["availability"] > 0.8
    assert set(_daemons(sim).values()) <= {1}


def test_the_shipped_scaler_runs_with_a_daemon() -> None:
    run = run_scaler(_scenario(**DOUBLED), 5)
    assert run.figures["availability"] > 0.8
    assert set(_daemons(run.sim).values()) <= {1}


def test_idle_instances_with_only_a_daemon_task_are_consolidated() -> None:
    """The shipped scaler scales in by consolidation: an instance left with its daemon task
    alone is empty to it."""
    scenario = _scenario(hours=1.5, events=[{"at": 60, "type": "scale", "factor": 0.25}])
    # a short quiet period after the start: the run is shorter than the default's
    run = run_scaler(
        scenario,
        5,
        {"consolidate": True, "consolidate_after_start": 600, "consolidate_quiet_after": 600},
    )
    assert len(run.sim.cluster.instances) < 8
    assert run.figures["availability"] > 0.99


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
