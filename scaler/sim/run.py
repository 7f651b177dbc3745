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


# figure -> (unit, what it measures): the table's unit column and legend
LEGEND: dict[str, tuple[str, str]] = {
    "availability": (
        "share 0-1",
        "healthy running task-time / desired task-time; 1 is every task up all the time",
    ),
    "worst_5m_availability": ("share 0-1", "the same in the worst 5 minutes of the run"),
    "interrupted_tasks": ("tasks", "tasks lost with their instance, not moved off in time"),
    "cost_usd": (
        "USD",
        "instance-hours at their spot or on-demand price, plus Fargate task-hours",
    ),
    "on_demand_equivalent_cost_usd": (
        "USD",
        "the same instance-hours at on-demand prices: what spot saves against",
    ),
    "on_demand_share": ("share 0-1", "on-demand vCPU-hours (EC2 and Fargate) / all vCPU-hours"),
    "hot_instance_share": (
        "share 0-1",
        "instance-time above the hot CPU threshold / all instance-time",
    ),
    "task_moves": (
        "tasks",
        "tasks stopped to move them: drains, ECS AZ rebalancing, the task rebalancer",
    ),
    "min_healthy_violations": (
        "tasks",
        "moves that left their service below its minimum healthy percent",
    ),
    "peak_disrupted_share": (
        "share 0-1",
        "most instances draining at once by the policy's choice (no spot notice) / all",
    ),
    "out_of_date_instances": ("instances", "instances still on an older image at the end"),
    "api_calls": (
        "calls",
        "AWS calls that change the cluster: launch, drain, update, stop, terminate",
    ),
}


def simulate(scenario: Scenario, policies: list[str], seed: int) -> dict[str, Any]:
    """``{"scenario", "seed", "results": {policy: figures}}`` for each policy on the same run."""
    results = {}
    for name in policies:
        figures = Sim(scenario, POLICIES[name](), seed).run()
        results[name] = {k: figures[k] for k in FIGURES}
    return {"scenario": scenario.name, "seed": seed, "results": results}


def table(report: dict[str, Any]) -> str:
    """The comparison as a text table, one column per policy, each figure with its unit, then
    a legend: a line per figure saying what it measures."""
    policies = list(report["results"])
    width = max(12, *(len(p) + 2 for p in policies))
    lines = [
        f"scenario {report['scenario']}, seed {report['seed']}",
        f"{'figure':<32}{'unit':<11}" + "".join(f"{p:>{width}}" for p in policies),
    ]
    for figure in FIGURES:
        cells = "".join(f"{report['results'][p][figure]:>{width}}" for p in policies)
        lines.append(f"{figure:<32}{LEGEND[figure][0]:<11}{cells}")
    lines += ["", "what each figure measures:"]
    lines += [f"  {figure}: {LEGEND[figure][1]}" for figure in FIGURES]
    return "\n".join(lines)
