"""Built-in scenarios of a real fleet's shape, generated from a seed.

- ``fleet-250``: a production-sized cluster: about 200 instances at the start and 250 at the
  peak (demand rises by a quarter after 40 minutes), 30 services over 3 AZs, spot pools of
  several families, older ones (c4, m4) among them, tasks of 0.25 to 4 vCPU and 0.5 to 16 GiB,
  a logging daemon on every instance, load-balanced services with a deregistration delay, 256
  MiB of every instance reserved for the ECS agent and the OS, a deployment of a few services
  and a demand change of the largest under everyday interruptions.
- ``big-tasks``: tasks of 12 to 30 GiB and up to 6 vCPU that fit only the larger instance types
  (the cheapest, m5.large, holds none of them); demand doubles after 30 minutes.
"""

from __future__ import annotations

import random

from scaler.ecs.cluster import DAEMON, Constraint, InstanceType, ServiceSpec, Strategy
from scaler.sim.scenario import Event, Pool, Scenario

NAMES = ("fleet-250", "big-tasks")
AZS = ("us-east-1a", "us-east-1b", "us-east-1c")
EVERYDAY_RATE = 0.15 / 720  # interruptions per instance-hour: 15% a month
AZ_SPREAD = Strategy("spread", "attribute:ecs.availability-zone")
LAYOUTS = (
    (AZ_SPREAD, Strategy("spread", "instanceId")),
    (AZ_SPREAD, Strategy("binpack", "memory")),
    (Strategy("binpack", "cpu"),),
)
FLEET_TYPES = {
    t.name: t
    for t in (
        InstanceType("c4.xlarge", 4, 7680, 0.199),
        InstanceType("c4.2xlarge", 8, 15360, 0.398),
        InstanceType("m4.xlarge", 4, 16384, 0.20),
        InstanceType("m4.2xlarge", 8, 32768, 0.40),
        InstanceType("c5.2xlarge", 8, 16384, 0.34),
        InstanceType("m5.xlarge", 4, 16384, 0.192),
        InstanceType("m5.2xlarge", 8, 32768, 0.384),
        InstanceType("r5.2xlarge", 8, 65536, 0.504),
    )
}
# where the fleet starts: (type, instances per AZ)
FLEET_HOMES = (
    ("m5.2xlarge", 18),
    ("m4.2xlarge", 12),
    ("c5.2xlarge", 12),
    ("c4.2xlarge", 8),
    ("m5.xlarge", 10),
    ("r5.2xlarge", 6),
)
SHAPES = (  # (cpu units, MiB): 0.25 to 4 vCPU, 0.5 to 16 GiB
    (256, 512),
    (256, 1024),
    (512, 1024),
    (512, 2048),
    (1024, 2048),
    (1024, 4096),
    (2048, 4096),
    (2048, 8192),
    (4096, 8192),
    (4096, 16384),
)
FILL = 0.72  # share of the starting CPU the services reserve
AGENT = ServiceSpec("log-agent", 0, 128, 256, scheduling=DAEMON, start_delay=5, health_delay=5)


def builtin(name: str, seed: int = 7) -> Scenario:
    if name == "fleet-250":
        return fleet(random.Random(f"{name}:{seed}"))
    if name == "big-tasks":
        return big_tasks(random.Random(f"{name}:{seed}"))
    raise KeyError(name)


def _spot(types: dict[str, InstanceType], homes: dict[str, int], rng: random.Random) -> list[Pool]:
    return [
        Pool(
            f"spot-{t}-{az}",
            "spot",
            t,
            az,
            round(types[t].on_demand_price * rng.uniform(0.28, 0.42), 4),
            EVERYDAY_RATE,
            homes.get(t, 0),
        )
        for t in types
        for az in AZS
    ]


