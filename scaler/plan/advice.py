"""Reservation advice: services whose tasks use much more (or much less) than they reserve.

Moving tasks cannot cure every hot instance. When a service's tasks use more CPU than they
reserve, ECS still places them by their reservations: a ``binpack`` service fills an instance
to its registered CPU with tasks that together use more than that, and every replacement of a
moved task goes back to the tightest fit. The cure is the reservation itself, and changing it
is the operator's call (a new task definition revision, then a deployment): this module only
*advises*, it never changes a reservation.

**Input**, per service and resource (``cpu`` in CPU units, ``memory`` in MiB): the reservation
of one task (the task definition's ``cpu``/``memory``, or the sum of its containers'), and the
measured use of one task, one sample per period (CloudWatch's ``AWS/ECS`` ``CPUUtilization`` and
``MemoryUtilization`` of the service are a percentage of its reservation: use = percentage x
reservation).

**Rule**: no advice from fewer than ``min_samples`` samples or a window shorter than
``min_window`` seconds (one spike never advises). The 90th percentile of the samples (nearest
rank) is compared with the reservation: above ``over`` times the reservation the service
*over-uses*, below ``under`` times it *under-uses*. The advised reservation is the p90 times
``headroom``, rounded **up** to a multiple of ``step`` (64: CPU units and MiB alike; 64 CPU
units is 1/16 vCPU) and never below ``floor`` (128, the smallest task-level CPU reservation
ECS accepts on EC2). Over-use only ever raises a reservation, under-use only ever lowers it,
and advice equal to the reservation is no advice.

This makes the advice **stable**: once applied, the same use measured against the advised
reservation yields the same advised value (the p90 of the use does not change), hence no
further advice.

**Hot spots removed**: a hot instance (:func:`scaler.plan.rebalance.hot_instances`) counts as
relieved when, with the advised reservations in place of the current ones, the tasks it holds
would reserve more CPU or memory than it registers: ECS could not have placed them all there,
so after the deployments it has to spread them over more instances. A hot instance whose tasks
would still fit is not counted, even if the advice lowers its heat; an instance made hot by
tasks that reserve enough is never counted. Each advice carries the count for itself alone
(the other services at their current reservations); the plan carries the count with all of
the advice at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from scaler.ecs.cluster import Instance

CPU, MEMORY = "cpu", "memory"
RESOURCES = (CPU, MEMORY)
UNITS = {CPU: "CPU units", MEMORY: "MiB"}


@dataclass(frozen=True)
class AdvicePolicy:
    over: float = 1.1  # p90 above this times the reservation: over-use
    under: float = 0.5  # p90 below this times the reservation: under-use
    headroom: float = 1.25  # advised = p90 x headroom, rounded up (1 / the hot threshold)
    min_samples: int = 30
    min_window: float = 3600.0  # seconds the samples must span
    step: int = 64
    floor: int = 128


@dataclass(frozen=True)
class Measured:
    """The measured use of one task of ``service``, one sample per period, in the resource's
    units; ``window``: the seconds the samples span."""

    service: str
    resource: str
    reserved: int
    samples: tuple[float, ...]
    window: float


@dataclass(frozen=True)
class Evidence:
    window: float
    samples: int
    mean: float
    p90: float
    max: float


@dataclass(frozen=True)
class Advice:
    service: str
    resource: str
    reserved: int
    advised: int
    evidence: Evidence
    hot_spots_removed: int = 0  # hot instances this advice alone relieves


@dataclass(frozen=True)
class AdvicePlan:
    advice: tuple[Advice, ...] = ()
    hot: int = 0  # hot instances considered
    hot_spots_removed: int = 0  # hot instances all the advice at once relieves
    waiting: tuple[str, ...] = ()  # measurements too short to advise from, and why


def p90(samples: Sequence[float]) -> float:
    """The 90th percentile, nearest rank (a value of ``samples``)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def evidence(measured: Measured) -> Evidence:
    s = measured.samples
    return Evidence(measured.window, len(s), sum(s) / len(s), p90(s), max(s))


def advised(use: float, policy: AdvicePolicy) -> int:
    """The reservation for tasks whose p90 use is ``use``: with headroom, rounded up."""
    steps = math.ceil(round(use * policy.headroom / policy.step, 9))
    return max(policy.floor, steps * policy.step)


def enough(measured: Measured, policy: AdvicePolicy) -> bool:
    return len(measured.samples) >= policy.min_samples and measured.window >= policy.min_window


def advise_one(measured: Measured, policy: AdvicePolicy) -> Advice | None:
    """The advice for one service's resource, or None (too few samples, use near the
    reservation, or an advised value that would not move the reservation the right way)."""
    if not measured.samples or measured.reserved <= 0 or not enough(measured, policy):
        return None
    seen = evidence(measured)
    value = advised(seen.p90, policy)
    reserved = measured.reserved
    over = seen.p90 > policy.over * reserved and value > reserved
    under = seen.p90 < policy.under * reserved and value < reserved
    if not (over or under):
        return None
    return Advice(measured.service, measured.resource, reserved, value, seen)


def plan_advice(
    measurements: Iterable[Measured],
    policy: AdvicePolicy,
    hot: Sequence[Instance] = (),
) -> AdvicePlan:
    """The advice for every measured service, by service then resource; ``hot``: the hot
    instances, to count those the advice would relieve (see the module docstring)."""
    found: list[Advice] = []
    waiting: list[str] = []
    for m in sorted(measurements, key=lambda m: (m.service, m.resource)):
        if m.samples and not enough(m, policy):
            waiting.append(
                f"{m.service} {m.resource}: {len(m.samples)} samples over {m.window:.0f} s, "
                f"advice needs {policy.min_samples} over {policy.min_window:.0f} s"
            )
        one = advise_one(m, policy)
        if one is not None:
            alone = relieved(hot, {(one.service, one.resource): one.advised})
            found.append(_with_count(one, alone))
    every = {(a.service, a.resource): a.advised for a in found}
    return AdvicePlan(tuple(found), len(hot), relieved(hot, every), tuple(waiting))


def _with_count(one: Advice, count: int) -> Advice:
    return Advice(one.service, one.resource, one.reserved, one.advised, one.evidence, count)


def relieved(hot: Sequence[Instance], reservations: Mapping[tuple[str, str], int]) -> int:
    """Hot instances whose tasks would not fit on them with ``reservations`` ((service,
    resource) -> reservation per task) in place of their own."""
    count = 0
    for inst in hot:
        cpu = memory = 0
        for task in inst.tasks.values():
            spec = task.service
            cpu += reservations.get((spec.name, CPU), spec.cpu)
            memory += reservations.get((spec.name, MEMORY), spec.memory)
        count += cpu > inst.cpu or memory > inst.memory
    return count
