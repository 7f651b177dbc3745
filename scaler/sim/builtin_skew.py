"""Built-in scenarios whose CPU skews at every seed: what task rebalancing is for.

Each runs a cluster of :data:`SIZE` instances of 4 vCPU (m5.xlarge and c5.xlarge, spread over
3 AZs) for :data:`HOURS` hours, under everyday spot interruptions, with task rebalancing on
(``SCALER_TASK_REBALANCE=true`` in the scenario's settings; ``SCALER_TASK_REBALANCE=false`` in
the environment of ``scaler simulate`` wins over it and runs the same scaler without it):

- ``skew``: reservations below use. Every service places AZ then binpack(memory), and its tasks
  use 1.2 to 1.5 times the CPU they reserve: ECS packs instances by reservation, so every packed
  instance runs CPU-hot. Moving a task does not help (binpack puts it back on the instance it
  left), and with reservations raised to the use packed instances still run above 80%.
- ``skew-surge``: a deployment surge. Services spread AZ then instance, each with one or two
  tasks on every instance, using 0.95 to 1.15 times the CPU they reserve. Ten minutes in the
  operator adds a third more instances, then, a quarter hour in, deploys every service: the
  surge places the new tasks on the instances with the fewest of the service's tasks, the fresh
  ones, which end with about twice the mean load once the old tasks stop.
- ``skew-mix``: both. Half the services binpack(memory) with tasks using more than they reserve,
  half spread AZ then instance as in ``skew-surge``; the same added instances and deployment
  of every service.
"""

from __future__ import annotations

import random

from scaler.ecs.cluster import ServiceSpec, Strategy
from scaler.sim.scenario import Event, Scenario

NAMES = ("skew", "skew-surge", "skew-mix")
SIZE = 18  # instances at the start: 6 per AZ, so a third more is 2 more per AZ
HOURS = 4.0
FILL = 0.6  # share of the starting CPU the services reserve
SURGE_FILL = 0.65  # ... in skew-surge and skew-mix
ADDED = 1 / 3  # instances the operator adds before the deployment, as a share of the cluster
ADD_AT, DEPLOY_AT = 600.0, 900.0
SETTINGS = {"SCALER_TASK_REBALANCE": True}
BINPACK = (Strategy("spread", "attribute:ecs.availability-zone"), Strategy("binpack", "memory"))
SPREAD = (Strategy("spread", "attribute:ecs.availability-zone"), Strategy("spread", "instanceId"))


def builtin(name: str, seed: int = 7, instances: int | None = None) -> Scenario:
    """The skew scenario ``name`` at ``instances`` (by default :data:`SIZE`); the seed fixes its
    services and prices."""
    from scaler.sim.builtin import TYPES, _pools  # it lists these names

    if name not in NAMES:
        raise KeyError(name)
    instances = SIZE if instances is None else instances
    rng = random.Random(f"{name}:{seed}:{instances}")
    pools = _pools(instances, rng)
    budget = FILL * 4096 * instances
    if name == "skew":
        specs = _binpack(8, budget, rng)
        events: tuple[Event, ...] = ()
    elif name == "skew-surge":
        specs = _spread(6, instances, SURGE_FILL * 4096 * instances, rng)
        events = _surge()
    else:
        budget = SURGE_FILL * 4096 * instances / 2
        specs = _binpack(4, budget, rng) + _spread(3, instances, budget, rng, first=4)
        events = _surge()
    return Scenario(name, HOURS, dict(TYPES), pools, specs, events, settings=dict(SETTINGS))


def _surge() -> tuple[Event, ...]:
    return (
        Event(ADD_AT, "add_instances", {"share": ADDED}),
        Event(DEPLOY_AT, "deploy", {"share": 1.0}),
    )


def _binpack(count: int, budget: float, rng: random.Random) -> tuple[ServiceSpec, ...]:
    """``count`` services placed AZ then binpack(memory) reserving about ``budget`` CPU units,
    their tasks using 1.2 to 1.5 times their reservation."""
    specs = []
    for n in range(count):
        cpu = rng.choice([256, 512, 1024])
        desired = max(3, round(budget / count / cpu))
        specs.append(_spec(n, desired, cpu, BINPACK, round(rng.uniform(1.2, 1.5), 2), rng))
    return tuple(specs)


def _spread(
    count: int, instances: int, budget: float, rng: random.Random, first: int = 0
) -> tuple[ServiceSpec, ...]:
    """``count`` services placed AZ then instance, each with about one or two tasks per instance
    (give or take a task or two, so that their AZs are not all even), reserving about ``budget``
    CPU units, their tasks using 0.95 to 1.15 times their reservation."""
    desired = [rng.choice([1, 2]) * instances + rng.choice([-1, 0, 1, 2]) for _ in range(count)]
    weights = [rng.uniform(0.7, 1.3) for _ in range(count)]
    scale = budget / sum(w * d for w, d in zip(weights, desired, strict=True))
    specs = []
    for n, (d, w) in enumerate(zip(desired, weights, strict=True)):
        cpu = max(128, round(scale * w / 32) * 32)
        use = round(rng.uniform(0.95, 1.15), 2)
        specs.append(_spec(first + n, d, cpu, SPREAD, use, rng))
    return tuple(specs)


def _spec(
    n: int, desired: int, cpu: int, strategies: tuple[Strategy, ...], use: float, rng: random.Random
) -> ServiceSpec:
    min_healthy = rng.choice([100, 100, 50])
    return ServiceSpec(
        name=f"svc-{n:02d}",
        desired=desired,
        cpu=cpu,
        memory=int(cpu * 1.5),
        min_healthy_percent=min_healthy,
        max_percent=200,
        strategies=strategies,
        cpu_use=use,
        start_delay=round(rng.uniform(10, 40)),
        health_delay=round(rng.uniform(20, 60)),
    )