def fleet(rng: random.Random) -> Scenario:
    """About 200 instances, 30 services reserving 72% of their CPU; demand rises a quarter."""
    pools = _spot(FLEET_TYPES, dict(FLEET_HOMES), rng)
    pools += [Pool(f"od-m5.2xlarge-{az}", "on-demand", "m5.2xlarge", az) for az in AZS]
    cpu = sum(FLEET_TYPES[p.instance_type].cpu_units * p.initial for p in pools)
    budget = cpu * FILL - AGENT.cpu * sum(p.initial for p in pools)
    shapes = [SHAPES[n % len(SHAPES)] for n in range(30)]
    rng.shuffle(shapes)
    weights = [rng.uniform(0.3, 1.0) for _ in shapes]
    scale = budget / sum(w * s[0] for w, s in zip(weights, shapes, strict=True))
    services = [AGENT]
    for n, ((task_cpu, task_mem), w) in enumerate(zip(shapes, weights, strict=True)):
        desired = max(2, round(w * scale))
        min_healthy, max_percent = rng.choice([(100, 200), (100, 200), (50, 200)])
        services.append(
            ServiceSpec(
                name=f"svc-{n:02d}",
                desired=desired,
                cpu=task_cpu,
                memory=task_mem,
                min_healthy_percent=min_healthy,
                max_percent=max_percent,
                strategies=LAYOUTS[n % len(LAYOUTS)],
                constraints=(Constraint("distinctInstance"),) if desired <= 3 else (),
                cpu_use=round(rng.uniform(0.3, 0.8), 2),
                start_delay=round(rng.uniform(10, 60)),
                health_delay=round(rng.uniform(20, 90)),
                deregistration_delay=60.0 if n % 3 == 0 else 0.0,
            )
        )
    largest = sorted(services[1:], key=lambda s: -s.desired * s.cpu)[:4]
    events = (
        Event(1200, "deploy", {"services": [s.name for s in services[1:6]]}),
        Event(2400, "scale", {"services": [s.name for s in largest], "factor": 1.6}),
        Event(2700, "scale", {"factor": 1.25}),
    )
    return Scenario(
        "fleet-250",
        2.0,
        dict(FLEET_TYPES),
        tuple(pools),
        tuple(services),
        events,
        ecs_reserved_memory_mib=256,
    )


BIG_TYPES = {
    t.name: t
    for t in (
        InstanceType("m5.large", 2, 8192, 0.096),
        InstanceType("m5.xlarge", 4, 16384, 0.192),
        InstanceType("m5.2xlarge", 8, 32768, 0.384),
        InstanceType("m5.4xlarge", 16, 65536, 0.768),
        InstanceType("r5.2xlarge", 8, 65536, 0.504),
    )
}


def big_tasks(rng: random.Random) -> Scenario:
    """Services whose tasks fit only m5.2xlarge and larger (some only r5.2xlarge and
    m5.4xlarge), starting on 2xlarge and r5 instances; demand doubles after 30 minutes."""
    homes = {"m5.2xlarge": 3, "r5.2xlarge": 2}
    pools = _spot(BIG_TYPES, homes, rng)
    pools += [Pool(f"od-m5.2xlarge-{az}", "on-demand", "m5.2xlarge", az) for az in AZS]
    shapes = (  # (name, cpu, memory, desired)
        ("search", 4096, 20480, 4),
        ("ml-infer", 6144, 24576, 3),
        ("cache", 2048, 30720, 3),
        ("etl", 4096, 12288, 4),
        ("web", 512, 1024, 12),
    )
    services = tuple(
        ServiceSpec(
            name,
            desired,
            cpu,
            memory,
            strategies=LAYOUTS[n % len(LAYOUTS)],
            cpu_use=round(rng.uniform(0.3, 0.8), 2),
            start_delay=round(rng.uniform(20, 90)),
            health_delay=round(rng.uniform(30, 90)),
        )
        for n, (name, cpu, memory, desired) in enumerate(shapes)
    )
    return Scenario(
        "big-tasks",
        2.0,
        dict(BIG_TYPES),
        tuple(pools),
        services,
        (Event(1800, "scale", {"factor": 2.0}),),
    )
