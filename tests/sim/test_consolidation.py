"""Scale in by consolidation (``SCALER_CONSOLIDATE=true``), the shipped scaler in the
simulator: the diurnal scenario's done-when figures against ECS native scaling."""

from __future__ import annotations

import pytest

from scaler.sim.builtin import builtin
from scaler.sim.run import simulate


@pytest.mark.slow
@pytest.mark.parametrize("seed", [7, 11, 23])
def test_diurnal_costs_under_85_percent_of_ecs_native_at_least_as_available(seed: int) -> None:
    scenario = builtin("diurnal", seed=seed).with_hours(24)  # one day of the three
    environment = {"SCALER_CONSOLIDATE": "true"}
    results = simulate(scenario, ["scaler", "ecs-native"], seed, environment=environment)
    scaler, native = results["results"]["scaler"], results["results"]["ecs-native"]
    assert scaler["cost_usd"] <= 0.85 * native["cost_usd"], (scaler["cost_usd"], native)
    assert scaler["availability"] >= native["availability"]
    assert scaler["min_healthy_violations"] == 0
