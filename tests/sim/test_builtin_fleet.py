"""The built-in scenarios of a real fleet's shape: ``fleet-250`` and ``big-tasks``."""

from __future__ import annotations

import pytest

from scaler.cli import BUILTINS, EXTRA_POLICIES, POLICY_NAMES
from scaler.ecs.cluster import STOPPED
from scaler.sim.builtin import NAMES, builtin
from scaler.sim.cloud.shipped import run_shipped
from scaler.sim.engine import Sim
from scaler.sim.run import simulate
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
    """It peaked at 300 at seed 3 while new instances were sized without the log agent's
    reservation and each scale-out was launched for in full beside the free room; 278 with quiet
    capacity cycles (cycles, and so launches and terminations, land at other moments)."""
    peak = [0]

    def probe(sim: Sim) -> None:
        peak[0] = max(peak[0], len(sim.cluster.instances))
        sim.at(sim.now + 300, probe, sim)

    run_shipped(builtin("fleet-250", seed=3), 3, capacity=True, prepare=probe)
    assert 225 <= peak[0] <= 280


def test_big_tasks_fit_only_the_larger_types() -> None:
    s = builtin("big-tasks", seed=3)
    cheapest = min(s.instance_types.values(), key=lambda t: t.on_demand_price)
    big = [v for v in s.services if v.memory > cheapest.memory_mib]
    assert len(big) >= 3
    for v in big:
        fits = [t for t in s.instance_types.values() if t.memory_mib >= v.memory]
        assert fits and cheapest not in fits


@pytest.mark.parametrize("name", ["fleet-250", "big-tasks"])
def test_every_policy_runs_them(name: str) -> None:
    report = simulate(builtin(name, seed=2).with_hours(0.5), [*POLICY_NAMES, *EXTRA_POLICIES], 2)
    for policy, figures in report["results"].items():
        assert 0.5 < figures["availability"] <= 1.0, policy


def test_the_scaler_places_every_big_task() -> None:
    sim = run_shipped(builtin("big-tasks", seed=2), 2, capacity=True).engine
    assert sim is not None
    for state in sim.cluster.services.values():
        live = [t for t in state.tasks.values() if t.state != STOPPED]
        assert len(live) >= state.spec.desired, state.spec.name
