"""What one capacity cycle observed, and the judgements made on it before a removal.

An :class:`Observed` is the pure :class:`~scaler.plan.capacity.CapacitySnapshot` the planners
read, plus what carrying out their plans needs that they do not: the tasks to stop, each
group's sizes, the raw group descriptions, EC2's facts (the retiring tags) and the roll's drift.
A reader builds it at the start of a cycle; the controller and the actuator update it as they
act, so that a later step of the same cycle judges on what the earlier ones did.

Nothing is removed that its group cannot spare (:func:`spare`: Auto Scaling refuses to take a
group below its MinSize) or whose removal would unbalance its group's AZs while Auto Scaling may
rebalance them itself (:func:`balanced`, :mod:`scaler.plan.az_balance`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from scaler.aws.retiring import Ec2Facts
from scaler.capacity import LOGGER
from scaler.model import ContainerInstance
from scaler.plan.az_balance import balanced_removals
from scaler.plan.capacity import CapacitySnapshot, NodeView
from scaler.plan.scale_in import without

log = logging.getLogger(LOGGER)

AZ_REBALANCE = "AZRebalance"


@dataclass(frozen=True)
class Drift:
    outdated: frozenset[str] = frozenset()  # launched from an older template version or image
    retiring: frozenset[str] = frozenset()  # tagged by the roll before it drained them


@dataclass
class Observed:
    """A snapshot and what carrying out its plan needs that the planner does not."""

    snapshot: CapacitySnapshot
    tasks: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (svc, node) -> ARNs
    max_size: dict[str, int] = field(default_factory=dict)
    min_size: dict[str, int] = field(default_factory=dict)  # Auto Scaling group -> MinSize
    desired: dict[str, int] = field(default_factory=dict)  # group -> DesiredCapacity
    live: dict[str, int] = field(default_factory=dict)  # group -> Pending or InService instances
    instances: dict[str, ContainerInstance] = field(default_factory=dict)
    groups: list[dict[str, Any]] = field(default_factory=list)  # as DescribeAutoScalingGroups
    drift: Drift = field(default_factory=Drift)  # out-of-date instances, and those retiring
    facts: dict[str, Ec2Facts] | None = None  # EC2's, on the groups' instances (None: not read)
    migrating: frozenset[str] = frozenset()  # Spot Fleet instances still to be replaced
    stale: tuple[NodeView, ...] = ()  # DRAINING with no live reason: left out of the snapshot
    # what changes whenever a task starts, stops or moves (:mod:`scaler.aws.read_memory`)
    fingerprint: Hashable = None


def live_instances(group: dict[str, Any]) -> list[dict[str, Any]]:
    """A group's instances that are launching or in service (not leaving)."""
    return [
        i
        for i in group.get("Instances", [])
        if i.get("LifecycleState", "").startswith(("Pending", "InService"))
    ]


def group_members(observed: Observed) -> dict[str, frozenset[str]]:
    """Auto Scaling group (not template pool) -> its live instances."""
    return {
        g["AutoScalingGroupName"]: frozenset(str(i["InstanceId"]) for i in live_instances(g))
        for g in observed.groups
        if g["AutoScalingGroupName"] in observed.min_size
    }


def note_retiring(observed: Observed, node: str, reason: str) -> None:
    """``node`` tagged retiring for ``reason`` this cycle: its facts say so before EC2's do."""
    facts = observed.facts if observed.facts is not None else {}
    facts[node] = replace(facts.get(node, Ec2Facts()), retiring=reason)
    observed.facts = facts


def draining(snap: CapacitySnapshot, node: str) -> CapacitySnapshot:
    """``snap`` with ``node`` drained: the next removal is judged without it."""
    return without(snap, frozenset({node}))


def spare(observed: Observed, nodes: Iterable[str]) -> list[str]:
    """Those of ``nodes`` their groups can spare: each group may lose its desired capacity less
    its MinSize less the instances already retiring from it (each will be terminated with the
    desired capacity decremented, which Auto Scaling refuses below MinSize)."""
    pool_of = {n.id: n.pool for n in observed.snapshot.nodes}
    left = _spare_counts(observed)
    kept: list[str] = []
    for node in nodes:
        pool = pool_of.get(node, "")
        if pool in observed.min_size and left[pool] <= 0:
            log.info(
                "group at its MinSize: instance kept",
                extra={"group": pool, "instance": node, "min_size": observed.min_size[pool]},
            )
            continue
        left[pool] -= 1
        kept.append(node)
    return kept


def _spare_counts(observed: Observed) -> Counter[str]:
    """Group -> how many instances it may still lose: its desired capacity less its MinSize less
    the instances already retiring from it."""
    facts = observed.facts or {}
    left: Counter[str] = Counter(
        {g: observed.desired.get(g, 0) - observed.min_size.get(g, 0) for g in observed.min_size}
    )
    for n in observed.snapshot.nodes:
        f = facts.get(n.id)
        if n.status == "DRAINING" and f is not None and f.retiring is not None and not f.gone:
            left[n.pool] -= 1
    return left


def rebalancing(group: dict[str, Any]) -> bool:
    """Whether Auto Scaling may rebalance the group's AZs by terminating an instance itself:
    an Auto Scaling group (not a template pool) in several AZs, ``AZRebalance`` not suspended."""
    suspended = {p.get("ProcessName") for p in group.get("SuspendedProcesses", [])}
    return (
        "MinSize" in group
        and len(group.get("AvailabilityZones", [])) > 1
        and AZ_REBALANCE not in suspended
    )


def balanced(observed: Observed, nodes: Iterable[str]) -> list[str]:
    """Those of ``nodes`` whose removal, one after another, keeps their group's AZs balanced
    (:mod:`scaler.plan.az_balance`), where Auto Scaling would rebalance them itself; nodes of
    other groups all stay."""
    az_of = {n.id: (n.pool, n.az) for n in observed.snapshot.nodes}
    counts = _az_counts(observed)
    kept: list[str] = []
    for node in nodes:
        pool, az = az_of.get(node, ("", ""))
        if pool not in counts:
            kept.append(node)
        elif balanced_removals(counts[pool], [(node, az)]):
            counts[pool][az] -= 1
            kept.append(node)
        else:
            log.info(
                "instance kept: its removal would unbalance its group's AZs (AZRebalance)",
                extra={"group": pool, "instance": node, "az": az},
            )
    return kept


def _az_counts(observed: Observed) -> dict[str, Counter[str]]:
    """Group Auto Scaling may rebalance -> its instances (not leaving) in each of its AZs."""
    groups = {g["AutoScalingGroupName"]: g for g in observed.groups if rebalancing(g)}
    counts: dict[str, Counter[str]] = {
        name: Counter({az: 0 for az in g.get("AvailabilityZones", [])})
        for name, g in groups.items()
    }
    for n in observed.snapshot.nodes:
        if n.pool in counts and not n.doomed:
            counts[n.pool][n.az] += 1
    return counts
