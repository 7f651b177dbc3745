"""The built-in scenarios of a real fleet's shape: ``fleet-250`` and ``big-tasks``."""

from __future__ import annotations

import pytest

from scaler.cli import BUILTINS
from scaler.ecs.cluster import STOPPED
from scaler.sim.builtin import NAMES, builtin
from scaler.sim.engine import Sim
from scaler.sim.policies import POLICIES
from scaler.sim.scenario import from_dict, to_dict


def test_both_are_built_in() -> None:
    assert {"fleet-250", "big-tasks"} <= set(NAMES)
    assert set(BUILTINS) == set(NAMES)  # what `scaler simulate --scenario` accepts


def test_fleet_250_has_the_shape_of_a_large_fleet() -> None:
    s = builtin("fleet-250", seed=3)
    replicas = [v for v in s.services if not v.daemon]
    assert len(replicas) == 30
    assert len(s.azs) == 3
    assert 180 <= sum(p.initial for p in s.pools) <= 220
    families = {t.split(".")[0] for t in s.instance_types}
    assert {"c4", "m4", "c5", "m5"} <= families
    assert min(v.cpu for v in replicas) == 256 and max(v.cpu for v in replicas) == 4096
    assert min(v.memory for v in replicas) == 512 and max(v.memory for v in replicas) == 16384
    assert any(v.daemon for v in s.services)
    assert from_dict(to_dict(s)) == s  # writable as a scenario file


def test_fleet_250_peaks_near_250_instances() -> None:
    sim = Sim(builtin("fleet-250", seed=3), POLICIES["scaler"](), 3)
    sim.begin()
    peak = 0
    while sim.now < sim.horizon:
        sim.step_until(sim.now + 300)
        peak = max(peak, len(sim.cluster.instances))
    assert 225 <= peak <= 275


def test_big_tasks_fit_only_the_larger_types() -> None:
    s = builtin("big-tasks", seed=3)
    cheapest = min(s.instance_types.values(), key=lambda t: t.on_demand_price)
    big = [v for v in s.services if v.memory > cheapest.memory_mib]
    assert len(big) >= 3
    for v in big:
        fits = [t for t in s.instance_types.values() if t.memory_mib >= v.memory]
        assert fits and cheapest not in fits


@pytest.mark.parametrize("policy", sorted(POLICIES))
@pytest.mark.parametrize("name", ["fleet-250", "big-tasks"])
def test_every_policy_runs_them(name: str, policy: str) -> None:
    result = Sim(builtin(name, seed=2).with_hours(0.5), POLICIES[policy](), 2).run()
    assert 0.5 < result["availability"] <= 1.0


def test_the_scaler_places_every_big_task() -> None:
    sim = Sim(builtin("big-tasks", seed=2), POLICIES["scaler"](), 2)
    sim.run()
    for state in sim.cluster.services.values():
        live = [t for t in state.tasks.values() if t.state != STOPPED]
        assert len(live) >= state.spec.desired, state.spec.name
