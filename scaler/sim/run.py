"""Run scenarios under policies and compare: ``scaler simulate``.

One seed: every policy on that seed's market, the figures side by side. Many seeds
(:func:`simulate_seeds`): every policy on each seed's market, then per figure the mean over the
seeds, the worst seed, and each policy's paired difference to each baseline with its 95%
interval (:mod:`scaler.sim.stats`). A trace writes one JSON line per market event, signal and
action (see :meth:`scaler.sim.engine.Sim.note`).

The ``scaler`` is the scaler we ship: the controllers ``scaler run`` builds, run unchanged on
virtual time against the simulated AWS (:mod:`scaler.sim.cloud.shipped`), configured by the
scenario's ``[settings]`` and the ``SCALER_*`` variables ``scaler simulate`` was given
(:func:`scaler_settings`): consolidation, the roll and the rest are settings, not policies.
The ``oracle`` is the same scaler told of every interruption 15 minutes ahead. The baselines,
``ecs-native`` and ``ecs-scaler``, are models of what a competent operator runs without us
(:mod:`scaler.sim.policies`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TextIO

from scaler.sim.engine import Sim
from scaler.sim.policies import POLICIES
from scaler.sim.scenario import Scenario
from scaler.sim.settings_file import field_values
from scaler.sim.stats import Interval, paired

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


BASELINES = ("ecs-native", "ecs-scaler")
REFERENCES = (*BASELINES, "oracle")  # what every other policy is compared with, where it ran
HIGHER_IS_BETTER = frozenset({"availability", "worst_5m_availability"})


SCALER, ORACLE = "scaler", "oracle"
SHIPPED = (SCALER, ORACLE)  # the controllers `scaler run` builds, in the simulated AWS
FORESIGHT = 900.0  # the oracle hears of every interruption this long ahead


def simulate(
    scenario: Scenario,
    policies: list[str],
    seed: int,
    trace: TextIO | None = None,
    environment: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``{"scenario", "seed", "results": {policy: figures}}`` for each policy on the same run;
    each policy's figures carry the ``market_digest`` of the market it met (the same for all).
    ``environment``: ``SCALER_*`` settings for the scaler, over the scenario's ``[settings]``."""
    if environment:  # the world's own settings too (SCALER_SIM_APPLY_ADVICE)
        scenario = replace(scenario, settings={**scenario.settings, **environment})
    results = {}
    for name in policies:
        write = _writer(trace, seed)
        if name in SHIPPED:
            oracle = name == ORACLE
            figures = shipped_figures(scenario, seed, environment, oracle=oracle, trace=write)
        else:
            figures = Sim(scenario, POLICIES[name](), seed, trace=write).run()
        results[name] = {k: figures[k] for k in (*FIGURES, "market_digest")}
    return {"scenario": scenario.name, "seed": seed, "results": results}


def scaler_settings(
    scenario: Scenario, environment: Mapping[str, str] | None = None, *, oracle: bool = False
) -> dict[str, Any]:
    """The ``SCALER_*`` settings the simulated scaler runs with: the scenario's ``[settings]``,
    then ``environment`` over them; the oracle acts on its early word with replace-then-drain."""
    table = {k.upper(): v for k, v in scenario.settings.items()}
    table.update(environment or {})
    if oracle:
        table["SCALER_REBALANCE_POLICY"] = "replace-then-drain"
    return table


