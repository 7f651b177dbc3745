"""Built-in scenarios of the spot market's harder shapes, on the cluster of
:mod:`scaler.sim.builtin` at 250 instances (600 tasks of about a vCPU, 24 services):

- ``az-storm``: one AZ interrupted for hours. A quarter of an hour in, a storm takes every spot
  pool of the first AZ within 10 minutes (half the instances with a rebalance recommendation two
  minutes ahead); for two hours after, spot launched there is reclaimed within 10 minutes of
  booting, so capacity must go to the other AZs.
- ``long-lead``: interruptions announced well ahead. Spot pools are interrupted at 1% per
  instance-hour, 80% of the warnings preceded by a rebalance recommendation 10 to 30 minutes
  ahead; recommendations never followed by an interruption come at 0.5% per instance-hour; an
  hour in, a storm takes half the instances of a fifth of the spot pools, announced by
  recommendations 10 to 30 minutes before it strikes.
- ``dry-market``: every spot pool without capacity for an hour (from half an hour in) while
  everyday interruptions (1% per instance-hour) go on, three times as often while it lasts:
  lost capacity can only come back on demand until spot returns.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from scaler.sim.scenario import Event, Pool, Scenario

NAMES = ("az-storm", "long-lead", "dry-market")
SIZE = (250, 600, 24)  # instances, tasks, services: 20 seeds of every policy in seconds each
HOURS = {"az-storm": 3.0, "long-lead": 3.0, "dry-market": 3.0}
LEAD = (600.0, 1800.0)  # long-lead: recommendations 10 to 30 minutes ahead
BUSY_RATE = 0.01  # interruptions per instance-hour of long-lead and dry-market: 1%


def builtin(
    name: str,
    *,
    instances: int | None = None,
    tasks: int | None = None,
    services: int | None = None,
    seed: int = 7,
) -> Scenario:
    """The built-in market scenario ``name`` at the given size (by default :data:`SIZE`); the
    seed fixes its layout."""
    instances = SIZE[0] if instances is None else instances
    tasks = SIZE[1] if tasks is None else tasks
    services = SIZE[2] if services is None else services
    from scaler.sim.builtin import TYPES, _capacity, _pools, _services  # it lists these names

    rng = random.Random(f"{name}:{seed}:{instances}:{tasks}:{services}")
    pools = _pools(instances, rng)
    specs = _services(services, tasks, int(_capacity(pools) * 0.62), rng)
    if name == "az-storm":
        events = _az_storm()
    elif name == "long-lead":
        pools = _spot(
            pools,
            interruptions_per_hour=BUSY_RATE,
            rebalance_share=0.8,
            rebalance_lead=LEAD,
            false_recommendations_per_hour=BUSY_RATE / 2,
        )
        events = _long_lead()
    elif name == "dry-market":
        rates = ((0.0, 1.0), (1800.0, 3.0), (5400.0, 1.0))
        pools = _spot(pools, interruptions_per_hour=BUSY_RATE, rates=rates)
        events = (Event(1800.0, "shortage", {"duration": 3600.0}),)
    else:
        raise KeyError(name)
    return Scenario(name, HOURS[name], dict(TYPES), pools, specs, events)


def _spot(pools: tuple[Pool, ...], **market: Any) -> tuple[Pool, ...]:
    """``pools`` with the spot ones' market keys set to ``market``."""
    return tuple(replace(p, **market) if p.capacity == "spot" else p for p in pools)


def _az_storm() -> tuple[Event, ...]:
    from scaler.sim.builtin import AZS

    storm = {
        "share": 1.0,
        "over": 600.0,
        "az": AZS[0],
        "lasts": 2 * 3600.0,
        "rebalance_share": 0.5,
        "rebalance_lead": 120.0,
        "unavailable_for": 600.0,
    }
    return (Event(900.0, "storm", storm),)


def _long_lead() -> tuple[Event, ...]:
    storm = {
        "share": 0.2,
        "take": 0.5,
        "over": 300.0,
        "rebalance_share": 0.8,
        "rebalance_lead": list(LEAD),
        "early_recommendations": True,
        "unavailable_for": 1800.0,
    }
    return (Event(3600.0, "storm", storm),)
