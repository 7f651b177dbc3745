"""Benchmark: what task rebalancing buys in the skew family, paired over seeds.

Run from the project root::

    .venv/bin/python -m tests.benchmarks.skew                         # skew, skew-surge, skew-mix
    .venv/bin/python -m tests.benchmarks.skew --scenarios skew-surge --seeds 1-5

For each scenario and seed it runs, on the same market: the shipped scaler with task rebalancing
on (the scenario's settings), the same scaler with ``SCALER_TASK_REBALANCE=false`` (the
environment wins over the settings), ``ecs-native``, and, to tell the hot spots moves can cure
from those they cannot, the scaler and ``ecs-native`` again with every reservation below its use
raised to it (``advised``: what following reservation advice would give; on seeds 1-5 unless
``--advised-seeds`` says otherwise). It prints one JSON
object: per scenario the means over the seeds of hot instance share, cost, task moves,
minimum-health violations and availability, and the paired ratios the rebalancer is held to
(scaler's hot share at most 0.15 of ``ecs-native``'s, cost with rebalancing at most 1.01 of
without). It never asserts: ``tests/sim/test_skew.py`` guards a few seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from scaler.sim.builtin import builtin
from scaler.sim.builtin_skew import NAMES
from scaler.sim.run import simulate
from scaler.sim.scenario import Scenario

FIGURES = ("hot_instance_share", "cost_usd", "task_moves", "min_healthy_violations", "availability")
ON, OFF = {"SCALER_TASK_REBALANCE": "true"}, {"SCALER_TASK_REBALANCE": "false"}
KINDS = ("scaler", "scaler-off", "ecs-native", "advised-scaler", "advised-ecs-native")


def advised(scenario: Scenario) -> Scenario:
    """``scenario`` with every task reservation below its modelled use raised to it (in 64-unit
    steps): the same CPU used, reserved as used."""

    def raised(cpu: int, use: float) -> int:
        return max(cpu, math.ceil(cpu * use / 64) * 64)

    services = tuple(
        replace(
            s, cpu=raised(s.cpu, s.cpu_use), cpu_use=s.cpu * s.cpu_use / raised(s.cpu, s.cpu_use)
        )
        for s in scenario.services
    )
    return replace(scenario, services=services)


def one_seed(name: str, seed: int, advice: bool) -> dict[str, dict[str, Any]]:
    """Every run of ``name`` on ``seed``'s market, keyed by what ran (the ``advised`` ones only
    with ``advice``)."""
    scenario = builtin(name, seed=seed)
    on = simulate(scenario, ["scaler", "ecs-native"], seed, environment=ON)["results"]
    off = simulate(scenario, ["scaler"], seed, environment=OFF)["results"]
    got = {"scaler": on["scaler"], "scaler-off": off["scaler"], "ecs-native": on["ecs-native"]}
    if advice:
        fixed = simulate(advised(scenario), ["scaler", "ecs-native"], seed, environment=ON)
        got["advised-scaler"] = fixed["results"]["scaler"]
        got["advised-ecs-native"] = fixed["results"]["ecs-native"]
    return got


def measure(name: str, seeds: Sequence[int], advice: Sequence[int]) -> dict[str, Any]:
    """The means over ``seeds`` (the advised runs over those of ``advice``) and their ratios."""
    started = time.process_time()
    runs = [one_seed(name, seed, seed in advice) for seed in seeds]
    means = {kind: _means([r[kind] for r in runs if kind in r]) for kind in KINDS}
    hot_seeds = sum(r["ecs-native"]["hot_instance_share"] > 0 for r in runs)
    return {
        "seeds": f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0]),
        "means": means,
        "hot_share_scaler_over_ecs_native": _ratio(
            means, "scaler", "ecs-native", "hot_instance_share"
        ),
        "cost_rebalancing_on_over_off": _ratio(means, "scaler", "scaler-off", "cost_usd"),
        "advised_seeds": [s for s in seeds if s in advice],
        "advised_hot_share_scaler_over_ecs_native": _ratio(
            means, "advised-scaler", "advised-ecs-native", "hot_instance_share"
        ),
        "seeds_with_ecs_native_hot_spots": hot_seeds,
        "targets": {"hot_share_ratio": "<= 0.15", "cost_ratio": "<= 1.01", "violations": 0},
        "cpu_seconds": round(time.process_time() - started, 1),
    }


def _means(runs: list[dict[str, Any]]) -> dict[str, float]:
    if not runs:
        return {}
    return {f: round(sum(float(r[f]) for r in runs) / len(runs), 6) for f in FIGURES}


def _ratio(means: dict[str, dict[str, float]], a: str, b: str, figure: str) -> float | None:
    below = means[b].get(figure)
    return round(means[a][figure] / below, 4) if below else None


def _seeds(text: str) -> list[int]:
    if "-" in text:
        first, last = text.split("-")
        return list(range(int(first), int(last) + 1))
    return [int(s) for s in text.split(",")]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default=",".join(NAMES))
    parser.add_argument("--seeds", default="1-20")
    parser.add_argument("--advised-seeds", default="1-5", help="seeds of the advised runs")
    args = parser.parse_args(argv)
    seeds, advice = _seeds(args.seeds), _seeds(args.advised_seeds)
    report = {name: measure(name, seeds, advice) for name in args.scenarios.split(",")}
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
