"""Benchmark: how long the rebalance planner takes on a large cluster, and how few moves it makes.

Run from the project root::

    .venv/bin/python -m tests.benchmarks.rebalance_plan          # both sizes, both layouts
    .venv/bin/python -m tests.benchmarks.rebalance_plan --instances 200 --tasks 2000 --services 30

It builds model clusters (``scaler.ecs``) and times :func:`scaler.plan.rebalance.plan_moves` on
one core, in two layouts:

- **easy**: tasks spread unevenly, so that a fifth of the instances run hot and the rest have
  room; the planner finds its moves quickly and the budget ends the plan.
- **costly**: almost every instance is full by reservation and warm, just under the hot
  threshold; a fifth are hot; only a handful of task slots are free anywhere. The planner tries
  task after task on every hot instance and finds few moves: the case that costs the most.

Each layout is timed with the default budget (what ``scaler run`` does each cycle); the easy one
also with an unlimited budget, to compare the number of moves with a lower bound (for each hot
instance, the fewest of its own tasks, heaviest first, whose removal brings it under the
threshold; destinations ignored). ``ms_*`` is wall time, ``cpu_ms_median`` the process's CPU
time (steadier on a shared machine). It prints one JSON object and never fails on time: the targets
(per plan: 20 ms at 2,000 instances, 200 ms at 10,000) are printed beside the figures.
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

from scaler.ecs.cluster import Cluster, Instance, InstanceType, ServiceSpec, Strategy
from scaler.plan.rebalance import RebalancePolicy, hot_instances, load, plan_moves

TYPE = InstanceType("m5.xlarge", 4, 16384, 0.192)
LAYOUTS = (
    (Strategy("spread", "attribute:ecs.availability-zone"), Strategy("spread", "instanceId")),
    (Strategy("spread", "attribute:ecs.availability-zone"), Strategy("binpack", "memory")),
)
NOW = 1e6
# (instances, tasks, services, target ms per plan)
SIZES = ((2000, 20000, 300, 20.0), (10000, 100000, 1500, 200.0))
HOT_SHARE = 0.2  # of the instances, in the costly layout
FREE_SLOTS = 3  # task slots free in the whole cluster, in the costly layout


def _instances(cluster: Cluster, count: int) -> list[Instance]:
    nodes = []
    for n in range(count):
        inst = cluster.launch(
            "p", TYPE, f"us-east-1{'abc'[n % 3]}", "spot", 0.07, 0.0, id=f"i-{n:05d}"
        )
        cluster.register(inst, 0.0)
        nodes.append(inst)
    return nodes


def build(instances: int, tasks: int, services: int, seed: int) -> Cluster:
    """The easy layout: a skewed spread, a fifth of the instances hold most of the tasks."""
    rng = random.Random(seed)
    cluster = Cluster()
    nodes = _instances(cluster, instances)
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
            inst = nodes[int(len(nodes) * (rng.random() ** 3))]
            if inst.free_cpu < spec.cpu or inst.free_mem < spec.memory:
                inst = next(
                    i for i in nodes if i.free_cpu >= spec.cpu and i.free_mem >= spec.memory
                )
            _run(cluster, state, inst)
    return cluster


def build_costly(instances: int, tasks: int, services: int, seed: int) -> Cluster:
    """The costly layout: every instance holds ``tasks / instances`` tasks that fill its memory;
    the services of the hot fifth use more CPU (hot, about 90%) than the others (warm, just
    under 80%); ``FREE_SLOTS`` instances hold one task fewer (the only room in the cluster)."""
    rng = random.Random(seed)
    cluster = Cluster()
    nodes = _instances(cluster, instances)
    per_instance = max(1, tasks // instances)
    memory = TYPE.memory_mib // per_instance - 16  # a full instance has no room for another
    hot_count = int(instances * HOT_SHARE)
    hot_services = max(1, int(services * HOT_SHARE))
    spare = {n.id for n in nodes[-FREE_SLOTS:]}  # one slot free on each
    slots = [(i, n) for i in nodes for n in range(per_instance) if not (i.id in spare and n == 0)]
    hot_slots = [inst for inst, _ in slots if int(inst.id[2:]) < hot_count]
    warm_slots = [inst for inst, _ in slots if int(inst.id[2:]) >= hot_count]
    rng.shuffle(hot_slots)
    rng.shuffle(warm_slots)
    groups = (
        (hot_slots, hot_services, (1.4, 1.6)),
        (warm_slots, services - hot_services, (1.2, 1.27)),
    )
    number = 0
    for places, count, (low, high) in groups:
        per_service = -(-len(places) // max(1, count))
        for s in range(count):
            mine = places[s * per_service : (s + 1) * per_service]
            if not mine:
                break
            spec = ServiceSpec(
                f"svc-{number:04d}",
                len(mine),
                256,
                memory,
                50,
                200,
                LAYOUTS[number % 2],
                cpu_use=rng.uniform(low, high),
            )
            number += 1
            state = cluster.add_service(spec)
            for inst in mine:
                _run(cluster, state, inst)
    return cluster


def _run(cluster: Cluster, state: Any, inst: Instance) -> None:
    task = cluster.start_task(state, inst, inst.az, 0.0)
    task.running_at = task.healthy_at = 0.0
    cluster.mark_running(task)


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
    samples, cpu = [], []
    plan = None
    for r in range(repeats):
        began, began_cpu = time.perf_counter(), time.process_time()
        plan = plan_moves(cluster.instances, cluster.services, NOW, policy, seed=r)
        samples.append(time.perf_counter() - began)
        cpu.append(time.process_time() - began_cpu)
    assert plan is not None
    samples.sort()
    cpu.sort()
    return {
        "moves": len(plan.moves),
        "hot": len(plan.hot),
        "ms_median": round(1000 * samples[len(samples) // 2], 1),
        "ms_max": round(1000 * samples[-1], 1),
        "cpu_ms_median": round(1000 * cpu[len(cpu) // 2], 1),
    }


def measure(cluster: Cluster, repeats: int, target_ms: float, unlimited: bool) -> dict[str, Any]:
    default = RebalancePolicy()
    tracemalloc.start()
    plan_moves(cluster.instances, cluster.services, NOW, default)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    loads = sorted(load(i) for i in cluster.instances.values())
    report: dict[str, Any] = {
        "cluster": {
            "max_load": round(loads[-1], 3),
            "mean_load": round(sum(loads) / len(loads), 3),
        },
        "default_budget": _time(cluster, default, repeats),
        "target_ms_per_plan": target_ms,
        "plan_peak_mib": round(peak / 2**20, 1),
    }
    if unlimited:
        policy = RebalancePolicy(max_moves=10**6, max_moves_per_hour=10**6)
        report["unlimited_budget"] = {
            **_time(cluster, policy, 1),
            "lower_bound_moves": lower_bound(cluster, policy),
        }
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="rebalance planner speed")
    parser.add_argument("--instances", type=int, help="one size only (default: both sizes)")
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--services", type=int, default=300)
    parser.add_argument("--target-ms", type=float, default=200.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    sizes: tuple[tuple[int, int, int, float], ...] = SIZES
    if args.instances:
        sizes = ((args.instances, args.tasks, args.services, args.target_ms),)
    runs = []
    for instances, tasks, services, target in sizes:
        size = {"instances": instances, "tasks": tasks, "services": services}
        easy = build(instances, tasks, services, args.seed)
        runs.append({"size": size, "layout": "easy", **measure(easy, args.repeats, target, True)})
        costly = build_costly(instances, tasks, services, args.seed)
        runs.append(
            {"size": size, "layout": "costly", **measure(costly, args.repeats, target, False)}
        )
    print(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
