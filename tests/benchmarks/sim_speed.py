"""Benchmark: how fast the simulator's engine runs a week of a large cluster.

Run from the project root::

    .venv/bin/python -m tests.benchmarks.sim_speed            # 500 instances, 5,000 tasks, 7 days
    .venv/bin/python -m tests.benchmarks.sim_speed --instances 100 --tasks 1000 --days 1

For each scenario (``steady`` and ``storm``, stretched to the given number of days) and each
baseline model (``ecs-native``, ``ecs-scaler``) it runs one simulation and reports wall seconds,
the process's peak resident memory so far, and events processed per second,
next to the same figures for a baseline run of the same scenario with no interruptions at all
(``quiet``), in the same process. It prints one JSON object and never fails on time: the target
(under 60 s and 1 GB for the whole set) is printed beside the figures, not asserted. The
scaler itself runs in the simulated AWS, whose speed ``tests.benchmarks.shipped_world`` measures.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from scaler.sim.builtin import builtin
from scaler.sim.engine import Sim
from scaler.sim.policies import POLICIES
from scaler.sim.scenario import Scenario


def _quiet(scenario: Scenario) -> Scenario:
    pools = tuple(replace(p, interruptions_per_hour=0.0) for p in scenario.pools)
    return replace(scenario, name=f"{scenario.name}-quiet", pools=pools, events=())


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _measure(scenario: Scenario, policy: str, seed: int) -> dict[str, Any]:
    began = time.perf_counter()
    sim = Sim(scenario, POLICIES[policy](), seed)
    figures = sim.run()
    seconds = time.perf_counter() - began
    return {
        "scenario": scenario.name,
        "policy": policy,
        "seconds": round(seconds, 3),
        "max_rss_mib_so_far": round(_rss_mib(), 1),
        "events": sim.events_processed,
        "events_per_second": round(sim.events_processed / seconds) if seconds else None,
        "availability": figures["availability"],
        "interrupted_tasks": figures["interrupted_tasks"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="simulator speed")
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--services", type=int, default=300)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    size = {"instances": args.instances, "tasks": args.tasks, "services": args.services}
    runs = []
    began = time.perf_counter()
    for name in ("steady", "storm"):
        scenario = builtin(name, seed=args.seed, **size).with_hours(args.days * 24)
        runs.append(_measure(_quiet(scenario), "ecs-native", args.seed))
        for policy in ("ecs-native", "ecs-scaler"):  # the engine with the baselines acting
            runs.append(_measure(scenario, policy, args.seed))
    total = time.perf_counter() - began
    report = {
        "size": {**size, "days": args.days},
        "python": platform.python_version(),
        "runs": runs,
        "total_seconds": round(total, 2),
        "max_rss_mib": round(_rss_mib(), 1),
        "target": {"total_seconds": 60, "memory_mib": 1024},
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
