"""Run scenarios under policies and compare: ``scaler simulate``."""

from __future__ import annotations

from typing import Any

from scaler.sim.engine import Sim
from scaler.sim.policies import POLICIES
from scaler.sim.scenario import Scenario

FIGURES = (
    "availability",
    "worst_5m_availability",
    "interrupted_tasks",
    "cost_usd",
    "on_demand_equivalent_cost_usd",
    "on_demand_share",
    "hot_instance_share",
    "task_moves",
    "min_healthy_violations",
    "peak_disrupted_share",
    "out_of_date_instances",
    "api_calls",
)


def simulate(scenario: Scenario, policies: list[str], seed: int) -> dict[str, Any]:
    """``{"scenario", "seed", "results": {policy: figures}}`` for each policy on the same run."""
    results = {}
    for name in policies:
        figures = Sim(scenario, POLICIES[name](), seed).run()
        results[name] = {k: figures[k] for k in FIGURES}
    return {"scenario": scenario.name, "seed": seed, "results": results}


def table(report: dict[str, Any]) -> str:
    """The comparison as a text table, one column per policy."""
    policies = list(report["results"])
    width = max(12, *(len(p) + 2 for p in policies))
    lines = [
        f"scenario {report['scenario']}, seed {report['seed']}",
        f"{'':<32}" + "".join(f"{p:>{width}}" for p in policies),
    ]
    for figure in FIGURES:
        cells = "".join(f"{report['results'][p][figure]:>{width}}" for p in policies)
        lines.append(f"{figure:<32}{cells}")
    return "\n".join(lines)