def shipped_figures(
    scenario: Scenario,
    seed: int,
    environment: Mapping[str, str] | None = None,
    *,
    oracle: bool = False,
    trace: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """The figures of the shipped scaler (:mod:`scaler.sim.cloud.shipped`) on ``scenario``:
    the controllers ``scaler run`` builds, with a spot and an on-demand template pool made from
    the scenario's pools and :func:`scaler_settings`, in the simulated AWS on virtual time,
    against the same engine and market as every other policy. The ``oracle`` is the same scaler
    told of every interruption ``FORESIGHT`` seconds ahead: a bound on what early warning buys."""
    import logging

    from scaler.sim.cloud.shipped import run_shipped

    settings = field_values(scaler_settings(scenario, environment, oracle=oracle))
    logger = logging.getLogger("scaler")
    level, logger.level = logger.level, logging.CRITICAL  # its logs are the run's, not ours
    try:
        foresight = FORESIGHT if oracle else 0.0
        return run_shipped(
            scenario, seed, settings, capacity=True, foresight=foresight, trace=trace
        ).figures
    finally:
        logger.setLevel(level)


def _writer(out: TextIO | None, seed: int) -> Callable[[dict[str, Any]], None] | None:
    if out is None:
        return None

    def write(record: dict[str, Any]) -> None:
        out.write(json.dumps({"seed": seed, **record}) + "\n")

    return write


def simulate_seeds(
    scenario_for: Callable[[int], Scenario],
    policies: list[str],
    seeds: Sequence[int],
    trace: TextIO | None = None,
    environment: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Every policy on each seed's market (``scenario_for(seed)`` gives the scenario), and per
    figure the mean, the worst seed and the paired difference to each baseline run."""
    runs = [simulate(scenario_for(seed), policies, seed, trace, environment) for seed in seeds]
    return {
        "scenario": runs[0]["scenario"],
        "seeds": list(seeds),
        "runs": runs,
        "summary": summary(runs, policies),
    }


def summary(runs: list[dict[str, Any]], policies: list[str]) -> dict[str, Any]:
    """``{policy: {figure: {"mean", "worst", "worst_seed", "vs": {baseline: interval}}}}``."""
    seeds = [run["seed"] for run in runs]
    out: dict[str, Any] = {}
    for policy in policies:
        out[policy] = {}
        for figure in FIGURES:
            values = [float(run["results"][policy][figure]) for run in runs]
            pick = min if figure in HIGHER_IS_BETTER else max
            worst = pick(range(len(values)), key=lambda i: values[i])
            vs = {
                base: _interval(
                    paired(values, [float(run["results"][base][figure]) for run in runs])
                )
                for base in REFERENCES
                if base in policies and base != policy
            }
            out[policy][figure] = {
                "mean": sum(values) / len(values),
                "worst": values[worst],
                "worst_seed": seeds[worst],
                "vs": vs,
            }
    return out


def _interval(got: Interval) -> dict[str, float | None]:
    return {"mean_difference": got.mean, "low": got.low, "high": got.high}


def table(report: dict[str, Any]) -> str:
    """The comparison as a text table, one column per policy, each figure with its unit, then
    a legend: a line per figure saying what it measures."""
    policies = list(report["results"])
    width = max(12, *(len(p) + 2 for p in policies))
    lines = [
        f"scenario {report['scenario']}, seed {report['seed']}, market {_digest(report)}",
        f"{'figure':<32}{'unit':<11}" + "".join(f"{p:>{width}}" for p in policies),
    ]
    for figure in FIGURES:
        cells = "".join(f"{report['results'][p][figure]:>{width}}" for p in policies)
        lines.append(f"{figure:<32}{LEGEND[figure][0]:<11}{cells}")
    lines += ["", "what each figure measures:"]
    lines += [f"  {figure}: {LEGEND[figure][1]}" for figure in FIGURES]
    return "\n".join(lines)


def seeds_table(report: dict[str, Any]) -> str:
    """The comparison over seeds: per figure, each policy's mean, its worst seed, and its
    paired difference to each baseline with the 95% interval; then the legend."""
    summary = report["summary"]
    policies = list(summary)
    cells = [_vs(v) for p in policies for c in summary[p].values() for v in c["vs"].values()]
    width = max(24, *(len(text) + 2 for text in [*policies, *cells]))
    seeds = report["seeds"]
    lines = [
        f"scenario {report['scenario']}, {len(seeds)} seeds ({_seeds(seeds)}): every policy on "
        "each seed's market; differences are paired by seed, [95% interval]",
        f"{'figure':<32}{'unit':<11}{'':<14}" + "".join(f"{p:>{width}}" for p in policies),
    ]
    for figure in FIGURES:
        of = [summary[p][figure] for p in policies]
        mean = "".join(f"{_num(c['mean']):>{width}}" for c in of)
        worst = "".join(f"{_worst(c):>{width}}" for c in of)
        lines.append(f"{figure:<32}{LEGEND[figure][0]:<11}{'mean':<14}{mean}")
        lines.append(f"{'':<43}{'worst':<14}{worst}")
        for base in REFERENCES:
            if base not in policies or len(policies) < 2:
                continue
            diff = "".join(f"{_vs(c['vs'].get(base)):>{width}}" for c in of)
            lines.append(f"{'':<43}{'- ' + base:<14}{diff}")
    lines += ["", "what each figure measures:"]
    lines += [f"  {figure}: {LEGEND[figure][1]}" for figure in FIGURES]
    return "\n".join(lines)


def _digest(report: dict[str, Any]) -> str:
    digests = {figures.get("market_digest", "?") for figures in report["results"].values()}
    return digests.pop() if len(digests) == 1 else "differs between policies"


def _worst(cell: dict[str, Any]) -> str:
    return f"{_num(cell['worst'])} (seed {cell['worst_seed']})"


def _num(value: float) -> str:
    return f"{value:.6g}"


def _vs(interval: dict[str, float | None] | None) -> str:
    if interval is None:
        return ""
    mean, low, high = interval["mean_difference"], interval["low"], interval["high"]
    assert mean is not None
    if low is None or high is None:
        return f"{mean:+.3g}"
    return f"{mean:+.3g} [{low:+.3g}, {high:+.3g}]"


def _seeds(seeds: list[int]) -> str:
    return ",".join(map(str, seeds)) if len(seeds) <= 8 else f"{seeds[0]}..{seeds[-1]}"
