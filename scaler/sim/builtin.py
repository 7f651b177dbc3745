"""Built-in scenarios, generated from a few size parameters and a seed.

- ``steady``: a spot cluster under everyday interruption rates (the 10-15%-a-month bucket).
- ``storm``: early in the run, a correlated reclaim of 30% of the spot pools (3 of 9, drawn from
  all of them whatever a policy uses) within 5 minutes; half the reclaimed instances get a
  rebalance recommendation 10 minutes ahead; reclaimed pools have no spot capacity for an hour.
- ``az-outage``: one AZ's instances vanish without notice and the AZ takes no launches for an hour.
- ``diurnal``: three days of demand swinging 2x (peak at midnight, half at noon), a deployment
  of a third of the services each morning.
- ``deploy-skew``: spread-placed services (AZ then instance, or AZ then binpack memory) whose
  tasks use more CPU than they reserve. The operator adds a quarter more instances as headroom,
  then deploys every service: the surge piles new tasks onto the fresh instances, which stay
  CPU-hot while the old ones idle.
- ``ami-roll``: a steady cluster whose launch template gets a new image 10 minutes in: every
  instance is out of date and must be replaced, under everyday spot interruptions.
- ``fleet-250`` and ``big-tasks``: see :mod:`scaler.sim.builtin_fleet` (fixed sizes).
- ``skew``, ``skew-surge`` and ``skew-mix``: CPU hot spots at every seed (reservations below
  use in binpack services, a deployment surge onto fresh instances, and both); see
  :mod:`scaler.sim.builtin_skew`.
"""

from __future__ import annotations

import math
import random

from scaler.ecs.cluster import Constraint, InstanceType, ServiceSpec, Strategy
from scaler.sim import builtin_fleet, builtin_market, builtin_skew
from scaler.sim.scenario import Event, Pool, Scenario

AZS = ("us-east-1a", "us-east-1b", "us-east-1c")
TYPES = {
    t.name: t
    for t in (
        InstanceType("m5.large", 2, 8192, 0.096),
        InstanceType("m5.xlarge", 4, 16384, 0.192),
        InstanceType("c5.xlarge", 4, 8192, 0.17),
        InstanceType("m5.2xlarge", 8, 32768, 0.384),
    )
}
SPOT_TYPES = ("m5.xlarge", "c5.xlarge", "m5.2xlarge")
EVERYDAY_RATE = 0.15 / 720  # interruptions per instance-hour: 15% a month

AZ_SPREAD = Strategy("spread", "attribute:ecs.availability-zone")
LAYOUTS = (
    (AZ_SPREAD, Strategy("spread", "instanceId")),  # AZ balanced spread (console default)
    (AZ_SPREAD, Strategy("binpack", "memory")),  # AZ balanced binpack
    (Strategy("binpack", "cpu"),),  # binpack
)
NAMES: tuple[str, ...] = ("steady", "storm", "az-outage", "deploy-skew", "diurnal", "ami-roll")
NAMES += builtin_fleet.NAMES  # built by scaler.sim.builtin_fleet
NAMES += builtin_market.NAMES  # built by scaler.sim.builtin_market
NAMES += builtin_skew.NAMES  # built by scaler.sim.builtin_skew


