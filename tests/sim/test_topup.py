"""Top-up and return to spot, measured in the simulator (the issue's acceptance figures)."""

from __future__ import annotations

import math
from dataclasses import replace
from functools import cache

import pytest

from scaler.sim.builtin import builtin
from scaler.sim.engine import Sim
from scaler.sim.policies import POLICIES, ScalerPolicy
from scaler.sim.scenario import Event
from scaler.sim.stats import paired

SEEDS = (7, 11, 23)
BASELINES = ("ecs-native", "ecs-scaler")


def _run(name: str, seed: int, policy: str) -> tuple[dict[str, float], Sim]:
    scenario = builtin(name, seed=seed)
    sim = Sim(scenario, POLICIES[policy](), seed)
    return sim.run(), sim


@cache
def _storm_runs(policy: str) -> tuple[dict[str, float], ...]:
    return tuple(_run("storm", s, policy)[0] for s in range(1, 21))


NOT_YET = (
    "not a measured win against the Auto Scaling group with Capacity Rebalancing: paired over "
    "seeds 1-20, availability +4.0e-5 [-1.9e-5, +9.9e-5]"
)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("base", "figure", "better"),
    [
        pytest.param(
            "ecs-native", "availability", 1, marks=pytest.mark.xfail(strict=True, reason=NOT_YET)
        ),
        ("ecs-native", "interrupted_tasks", -1),
        ("ecs-scaler", "availability", 1),
        ("ecs-scaler", "interrupted_tasks", -1),
    ],
)
def test_storm_scaler_beats_the_baselines_paired_over_20_seeds(
    base: str, figure: str, better: int
) -> None:
    """Every policy on each seed's market: the 95% interval of the per-seed differences
    (scaler - baseline, signed so that more is better) lies above 0. One seed decides nothing."""
    diff = paired(
        [better * r[figure] for r in _storm_runs("scaler")],
        [better * r[figure] for r in _storm_runs(base)],
    )
    assert diff.low is not None and diff.low > 0, (base, figure, diff)


@pytest.mark.parametrize("seed", SEEDS)
def test_storm_scaler_loses_no_overflow_task_and_no_deep_dip(seed: int) -> None:
    scaler, sim = _run("storm", seed, "scaler")
    assert scaler["worst_5m_availability"] >= 0.95
    overflow = {s.name for s in sim.scenario.services if s.fargate_overflow}
    assert overflow, "the storm scenario has services allowed to overflow"
    assert sum(sim.acct.interrupted_by_group[name] for name in overflow) == 0


SHORT = (
    "services at minimumHealthyPercent 50 lose tasks at the drain; measured on one market per "
    "seed: 0.99863 at seed 7, 0.99885 at 11, 0.99862 at 23"
)


@pytest.mark.parametrize(
    "seed",
    [
        pytest.param(7, marks=pytest.mark.xfail(strict=True, reason=SHORT)),
        pytest.param(11, marks=pytest.mark.xfail(strict=True, reason=SHORT)),
        pytest.param(23, marks=pytest.mark.xfail(strict=True, reason=SHORT)),
    ],
)
def test_storm_meets_the_top_up_targets(seed: int) -> None:
    """The targets the top-up work set: availability >= 0.999, worst 5 minutes above both
    baselines. Met at seed 11 once the accounting counted overflow services right, while each
    policy met a market of its own; not met at any of these seeds on one market per seed."""
    scaler, _ = _run("storm", seed, "scaler")
    native, _ = _run("storm", seed, "ecs-native")
    old, _ = _run("storm", seed, "ecs-scaler")
    assert scaler["availability"] >= 0.999
    assert scaler["worst_5m_availability"] > max(
        native["worst_5m_availability"], old["worst_5m_availability"]
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_steady_week_costs_under_45_percent_of_on_demand(seed: int) -> None:
    figures, _ = _run("steady", seed, "scaler")
    assert figures["cost_usd"] <= 0.45 * figures["on_demand_equivalent_cost_usd"]
    assert figures["availability"] >= 0.9995


def _od(sim: Sim) -> int:
    return sum(1 for i in sim.cluster.instances.values() if i.capacity == "on-demand")


@pytest.mark.parametrize("seed", SEEDS)
def test_on_demand_fallback_returns_to_spot_within_the_revert_time(seed: int) -> None:
    """60% of spot reclaimed and every spot pool empty for 20 minutes (on-demand must fill in,
    whatever the packing): then on-demand gives way to spot, a batch at a time."""
    storm = Event(
        900, "storm", {"share": 0.6, "over": 300, "unavailable_for": 1200, "all_spot_pools": True}
    )
    scenario = replace(builtin("storm", seed=seed), hours=3.0, events=(storm,))
    policy = ScalerPolicy()
    sim = Sim(scenario, policy, seed)
    sim.begin()
    peak = 0
    while sim.now < 3 * 3600:
        sim.step_until(sim.now + 60)
        peak = max(peak, _od(sim))
        trouble = policy.memory.last_spot_trouble() or 0.0
        # revert time, then a drain's worth, and 5 minutes more for every further batch
        batches = math.ceil(peak / policy.capacity.revert_batch)
        if sim.now > trouble + policy.capacity.revert_after + 900 + 300 * (batches - 1):
            assert _od(sim) == 0, f"on-demand still running at {sim.now:.0f}s"
    assert peak > 0, "the fallback was used"
    assert sim.finish()["availability"] >= 0.995
