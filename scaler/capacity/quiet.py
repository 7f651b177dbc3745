"""Quiet cycles: the capacity cycle skipped while nothing it reads can have changed.

A capacity cycle at 500 instances reads every container instance, service, group and EC2
instance, and plans, every ``SCALER_CAPACITY_INTERVAL`` seconds, though in a settled cluster
nothing it reads changes for hours. After a cycle that left the cluster **settled**
(:func:`unsettled` says None):

- the cycle changed nothing, its capacity plan launches, gives back and evacuates nothing;
- no instance is launching, DRAINING or under a notice, no task waits for a place, every group
  has started what it was asked for and holds its desired capacity, EC2's facts were read;
- neither a roll nor a Spot Fleet migration is configured (a new launch template version
  announces itself by no event; a migration reads its fleets each cycle);

the next cycles only look whether anything changed since the settled cycle's read began
(:class:`Quiet`): the notice board (a warning, a recommendation, another replica's notice or
replacement request, an ECS event another replica took: a ``changed`` notice), the count of
events the handler took for the cluster (an ECS container instance changing state, an EC2
instance stopping, a lifecycle action), the actuator's count of changes, and a probe of the
reader's (the cluster's task, service and instance counts and the Auto Scaling groups' sizes and
instances: DescribeClusters and DescribeAutoScalingGroups, two calls; the services' counts and
deployments, DescribeServices, every few probes; a task ECS cannot place comes as an event).
While all are as the settled cycle
left them, the cycle is **quiet**: it reads and plans nothing and counts as a cycle that found
nothing missing or coming. A full cycle runs at once when any differs, when the controller is
woken (a drain, a replacement asked for), and at the latest when a turn ripens that time alone
brings (:func:`ripens`: a pool's cooldown, storm window or return to spot after trouble, an
idle instance's scale-in, consolidation's next plan) or ``QUIET_CYCLES`` intervals after the last
full cycle, so that what no probe shows (a task stopped outside any service) outlives a quarter
of an hour at most.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass

from scaler.capacity.observed import Observed
from scaler.plan.capacity import CapacityMemory, CapacityPlan, CapacityPolicy

QUIET_CYCLES = 30  # intervals (15 minutes at the default 30 s) between full cycles, at most


@dataclass(frozen=True)
class Quiet:
    """What a settled cycle left: the marks the next cycles compare, and until when they may
    be quiet."""

    marks: Hashable
    until: float


def unsettled(
    observed: Observed,
    plan: CapacityPlan,
    changed: bool,
    asked: Mapping[str, float],
    rolling: bool,
) -> str | None:
    """Why the cycle that observed ``observed`` and planned ``plan`` did not leave the cluster
    settled, or None. ``changed``: the cycle changed something; ``asked``: the groups still
    owing instances they were asked for; ``rolling``: a roll or migration may act."""
    snap = observed.snapshot
    pools = {p.name: p for p in snap.pools}
    reasons = (
        (changed, "the cycle changed something"),
        (bool(plan.launches(pools) or plan.release or plan.evacuate), "the plan acts"),
        (rolling, "a roll or a migration may act"),
        (observed.facts is None, "EC2's facts were not read"),
        (any(n.status == "launching" or n.doomed for n in snap.nodes), "instances in motion"),
        (bool(observed.stale), "instances drain past the drain timeout"),
        (any(s.unplaced or s.settling for s in snap.services), "tasks wait for a place"),
        (bool(asked), "groups owe instances"),
        (any(n != observed.live.get(g, 0) for g, n in observed.desired.items()), "groups resize"),
    )
    return next((why for failed, why in reasons if failed), None)


def ripens(
    now: float,
    memory: CapacityMemory,
    policy: CapacityPolicy,
    idle: Mapping[str, float],
    scale_in_after: float | None,
    others: Iterable[float] = (),
) -> float:
    """The earliest time after ``now`` at which the same reading could be planned otherwise:
    a trouble's cooldown, storm window or return to spot ending, an idle instance due for
    scale-in, or one of ``others`` (inf: none)."""
    spans = (policy.pool_cooldown, policy.revert_after, policy.storm_window)
    troubles = [*memory.interrupted.values(), *memory.failed.values()]
    turns = [at + span for at in troubles for span in spans]
    if scale_in_after is not None:
        turns += [since + scale_in_after for since in idle.values()]
    return min((t for t in (*turns, *others) if t > now), default=math.inf)
