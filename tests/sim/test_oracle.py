"""The oracle: the shipped scaler told of every spot interruption 15 minutes ahead, as a
rebalance recommendation it acts on with replace-then-drain. It meets the same market as every
policy, hears of each warned instance at least 15 minutes before (or when it boots into a
storm), and bounds what early warning can buy."""

from __future__ import annotations

from typing import Any

import pytest

from scaler.sim.builtin import builtin
from scaler.sim.run import FORESIGHT, shipped_figures, simulate_seeds

SEEDS = (1, 2, 3)


def _traced(name: str, scenario: Any, seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    records: list[dict[str, Any]] = []
    figures = shipped_figures(scenario, seed, oracle=name == "oracle", trace=records.append)
    return figures, records


@pytest.mark.parametrize("seed", SEEDS)
def test_the_oracle_meets_the_same_market(seed: int) -> None:
    scenario = builtin("storm").with_hours(1.0)
    scaler, _ = _traced("scaler", scenario, seed)
    oracle, _ = _traced("oracle", scenario, seed)
    assert oracle["market_digest"] == scaler["market_digest"]


@pytest.mark.parametrize("seed", SEEDS)
def test_every_warning_was_foretold_fifteen_minutes_ahead(seed: int) -> None:
    _, records = _traced("oracle", builtin("storm").with_hours(1.0), seed)
    told: dict[str, float] = {}
    launched = {r["instance"]: r["t"] for r in records if r["what"] == "register"}
    late = []
    for r in records:
        if r["what"] == "recommendation":
            told.setdefault(r["instance"], r["t"])
        elif r["what"] == "warning":
            start = launched.get(r["instance"], 0.0)
            ahead = r["t"] - told.get(r["instance"], r["t"])
            if ahead < min(FORESIGHT, r["t"] - start) - 1:
                late.append((r["instance"], ahead))
    assert any(r["what"] == "warning" for r in records)
    assert not late


def test_early_warning_buys_fewer_interrupted_tasks() -> None:
    report = simulate_seeds(lambda s: builtin("storm").with_hours(1.0), ["scaler", "oracle"], SEEDS)
    summary = report["summary"]
    assert (
        summary["oracle"]["interrupted_tasks"]["mean"]
        <= summary["scaler"]["interrupted_tasks"]["mean"]
    )
    assert "oracle" in summary["scaler"]["availability"]["vs"], "the scaler's distance to it"
