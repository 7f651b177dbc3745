"""Top-up and return to spot, measured in the simulator with the shipped scaler (the top-up
work's acceptance figures)."""

from __future__ import annotations

import math
from dataclasses import replace
from functools import cache

import pytest

from scaler.sim.builtin import builtin
from scaler.sim.engine import Sim
from scaler.sim.policies import POLICIES
from scaler.sim.scenario import Event
from scaler.sim.stats import paired
from tests.sim.shipped_helpers import run_scaler

SEEDS = (7, 11, 23)
BASELINES = ("ecs-native", "ecs-scaler")


def _run(name: str, seed: int, policy: str) -> tuple[dict[str, float], Sim]:
    """``policy``'s figures and engine on the built-in ``name``: "scaler" is the shipped one."""
    scenario = builtin(name, seed=seed)
    if policy == "scaler":
        run = run_scaler(scenario, seed)
        return run.figures, run.sim
    sim = Sim(scenario, POLICIES[policy](), seed)
    return sim.run(), sim


@cache
def _storm_runs(policy: str) -> tuple[dict[str, float], ...]:
    return tuple(_run("storm", s, policy)[0] for s in range(1, 21))


CUT_SHORT = (
    "the warning surge (on by default) drains a warned instance up to 60 s before its "
    "interruption: more tasks are still on it when it goes (its services' extra tasks placed on "
    "other warned instances, and tasks whose replacements were not healthy in time), 32.3 a "
    "seed against ecs-native's 9.7 and ecs-scaler's 10.8, seeds 1-20"
)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("base", "figure", "better"),
    [
        ("ecs-native", "availability", 1),
        pytest.param(
            "ecs-native",
            "interrupted_tasks",
            -1,
            marks=pytest.mark.xfail(strict=True, reason=CUT_SHORT),
        ),
        ("ecs-scaler", "availability", 1),
        pytest.param(
            "ecs-scaler",
            "interrupted_tasks",
            -1,
            marks=pytest.mark.xfail(strict=True, reason=CUT_SHORT),
        ),
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


OVERFLOW_LOST = (
    "the shipped scaler loses tasks of services allowed to overflow to Fargate: interrupted "
    "overflow-service tasks 2 at seed 7, 8 at 11, 3 at 23 (worst 5 minutes 0.966 at seed 7, "
    "0.979 at 11: above 0.95)"
)


@pytest.mark.xfail(strict=True, reason=OVERFLOW_LOST)
@pytest.mark.parametrize("seed", SEEDS)
def test_storm_scaler_loses_no_overflow_task_and_no_deep_dip(seed: int) -> None:
    scaler, sim = _run("storm", seed, "scaler")
    assert scaler["worst_5m_availability"] >= 0.95
    overflow = {s.name for s in sim.scenario.services if s.fargate_overflow}
    assert overflow, "the storm scenario has services allowed to overflow"
    assert sum(sim.acct.interrupted_by_group[name] for name in overflow) == 0


@pytest.mark.parametrize("seed", [7, 11, 23])
def test_storm_meets_the_top_up_targets(seed: int) -> None:
    """The targets the top-up work set: availability >= 0.999, worst 5 minutes above both
    baselines (met since the warning surge is on by default)."""
    scaler, _ = _run("storm", seed, "scaler")
    native, _ = _run("storm", seed, "ecs-native")
    old, _ = _run("storm", seed, "ecs-scaler")
    assert scaler["availability"] >= 0.999
    assert scaler["worst_5m_availability"] > max(
        native["worst_5m_availability"], old["worst_5m_availability"]
    )


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_steady_hours_cost_under_45_percent_of_on_demand(seed: int) -> None:
    """The steady week's first 6 hours (the week takes minutes a seed with the shipped
    scaler; over the week it costs 0.358 of on-demand at seed 7)."""
    scenario = builtin("steady", seed=seed).with_hours(6.0)
    run = run_scaler(scenario, seed)
    figures = run.figures
    assert figures["cost_usd"] <= 0.45 * figures["on_demand_equivalent_cost_usd"]
    assert figures["availability"] >= 0.9995


def _on_demand_at(sim: Sim, gone: dict[str, float], t: float) -> int:
    """On-demand instances live at ``t`` (launching included)."""
    every = [*sim.cluster.instances.values(), *sim.terminated.values()]
    return sum(
        1
        for i in every
        if i.capacity == "on-demand" and i.launched_at <= t < gone.get(i.id, float("inf"))
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_on_demand_fallback_returns_to_spot_within_the_revert_time(seed: int) -> None:
    """60% of spot reclaimed and every spot pool empty for 20 minutes (on-demand must fill in,
    whatever the packing): then on-demand gives way to spot, a batch at a time."""
    storm = Event(
        900, "storm", {"share": 0.6, "over": 300, "unavailable_for": 1200, "all_spot_pools": True}
    )
    scenario = replace(builtin("storm", seed=seed), hours=3.0, events=(storm,))
    run = run_scaler(scenario, seed)
    sim, gone = run.sim, run.times("terminated")
    heard = [
        r["t"]
        for r in run.trace
        if r["what"] == "signal" and r["kind"] in ("SpotInterruption", "RebalanceRecommendation")
    ]
    trouble = max(heard)
    peak = 0
    for minute in range(1, 3 * 60 + 1):
        now = minute * 60.0
        live = _on_demand_at(sim, gone, now)
        peak = max(peak, live)
        # revert time, then a drain's worth, and 5 minutes more for every further batch
        batches = math.ceil(peak / run.settings.revert_batch)
        if now > trouble + run.settings.revert_after + 900 + 300 * (batches - 1):
            assert live == 0, f"on-demand still running at {now:.0f}s"
    assert peak > 0, "the fallback was used"
    assert run.figures["availability"] >= 0.995
