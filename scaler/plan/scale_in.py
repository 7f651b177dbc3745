"""Scale in only as far as the capacity planner agrees.

Consolidation (:mod:`scaler.plan.consolidate`) decides which instances the cluster can do
without; the capacity planner (:mod:`scaler.plan.capacity`) decides what the cluster must have:
the headroom, the on-demand base and percentage, room for every task. Were they to disagree, one
would drain an instance and the other launch it back. :func:`capacity_agrees` lets the capacity
planner judge a set of removals: the snapshot is replayed as if those instances were draining
(their tasks homeless, their groups one smaller), and the removals stand only if the plan made
on it launches nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace

from scaler.plan.capacity import CapacityMemory, CapacityPolicy, CapacitySnapshot, plan_capacity


def without(snap: CapacitySnapshot, gone: frozenset[str]) -> CapacitySnapshot:
    """``snap`` as it would be with the ``gone`` instances draining."""
    leaving = Counter(n.pool for n in snap.nodes if n.id in gone and not n.doomed)
    nodes = tuple(replace(n, status="DRAINING") if n.id in gone else n for n in snap.nodes)
    pools = tuple(replace(p, size=max(0, p.size - leaving[p.name])) for p in snap.pools)
    return replace(snap, nodes=nodes, pools=pools)


def launches_after(
    snap: CapacitySnapshot, memory: CapacityMemory, policy: CapacityPolicy, gone: frozenset[str]
) -> dict[str, int]:
    """What the capacity planner would launch, per pool, were ``gone`` drained now."""
    after = without(snap, gone)
    plan = plan_capacity(after, memory, policy)
    return plan.launches({p.name: p for p in after.pools})


def capacity_agrees(
    snap: CapacitySnapshot, memory: CapacityMemory, policy: CapacityPolicy
) -> Callable[[frozenset[str]], bool]:
    """A veto for :func:`scaler.plan.consolidate.plan_consolidation`: True when removing the
    given instances leaves nothing for the capacity planner to launch."""

    def agrees(gone: frozenset[str]) -> bool:
        return not launches_after(snap, memory, policy, gone)

    return agrees
