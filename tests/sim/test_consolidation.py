"""Scale in by consolidation, in the simulator: the diurnal scenario's done-when figures."""

from __future__ import annotations

import pytest

from scaler.sim.builtin import builtin
from scaler.sim.engine import Sim
from scaler.sim.policies import POLICIES


@pytest.mark.slow
@pytest.mark.parametrize("seed", [7, 11, 23])
def test_diurnal_costs_under_85_percent_of_ecs_native_at_least_as_available(seed: int) -> None:
    scenario = builtin("diurnal", seed=seed)
    native = Sim(scenario, POLICIES["ecs-native"](), seed).run()
    scaler = Sim(scenario, POLICIES["scaler-consolidating"](), seed).run()
    assert scaler["cost_usd"] <= 0.85 * native["cost_usd"], (scaler["cost_usd"], native)
    # measured: equal at seeds 7 and 11, higher at 23 (before the companion accounting was fixed
    # the scaler's figure was 3e-6 lower: a companion's desired count zeroed its service's demand)
    assert scaler["availability"] >= native["availability"]
    assert scaler["min_healthy_violations"] == 0
