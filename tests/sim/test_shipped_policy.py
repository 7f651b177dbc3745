"""`scaler simulate --policy scaler-shipped`: the controllers `scaler run` builds, in the
simulated AWS, reported like every other policy, on the same market."""

from __future__ import annotations

from scaler.sim.builtin import builtin
from scaler.sim.run import SHIPPED, simulate


def test_the_shipped_scaler_is_a_policy_on_the_same_market() -> None:
    scenario = builtin("storm", instances=24, tasks=120, services=6).with_hours(1.0)
    report = simulate(scenario, ["scaler", SHIPPED, "ecs-native"], seed=0)
    results = report["results"]
    assert len({r["market_digest"] for r in results.values()}) == 1
    assert results[SHIPPED]["api_calls"] > 0
    assert 0.9 < results[SHIPPED]["availability"] <= 1.0
