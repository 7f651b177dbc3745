"""``SCALER_REBALANCE_POLICY`` in the simulator: on a rebalance recommendation the shipped scaler
ignores it, drains at once, or launches replacement room first and drains once it is up."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

from scaler.sim.scenario import from_dict
from tests.sim.shipped_helpers import ShippedRun, run_scaler
from tests.sim.workload_scenarios import base

SEEDS = (1, 2, 3, 4)


def _raw(rebalance: str) -> dict[str, Any]:
    """A full cluster (little spare room) whose spot pools in one AZ are reclaimed with 20
    minutes of rebalance lead, and whose tasks take a while to start."""
    raw = base(
        hours=1.5,
        settings={"SCALER_REBALANCE_POLICY": rebalance, "SCALER_DISRUPTION_BUDGET": 0.5},
        events=[
            {
                "at": 900,
                "type": "storm",
                "share": 1.0,
                "over": 300,
                "az": "us-east-1a",
                "rebalance_share": 1.0,
                "rebalance_lead": 1200,
                "unavailable_for": 600,
            }
        ],
    )
    raw["services"] = [
        {
            "name": "web",
            "desired": 24,
            "cpu": 1024,
            "memory": 2048,
            "start_delay": 60,
            "health_delay": 60,
        },
        {
            "name": "api",
            "desired": 12,
            "cpu": 512,
            "memory": 4096,
            "start_delay": 60,
            "health_delay": 60,
        },
    ]
    return raw


@cache
def _run(rebalance: str, seed: int) -> ShippedRun:
    return run_scaler(from_dict(_raw(rebalance)), seed)


def _figures(rebalance: str) -> tuple[float, float, int]:
    avail = cost = 0.0
    drained_late = 0
    for seed in SEEDS:
        result = _run(rebalance, seed).figures
        avail += result["availability"]
        cost += result["cost_usd"]
        drained_late += result["interrupted_tasks"]
    return avail / len(SEEDS), cost, drained_late


@pytest.mark.slow
def test_three_rebalance_policies_give_different_sensible_outcomes() -> None:
    ignore, drain, replace = (_figures(p) for p in ("ignore", "drain", "replace-then-drain"))
    assert len({ignore, drain, replace}) == 3
    # draining on the recommendation beats waiting for the 2-minute warning
    assert drain[0] > ignore[0]
    # replacement room first: the tasks move straight onto running capacity
    assert replace[0] > drain[0]


def _drain_lag(rebalance: str) -> list[float]:
    """Seconds from each recommendation to its instance's drain (drained before its warning)."""
    run = _run(rebalance, 1)
    advised, warned, drained = (run.times(w) for w in ("recommendation", "warning", "drain"))
    return sorted(
        drained[i] - t
        for i, t in advised.items()
        if i in drained and drained[i] < warned.get(i, float("inf"))
    )


def test_replace_then_drain_waits_for_the_room() -> None:
    lags = _drain_lag("replace-then-drain")
    assert lags and max(lags) >= 60  # one waited for its replacement to boot
    assert _drain_lag("ignore") == []
    assert _drain_lag("drain") and min(_drain_lag("drain")) < 15  # the first drained at once


DRAINS_IN_TURN = (
    "the shipped scaler drains one advised instance at once and another about 250 s later, "
    "not all at once: seed 1, drain lags 1.6 and 253.8 s (the others drained at their warning)"
)


@pytest.mark.xfail(strict=True, reason=DRAINS_IN_TURN)
def test_drain_drains_every_advised_instance_at_once() -> None:
    lags = _drain_lag("drain")
    assert lags and max(lags) < 15
