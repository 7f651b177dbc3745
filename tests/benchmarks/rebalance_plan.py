"""Benchmark: how long the rebalance planner takes on a large cluster, and how few moves it makes.

Run from the project root::

    .venv/bin/python -m tests.benchmarks.rebalance_plan          # 2,000 instances, 20,000 tasks
    .venv/bin/python -m tests.benchmarks.rebalance_plan --instances 200 --tasks 2000 --services 30

It builds a model cluster (``scaler.ecs``) with the given size, tasks spread unevenly so that some
instances run hot, and times :func:`scaler.plan.rebalance.plan_moves` on one core: with the
default budget (what ``scaler run`` does each cycle) and with an unlimited budget (to compare the
number of moves with a lower bound: for each hot instance, the fewest of its own tasks, heaviest
first, whose removal brings it under the threshold; destinations ignored). It prints one JSON
object and never fails on time: the target (under 200 ms per plan) is printed beside the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import tracemalloc
from collections.abc import Sequence
from typing import Any

from scaler.ecs.cluster import Cluster, InstanceType, ServiceSpec, Strategy
from scaler.plan.rebalance import RebalancePolicy, hot_instances, load, plan_moves

TYPE = InstanceType("m5.xlarge", 4, 16384, 0.192)
LAYOUTS = (
    (Strategy("spread", "attribute:ecs.availability-zone"), Strategy("spread", "instanceId")),
    (Strategy("spread", "attribute:ecs.availability-zone"), Strategy("binpack", "memory")),
)
NOW = 1e6


def build(instances: int, tasks: int, services: int, seed: int) -> Cluster:
    rng = random.Random(seed)
    cluster = Cluster()
    nodes = []
    for n in range(instances):
        inst = cluster.launch(
            "p", TYPE, f"us-east-1{'abc'[n % 3]}", "spot", 0.07, 0.0, id=f"i-{n:05d}"
        )
        cluster.register(inst, 0.0)
        nodes.append(inst)
    per_service = tasks // services
    for s in range(services):
        spec = ServiceSpec(
            f"svc-{s:03d}",
            per_service,
            rng.choice([128, 256, 384]),
            512,
            50,
            200,
            LAYOUTS[s % 2],
            cpu_use=rng.uniform(0.3, 1.3),
        )
        state = cluster.add_service(spec)
        for _ in range(per_service):
            # a skewed spread: a fifth of the instances get most of the tasks
            inst = nodes[int(len(nodes) * (rng.random() ** 3))]
            if inst.free_cpu < spec.cpu or inst.free_mem < spec.memory:
                inst = next(
                    i for i in nodes if i.free_cpu >= spec.cpu and i.free_mem >= spec.memory
                )
            task = cluster.start_task(state, inst, inst.az, 0.0)
            task.running_at = task.healthy_at = 0.0
            cluster.mark_running(task)
    return cluster


def lower_bound(cluster: Cluster, policy: RebalancePolicy) -> int:
    """For each hot instance, the fewest of its tasks whose removal cools it (heaviest first)."""
    total = 0
    for inst in hot_instances(cluster.instances.values(), policy):
        excess = inst.used_cpu - policy.hot_threshold * inst.cpu
        for n, cpu in enumerate(
            sorted((t.service.cpu * t.service.cpu_use for t in inst.tasks.values()), reverse=True),
            start=1,
        ):
            excess -= cpu
            if excess <= 0:
                total += n
                break
    return total


def _time(cluster: Cluster, policy: RebalancePolicy, repeats: int) -> dict[str, Any]:
    samples = []
    plan = None
    for r in range(repeats):
        began = time.perf_counter()
        plan = plan_moves(cluster.instances, cluster.services, NOW, policy, seed=r)
        samples.append(time.perf_counter() - began)
    assert plan is not None
    samples.sort()
    return {
        "moves": len(plan.moves),
        "hot": len(plan.hot),
        "ms_median": round(1000 * samples[len(samples) // 2], 1),
        "ms_max": round(1000 * samples[-1], 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="rebalance planner speed")
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--services", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    cluster = build(args.instances, args.tasks, args.services, args.seed)
    default = RebalancePolicy()
    unlimited = RebalancePolicy(max_moves=10**6, max_moves_per_hour=10**6)
    tracemalloc.start()
    plan_moves(cluster.instances, cluster.services, NOW, default)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    loads = sorted(load(i) for i in cluster.instances.values())
    report = {
        "size": {"instances": args.instances, "tasks": args.tasks, "services": args.services},
        "cluster": {
            "max_load": round(loads[-1], 3),
            "mean_load": round(sum(loads) / len(loads), 3),
        },
        "default_budget": _time(cluster, default, args.repeats),
        "unlimited_budget": {
            **_time(cluster, unlimited, 1),
            "lower_bound_moves": lower_bound(cluster, unlimited),
        },
        "plan_peak_mib": round(peak / 2**20, 1),
        "target": {"ms_per_plan": 200},
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
