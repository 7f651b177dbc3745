"""Which recommended instances to drain now: within the disruption budget, where there is room.

A burst of rebalance recommendations must not drain every instance it names in the same second:
ECS would then stop each service's tasks down to its minimum healthy percent in one window. So
recommendation drains (never spot interruption warnings, lifecycle actions or state changes,
which drain at once) wait here until both hold:

- **budget**: at most ``SCALER_DISRUPTION_BUDGET`` of the registered instances (at least one;
  :func:`scaler.plan.roll.disruption_budget`) are disrupted by recommendation drains at once,
  counting those already under way (the adapter says which members are ``disrupting``: the
  scaler's recommendation drains whose tasks are still moving);
- **room**: the CPU and memory its tasks reserve fit in the free room of the ACTIVE instances
  that are neither disrupting nor waiting themselves (room promised to one admitted instance is
  not promised again). A replacement that registers brings its room with it.

The oldest recommendation goes first. One that has waited ``expire_after`` seconds (the time
after which a recommendation drain would be undone anyway) is dropped: the instance stays.

An admitted instance may wait a while before its drain (its services' surge, up to
``SCALER_REPLACEMENT_TIMEOUT``), and spot may take instances meanwhile, shrinking the budget:
:func:`still_within` says whether it may drain when the time comes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from scaler.plan.roll import disruption_budget


@dataclass(frozen=True)
class Waiting:
    """A recommended instance waiting for its drain."""

    instance_id: str
    since: float  # when it was recommended, epoch seconds
    cpu: int  # CPU units its tasks reserve
    memory: int  # MiB its tasks reserve


@dataclass(frozen=True)
class Member:
    """A registered container instance."""

    instance_id: str
    status: str  # ACTIVE | DRAINING
    free_cpu: int
    free_memory: int
    disrupting: bool  # draining (or about to) for a reason that uses the budget


@dataclass(frozen=True)
class Admission:
    drain: tuple[str, ...] = ()
    held: dict[str, str] = field(default_factory=dict)  # instance id -> why it waits
    expired: tuple[str, ...] = ()
    budget: int = 0  # instances that may be disrupted at once


def still_within(instance_id: str, members: Sequence[Member], share: float) -> bool:
    """Whether ``instance_id``, admitted a while ago, may drain now: the budget of the cluster
    as it is now holds it beside the other disrupting members."""
    live = sum(1 for m in members if m.status in ("ACTIVE", "DRAINING"))
    others = sum(1 for m in members if m.disrupting and m.instance_id != instance_id)
    return others < disruption_budget(share, live)


def admit(
    waiting: Sequence[Waiting],
    members: Sequence[Member],
    share: float,
    now: float,
    expire_after: float,
) -> Admission:
    """Which of ``waiting`` to drain now, which keep waiting (and why), which to drop."""
    asked = {w.instance_id for w in waiting}
    live = sum(1 for m in members if m.status in ("ACTIVE", "DRAINING"))
    budget = disruption_budget(share, live)
    slots = budget - sum(1 for m in members if m.disrupting)
    hosts = [
        m
        for m in members
        if m.status == "ACTIVE" and not m.disrupting and m.instance_id not in asked
    ]
    cpu, memory = sum(m.free_cpu for m in hosts), sum(m.free_memory for m in hosts)
    drain: list[str] = []
    held: dict[str, str] = {}
    expired: list[str] = []
    for w in sorted(waiting, key=lambda w: (w.since, w.instance_id)):
        if now - w.since >= expire_after:
            expired.append(w.instance_id)
        elif slots <= 0:
            held[w.instance_id] = (
                f"disruption budget in use ({budget - slots} of {budget} instances)"
            )
        elif w.cpu > cpu or w.memory > memory:
            short = f"CPU {w.cpu} > {cpu}" if w.cpu > cpu else f"memory {w.memory} > {memory}"
            held[w.instance_id] = f"no room elsewhere for its tasks ({short} free)"
        else:
            drain.append(w.instance_id)
            slots, cpu, memory = slots - 1, cpu - w.cpu, memory - w.memory
    return Admission(tuple(drain), held, tuple(expired), budget)
