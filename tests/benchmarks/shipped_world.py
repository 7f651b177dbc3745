"""Benchmark: the shipped scaler in the simulated world (scaler.sim.cloud), in virtual time.

Run from the project root::

    .venv/bin/python -m tests.benchmarks.shipped_world            # the full set (a few minutes)
    .venv/bin/python -m tests.benchmarks.shipped_world --quick    # small sizes, seconds
    .venv/bin/python -m tests.benchmarks.shipped_world --only steady_with_capacity

What it prints (JSON; nothing is asserted, wall time never fails anything):

- ``week``: 7 days of ``steady`` at 500 instances and 5,000 tasks through ``scaler.loop.Scaler``
  against the simulated SQS, DynamoDB and ECS: wall and CPU seconds, and AWS calls per hour of
  steady state by operation; beside it, the engine's own ``ecs-native`` model on the same week (the
  baseline in the same run: what the world costs without the scaler's calls);
  ``week_with_capacity``: the same week with a spot and an on-demand template pool (the scaler
  tops up and consolidates, as ``scaler simulate --policy scaler`` runs it);
  ``capacity_cycle``: 12 hours of that cluster with the pools and ``SCALER_CONSOLIDATE=false``, so
  it keeps its 500 instances: what the capacity cycle itself costs at that size;
- ``storm``: the 2-hour ``storm`` built-in at 250 instances, the same way; ``week`` and ``storm``
  run the scaler with no pools configured (it drains; nothing tops up), ``storm_with_capacity``
  with a spot and an on-demand template pool made from the scenario (EC2 Fleet top-up);
- ``steady_with_capacity``: the ``steady`` built-in as it is (48 instances, 480 tasks, 24
  services; seed 3) for 12 hours and for 7 days (6 hours with ``--quick``), with capacity
  configured as for ``storm_with_capacity``: what ``scaler simulate --scenario steady --policy
  scaler-shipped`` runs. Wall and CPU seconds (CPU seconds are the steadier figure on a shared
  machine) and AWS calls per hour;
- ``burst``: 500 spot warnings within 10 seconds, every instance of a 500-instance cluster:
  warning-to-DRAINING latency (p50, p99, max) under AWS's modelled latency and throttling, and
  beside it the same burst on an AWS without latency or throttling (both with
  ``SCALER_WARNING_SURGE=false``: the drain path alone); then under the modelled AWS
  with ``SCALER_WARNING_SURGE`` (stop time 60 s): no room is left for any surge, so each instance
  drains at its deadline, 60 s after its warning (``past_deadline_max_s``: how late the last).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from scaler.sim.builtin import builtin
from scaler.sim.cloud.limits import Limits
from scaler.sim.cloud.shipped import Outcome, run_shipped
from scaler.sim.engine import Sim
from scaler.sim.policies import POLICIES
from scaler.sim.scenario import Event, Scenario

SECTIONS = (
    "week",
    "week_with_capacity",
    "capacity_cycle",
    "storm",
    "storm_with_capacity",
    "steady_with_capacity",
    "burst",
)


def _timed_shipped(scenario: Scenario, seed: int, **options: Any) -> tuple[float, Outcome]:
    began = time.perf_counter()
    outcome = run_shipped(scenario, seed, **options)
    return time.perf_counter() - began, outcome


def _steady(hours: float, seed: int = 3) -> dict[str, Any]:
    """The ``steady`` built-in as it is, with capacity, for ``hours``."""
    scenario = builtin("steady", seed=seed).with_hours(hours)
    cpu = time.process_time()
    seconds, outcome = _timed_shipped(scenario, seed, capacity=True)
    return {
        "hours": hours,
        "wall_seconds": round(seconds, 2),
        "cpu_seconds": round(time.process_time() - cpu, 2),
        "aws_calls_per_hour": round(sum(outcome.calls.values()) / hours),
        "by_operation_per_hour": {k: round(v / hours, 1) for k, v in outcome.calls.items()},
        "availability": outcome.figures["availability"],
    }


def _engine(scenario: Scenario, seed: int) -> float:
    began = time.perf_counter()
    Sim(scenario, POLICIES["ecs-native"](), seed).run()
    return time.perf_counter() - began


def _run(
    scenario: Scenario, seed: int, capacity: bool = False, settings: dict[str, Any] | None = None
) -> dict[str, Any]:
    cpu = time.process_time()
    seconds, outcome = _timed_shipped(scenario, seed, capacity=capacity, settings=settings)
    cpu = time.process_time() - cpu
    hours = scenario.hours
    return {
        "hours": hours,
        "shipped_seconds": round(seconds, 2),
        "shipped_cpu_seconds": round(cpu, 2),
        "engine_only_ecs_native_seconds": round(_engine(scenario, seed), 2),
        "aws_calls_per_hour": round(sum(outcome.calls.values()) / hours),
        "by_operation_per_hour": {k: round(v / hours, 1) for k, v in outcome.calls.items()},
        "availability": outcome.figures["availability"],
        "interrupted_tasks": outcome.figures["interrupted_tasks"],
        "cost_usd": outcome.figures["cost_usd"],
    }


def _burst_scenario(instances: int) -> Scenario:
    base = builtin("steady", instances=instances, tasks=instances * 10, services=50)
    pools = tuple(replace(p, interruptions_per_hour=0.0) for p in base.pools)
    storm = Event(600, "storm", {"share": 1.0, "over": 10, "take": 1.0})
    return replace(base, name="burst", pools=pools, events=(storm,), hours=0.25)


def _latencies(outcome: Outcome) -> dict[str, Any]:
    waits = sorted(
        outcome.drained[i] - at for i, at in outcome.warned.items() if i in outcome.drained
    )
    if not waits:
        return {"drained": 0}

    def pick(q: float) -> float:
        return round(waits[min(len(waits) - 1, int(q * len(waits)))], 3)

    return {
        "warned": len(outcome.warned),
        "drained": len(waits),
        "p50_s": pick(0.5),
        "p99_s": pick(0.99),
        "max_s": round(waits[-1], 3),
        "throttled": sum(outcome.throttled.values()),
    }


def _burst(instances: int, seed: int) -> dict[str, Any]:
    scenario = _burst_scenario(instances)
    plain = {"warning_surge": False}  # the drain path alone: no hold for replacements
    _, modelled = _timed_shipped(scenario, seed, settings=plain)
    free = Limits(latency=False, throttling=False)
    _, ideal = _timed_shipped(scenario, seed, settings=plain, limits=free)
    surge = {"warning_surge": True, "warning_surge_stop_time": 60.0}
    _, surged = _timed_shipped(scenario, seed, settings=surge)
    held = _latencies(surged)
    if "max_s" in held:
        held["past_deadline_max_s"] = round(max(0.0, held["max_s"] - (120.0 - 60.0)), 3)
    return {
        "instances": instances,
        "modelled_aws": _latencies(modelled),
        "no_latency_no_throttling": _latencies(ideal),
        "warning_surge_modelled_aws": held,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the shipped scaler in the simulated world")
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", choices=SECTIONS, action="append", help="these sections only")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    big = not args.quick
    week = builtin("steady", instances=500 if big else 50, tasks=5000 if big else 500, services=50)
    storm = builtin("storm", instances=250 if big else 40, tasks=2500 if big else 400, services=30)
    sections: dict[str, Callable[[], Any]] = {
        "week": lambda: _run(week.with_hours(24 * 7 if big else 6), args.seed),
        "week_with_capacity": lambda: _run(
            week.with_hours(24 * 7 if big else 6), args.seed, capacity=True
        ),
        "capacity_cycle": lambda: _run(
            week.with_hours(12 if big else 2),
            args.seed,
            capacity=True,
            settings={"consolidate": False},
        ),
        "storm": lambda: _run(storm, args.seed),
        "storm_with_capacity": lambda: _run(storm, args.seed, capacity=True),
        "steady_with_capacity": lambda: [_steady(12.0), _steady(24 * 7 if big else 6)],
        "burst": lambda: _burst(500 if big else 50, args.seed),
    }
    report = {name: run() for name, run in sections.items() if name in (args.only or SECTIONS)}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
