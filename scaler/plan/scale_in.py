"""Scale in only as far as the capacity planner agrees; which instances have stood idle.

Consolidation (:mod:`scaler.plan.consolidate`) decides which instances the cluster can do
without; the capacity planner (:mod:`scaler.plan.capacity`) decides what the cluster must have:
the headroom, the on-demand base and percentage, room for every task. Were they to disagree, one
would drain an instance and the other launch it back. :func:`capacity_agrees` lets the capacity
planner judge a set of removals: the snapshot is replayed as if those instances were draining
(their tasks homeless, their groups one smaller), and the removals stand only if the plan made
on it launches nothing.

An instance is *idle* while it is ACTIVE, under no notice and runs no service task.
:func:`idle_since` carries from cycle to cycle since when each instance of the scaler's pools
has been idle; :func:`idle_for` names those idle long enough to give back (as a capacity
provider's managed scaling gives back instances empty for 15 minutes), the longest idle first;
none while spot trouble is recent (:func:`calm`): a storm under way needs the room.

A consolidation plan is a function of the cluster, the planners' memory and the time; the time
matters only where a duration runs out (:func:`next_turn`), so a plan that chose nothing can
stand until then while nothing else changes (:mod:`scaler.aws.consolidation`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace

from scaler.plan.capacity import CapacityMemory, CapacityPolicy, CapacitySnapshot, plan_capacity
from scaler.plan.consolidate import ConsolidationPolicy


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


def next_turn(
    snap: CapacitySnapshot,
    memory: CapacityMemory,
    capacity: CapacityPolicy,
    policy: ConsolidationPolicy,
    started: float | None = None,
) -> float:
    """The earliest time after ``snap.now`` at which a consolidation plan, with its capacity
    veto, could come out otherwise on the same snapshot and memory: a pool's cooldown or storm
    ending, the return to spot opening, the quiet period after trouble or after the start
    ending, a notice coming within the evacuation lead or running out (inf: none). The
    candidates' ages are the caller's to add: they need the live cluster."""
    spans = (capacity.pool_cooldown, capacity.revert_after)  # a storm lasts a cooldown too
    troubles = [*memory.interrupted.values(), *memory.failed.values()]
    turns = [at + span for at in troubles for span in (*spans, policy.quiet_after)]
    for node in snap.nodes:
        if node.notice_ends is not None:
            turns += [node.notice_ends - capacity.evacuate_lead, node.notice_ends]
    if started is not None:
        turns.append(started + policy.after_start)
    return min((t for t in turns if t > snap.now), default=math.inf)


def idle_since(
    snap: CapacitySnapshot, managed: Collection[str], before: Mapping[str, float]
) -> dict[str, float]:
    """Instance -> since when it has been idle, for the instances of ``managed`` pools idle in
    ``snap``: the time ``before`` says, or now for one idle since this snapshot."""
    return {
        n.id: before.get(n.id, snap.now)
        for n in snap.nodes
        if n.pool in managed and n.status == "ACTIVE" and not n.doomed and n.tasks == 0
    }


def idle_for(idle: Mapping[str, float], now: float, after: float) -> list[str]:
    """The instances idle at least ``after`` seconds at ``now``, the longest idle first."""
    return [i for since, i in sorted((s, i) for i, s in idle.items()) if now - since >= after]


def calm(memory: CapacityMemory, now: float, quiet: float) -> bool:
    """Whether the last spot trouble (a notice, a launch that found no spot capacity) is at
    least ``quiet`` seconds old, or there was none."""
    trouble = memory.last_spot_trouble()
    return trouble is None or now - trouble >= quiet
