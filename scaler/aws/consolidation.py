"""Scale in by consolidation in AWS: give back instances whose tasks fit elsewhere.

With ``SCALER_CONSOLIDATE=true`` the capacity cycle, at most every
``SCALER_CONSOLIDATE_INTERVAL`` seconds and only when the cluster is settled (nothing launching,
draining for another reason, under a spot notice, unplaced, rolling, and a capacity plan that adds
or gives back nothing),
builds the model of the live cluster (:mod:`scaler.aws.live`) and asks
:func:`scaler.plan.consolidate.plan_consolidation` which instances of the scaler's groups can
go. Candidates are instances of the scaler's groups that run no standalone task; every ACTIVE
instance may take their tasks. The capacity planner has a veto
(:func:`scaler.plan.scale_in.capacity_agrees`), so consolidation never takes away what the
next top-up would launch back (headroom, the on-demand base).

Each chosen instance is tagged ``scaler:retiring=consolidation`` and drained (reason
``consolidation``); the capacity cycle terminates it once it holds no task of any status (one
being stopped still counts), with its group's desired capacity decremented
(:mod:`scaler.aws.retiring`). Budgets: the disruption budget
(``SCALER_DISRUPTION_BUDGET``, the instances the scaler drains by its own choice count), at
most ``SCALER_CONSOLIDATE_PER_HOUR`` drains an hour (counted in memory: a restart forgets
them), ``SCALER_CONSOLIDATE_MIN_AGE`` (from ECS's registration, else EC2's launch time; an
instance of unknown age stays), ``SCALER_CONSOLIDATE_MIN_SAVING`` and nothing within
``SCALER_CONSOLIDATE_QUIET_AFTER`` of spot trouble or of the scaler's start.

Reads: a plan reads the whole live cluster (every task: a ListTasks page and a DescribeTasks
call per 100). A plan that chose nothing stands, and the cluster is not read again, while
nothing it depended on has changed: the capacity reader's fingerprint of the cluster (which
changes whenever a task starts, stops or moves: :mod:`scaler.aws.read_memory`), the capacity
snapshot the veto plans on, the instances being drained, the hour's drains, each pool's last
trouble and EC2's facts on the groups' instances; and only until time alone could change it:
an instance growing old enough to be given back, or a duration running out (a pool's
cooldown, the return to spot, a quiet period, a notice: :func:`scaler.plan.scale_in.next_turn`);
``REPLAN_AFTER`` seconds at most. With ``SCALER_LOAD_SOURCE=measured`` every plan reads
(CloudWatch's load moves by itself).

CPU load: with ``SCALER_LOAD_SOURCE=measured`` a moved task may not take its new instance over
``SCALER_HOT_THRESHOLD`` (CloudWatch's measure), as in the simulator; with ``reserved`` only
ECS's reservations limit where tasks go. In dry-run the decisions are logged and nothing is
tagged or drained.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable
from dataclasses import dataclass, replace

from scaler.aws.clients import AwsClients
from scaler.aws.live import LiveCluster, live_cluster, with_measured_cpu
from scaler.aws.retiring import Ec2Facts
from scaler.aws.services import Definitions
from scaler.plan.capacity import CapacityMemory, CapacityPolicy, CapacitySnapshot
from scaler.plan.consolidate import (
    ConsolidationPlan,
    ConsolidationPolicy,
    paused,
    plan_consolidation,
)
from scaler.plan.scale_in import capacity_agrees, next_turn
from scaler.prices import SPOT_SHARE
from scaler.settings import LoadSource, Settings

log = logging.getLogger(__name__)

# seconds a plan that chose nothing stands at most while nothing it saw changed and no duration
# it depends on ran out: for what neither the fingerprint nor the snapshot shows
REPLAN_AFTER = 6 * 3600.0


@dataclass(frozen=True)
class _Inputs:
    """What a plan depended on, as the capacity cycle sees it without reading the cluster."""

    seen: Hashable  # the capacity reader's fingerprint
    ours: frozenset[str]
    removed_last_hour: int
    memory: CapacityMemory  # each pool's last trouble and failed launch
    facts: frozenset[tuple[str, Ec2Facts]]
    snapshot: CapacitySnapshot  # what the capacity veto plans on, its time left out


def policy_from(settings: Settings) -> ConsolidationPolicy:
    measured = settings.load_source == LoadSource.MEASURED
    return ConsolidationPolicy(
        max_disrupted=settings.disruption_budget,
        max_per_hour=settings.consolidate_per_hour,
        min_age=settings.consolidate_min_age,
        min_saving=settings.consolidate_min_saving,
        keep_free=settings.consolidate_keep_free,
        quiet_after=settings.consolidate_quiet_after,
        after_start=settings.consolidate_after_start,
        max_load=settings.hot_threshold,
        pause_when_hot=measured,
    )


class Consolidator:
    """Plans consolidation on the live cluster; remembers this hour's drains."""

    def __init__(
        self,
        aws: AwsClients,
        settings: Settings,
        capacity: CapacityPolicy,
        every: float,
        started: float | None = None,
    ) -> None:
        """``started``: when the scaler started (its clock's time), the start of a quiet
        period; None (a one-off plan, as ``scaler plan`` shows): no quiet period for it."""
        self._aws = aws
        self.started = started
        self._settings = settings
        self._capacity = capacity
        self._every = every
        self.policy = policy_from(settings)
        self.drained_at: list[float] = []
        self._last = -math.inf
        self._definitions = Definitions()
        self._stands: tuple[_Inputs, float] | None = None  # a plan that chose nothing, until
        self._stood_at = -math.inf  # when a plan last made or found the stand
        self.reads = 0  # plans that read the live cluster

    def due(self, now: float) -> bool:
        return now - self._last >= self._every

    def stands_until(self, now: float) -> float:
        """Until when a plan on unchanged inputs comes out as the last one did (for quiet
        cycles, :mod:`scaler.capacity.quiet`): the next due time, or later while a plan that
        chose nothing stands, was made or found standing at ``now`` (on this cycle's inputs),
        and no drain of this hour's budget is forgotten."""
        due = self._last + self._every
        if self._stands is None or self._stood_at != now:
            return due
        return max(due, min([self._stands[1], *(t + 3600.0 for t in self.drained_at)]))

    async def plan(
        self,
        snap: CapacitySnapshot,
        facts: dict[str, Ec2Facts],
        memory: CapacityMemory,
        ours: frozenset[str],
        seen: Hashable = None,
    ) -> ConsolidationPlan:
        """The instances to drain now (nothing is changed); ``ours``: those being drained for
        consolidation already; ``seen``: the capacity reader's fingerprint (None: unknown, the
        cluster is read)."""
        self._last = snap.now
        self.drained_at = [t for t in self.drained_at if snap.now - t < 3600.0]
        quiet = paused(snap.now, self.policy, memory.last_spot_trouble(), self.started)
        if quiet is not None:  # nothing to plan: the live cluster is not read
            self._stands = None  # what stood before the pause stands no more
            return ConsolidationPlan((), (quiet,))
        inputs = self._inputs(snap, facts, memory, ours, seen)
        if self._stands is not None and inputs == self._stands[0] and snap.now < self._stands[1]:
            self._stood_at = snap.now
            return ConsolidationPlan()  # the last plan chose nothing, and nothing changed
        self.reads += 1
        live = await live_cluster(self._aws, self._settings.cluster, self._definitions)
        if self._settings.load_source == LoadSource.MEASURED:
            live = await with_measured_cpu(self._aws, live)
        candidates = self._annotate(live, snap, facts)
        plan = self._plan(live, snap, memory, ours, candidates)
        self._stands = None
        if inputs is not None and not plan.remove:
            self._stands = (inputs, self._until(live, candidates, snap, memory))
            self._stood_at = snap.now
        return plan

    def _inputs(
        self,
        snap: CapacitySnapshot,
        facts: dict[str, Ec2Facts],
        memory: CapacityMemory,
        ours: frozenset[str],
        seen: Hashable,
    ) -> _Inputs | None:
        """What a plan depends on that the cycle sees; None: unknown (a plan always reads)."""
        if seen is None or self._settings.load_source == LoadSource.MEASURED:
            return None
        return _Inputs(
            seen,
            ours,
            len(self.drained_at),
            memory,
            frozenset(facts.items()),
            replace(snap, now=0.0),
        )

    def _until(
        self,
        live: LiveCluster,
        candidates: frozenset[str],
        snap: CapacitySnapshot,
        memory: CapacityMemory,
    ) -> float:
        """How long a plan that chose nothing stands: until the next candidate grows old enough
        (``SCALER_CONSOLIDATE_MIN_AGE``) or a duration the plan depends on runs out
        (:func:`scaler.plan.scale_in.next_turn`), ``REPLAN_AFTER`` at most."""
        now = snap.now
        ripening = [
            at + self.policy.min_age
            for iid in candidates
            if (at := live.model.instances[iid].registered_at) is not None
            and at + self.policy.min_age > now
        ]
        turn = next_turn(snap, memory, self._capacity, self.policy, self.started)
        return min([now + REPLAN_AFTER, turn, *ripening])

    def _plan(
        self,
        live: LiveCluster,
        snap: CapacitySnapshot,
        memory: CapacityMemory,
        ours: frozenset[str],
        candidates: frozenset[str],
    ) -> ConsolidationPlan:
        return plan_consolidation(
            live.model.instances,
            live.model.services,
            snap.now,
            self.policy,
            draining=len(ours),
            removed_last_hour=len(self.drained_at),
            last_trouble=memory.last_spot_trouble(),
            only=candidates,
            agrees=capacity_agrees(snap, memory, self._capacity),
            started=self.started,
        )

    def _annotate(
        self, live: LiveCluster, snap: CapacitySnapshot, facts: dict[str, Ec2Facts]
    ) -> frozenset[str]:
        """Give the model's instances their group, capacity type, price and age; return those
        consolidation may remove (the scaler's groups' instances without standalone tasks)."""
        managed = {p.name for p in snap.pools if p.managed}
        nodes = {n.id: n for n in snap.nodes}
        candidates: set[str] = set()
        for iid, inst in live.model.instances.items():
            node = nodes.get(iid)
            if node is None or node.pool not in managed:
                continue
            inst.pool, inst.capacity = node.pool, node.capacity
            if node.capacity != "on-demand":
                inst.price = round(inst.price * SPOT_SHARE, 5)
            launched = facts[iid].launched_at if iid in facts else None
            known = max(inst.registered_at or 0.0, launched or 0.0)
            inst.registered_at = known if known > 0 else snap.now  # unknown age: too young
            if not live.standalone.get(iid):
                candidates.add(iid)
        return frozenset(candidates)
