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

CPU load: with ``SCALER_LOAD_SOURCE=measured`` a moved task may not take its new instance over
``SCALER_HOT_THRESHOLD`` (CloudWatch's measure), as in the simulator; with ``reserved`` only
ECS's reservations limit where tasks go. In dry-run the decisions are logged and nothing is
tagged or drained.
"""

from __future__ import annotations

import logging
import math

from scaler.aws.clients import AwsClients
from scaler.aws.live import LiveCluster, live_cluster, with_measured_cpu
from scaler.aws.retiring import Ec2Facts
from scaler.plan.capacity import CapacityMemory, CapacityPolicy, CapacitySnapshot
from scaler.plan.consolidate import (
    ConsolidationPlan,
    ConsolidationPolicy,
    paused,
    plan_consolidation,
)
from scaler.plan.scale_in import capacity_agrees
from scaler.prices import SPOT_SHARE
from scaler.settings import LoadSource, Settings

log = logging.getLogger(__name__)


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

    def due(self, now: float) -> bool:
        return now - self._last >= self._every

    async def plan(
        self,
        snap: CapacitySnapshot,
        facts: dict[str, Ec2Facts],
        memory: CapacityMemory,
        ours: frozenset[str],
    ) -> ConsolidationPlan:
        """The instances to drain now (nothing is changed); ``ours``: those being drained for
        consolidation already."""
        self._last = snap.now
        self.drained_at = [t for t in self.drained_at if snap.now - t < 3600.0]
        quiet = paused(snap.now, self.policy, memory.last_spot_trouble(), self.started)
        if quiet is not None:  # nothing to plan: the live cluster is not read
            return ConsolidationPlan((), (quiet,))
        live = await live_cluster(self._aws, self._settings.cluster)
        if self._settings.load_source == LoadSource.MEASURED:
            live = await with_measured_cpu(self._aws, live)
        candidates = self._annotate(live, snap, facts)
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