def _pools(instances: int, rng: random.Random) -> tuple[Pool, ...]:
    """Spot pools of every type in every AZ (the cluster starts on the first two types), and an
    on-demand pool per AZ."""
    homes = [(t, az) for t in SPOT_TYPES[:2] for az in AZS]
    initial = {home: instances // len(homes) for home in homes}
    for home in homes[: instances % len(homes)]:
        initial[home] += 1
    pools = [
        Pool(
            f"spot-{t}-{az}",
            "spot",
            t,
            az,
            round(TYPES[t].on_demand_price * rng.uniform(0.30, 0.40), 4),
            EVERYDAY_RATE,
            initial.get((t, az), 0),
        )
        for t in SPOT_TYPES
        for az in AZS
    ]
    pools += [Pool(f"od-m5.xlarge-{az}", "on-demand", "m5.xlarge", az) for az in AZS]
    return tuple(pools)


def _capacity(pools: tuple[Pool, ...]) -> int:
    return sum(TYPES[p.instance_type].cpu_units * p.initial for p in pools)


def _services(
    count: int,
    tasks: int,
    cpu_budget: int,
    rng: random.Random,
    layouts: tuple[tuple[Strategy, ...], ...] = LAYOUTS,
) -> tuple[ServiceSpec, ...]:
    weights = [rng.uniform(0.2, 1.0) for _ in range(count)]
    total = sum(weights)
    desired = [max(1, round(tasks * w / total)) for w in weights]
    per_task = cpu_budget / sum(desired)
    specs = []
    for n, d in enumerate(desired):
        cpu = max(128, int(per_task * rng.uniform(0.6, 1.4)) // 128 * 128)
        layout = layouts[n % len(layouts)]
        # mostly the ECS defaults (100/200), some services that accept a dip (50/200)
        min_healthy, max_percent = rng.choice([(100, 200), (100, 200), (100, 200), (50, 200)])
        specs.append(
            ServiceSpec(
                name=f"svc-{n:03d}",
                desired=d,
                cpu=cpu,
                memory=int(cpu * 1.5),
                min_healthy_percent=min_healthy,
                max_percent=max_percent,
                strategies=layout,
                constraints=(Constraint("distinctInstance"),) if d <= 3 else (),
                cpu_use=round(rng.uniform(0.3, 0.9), 2),
                start_delay=round(rng.uniform(10, 40)),
                health_delay=round(rng.uniform(20, 60)),
                fargate_overflow=n % 4 == 0,
            )
        )
    return tuple(specs)


def builtin(
    name: str,
    *,
    instances: int | None = None,
    tasks: int | None = None,
    services: int | None = None,
    seed: int = 7,
) -> Scenario:
    """A built-in scenario at the given size (by default 48 instances, 480 tasks and 24
    services; those of :mod:`scaler.sim.builtin_market` are bigger); the seed fixes its layout."""
    if name not in NAMES:
        raise KeyError(name)
    if name in builtin_fleet.NAMES:
        return builtin_fleet.builtin(name, seed)
    if name in builtin_skew.NAMES:
        return builtin_skew.builtin(name, seed, instances)
    if name in builtin_market.NAMES:
        sizes = {"instances": instances, "tasks": tasks, "services": services}
        return builtin_market.builtin(name, seed=seed, **sizes)
    instances = 48 if instances is None else instances
    tasks = 480 if tasks is None else tasks
    services = 24 if services is None else services
    rng = random.Random(f"{name}:{seed}:{instances}:{tasks}:{services}")
    pools = _pools(instances, rng)
    budget = int(_capacity(pools) * 0.62)
    layouts = LAYOUTS[:2] if name == "deploy-skew" else LAYOUTS
    specs = _services(services, tasks, budget, rng, layouts)
    hours = {
        "steady": 24.0 * 7,
        "storm": 2.0,
        "az-outage": 2.0,
        "deploy-skew": 4.0,
        "diurnal": 72.0,
        "ami-roll": 6.0,
    }[name]
    events: tuple[Event, ...] = ()
    if name == "storm":
        events = (
            Event(
                900,
                "storm",
                {
                    "share": 0.3,
                    "over": 300,
                    "rebalance_share": 0.5,
                    "rebalance_lead": 600,
                    "unavailable_for": 3600,
                },
            ),
        )
    elif name == "az-outage":
        events = (Event(1200, "az_outage", {"az": AZS[1], "duration": 3600}),)
    elif name == "diurnal":
        events = _diurnal(hours)
    elif name == "ami-roll":
        events = (Event(600, "new_image", {"image": "image-2"}),)
    elif name == "deploy-skew":
        events = (
            Event(300, "add_instances", {"share": 0.25}),
            Event(900, "deploy", {"share": 1.0}),
        )
        specs = tuple(_hot(s) for s in specs)
    return Scenario(name, hours, dict(TYPES), pools, specs, events)


def _diurnal(hours: float) -> tuple[Event, ...]:
    """Demand at its peak at midnight of the scenario's clock, half of it at noon, changing
    every 30 minutes; a deployment of a third of the services every day at 10:00."""
    events = [
        Event(t * 1800.0, "scale", {"factor": round(0.75 + 0.25 * math.cos(math.pi * t / 24), 3)})
        for t in range(1, int(hours * 2))
    ]
    events += [Event(day * 86400.0 + 36000.0, "deploy", {"share": 0.33}) for day in range(3)]
    return tuple(sorted(events, key=lambda e: e.at))


def _hot(spec: ServiceSpec) -> ServiceSpec:
    from dataclasses import replace

    return replace(spec, cpu_use=min(1.2, spec.cpu_use * 1.3), max_percent=200)
