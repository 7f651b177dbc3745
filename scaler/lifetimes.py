"""How long instances take to join the cluster and to leave it, for the lifetime histograms.

The capacity controller shows each cycle's view to :class:`Lifetimes`: the pools' nodes (an
instance a group launched that ECS has not registered yet is ``launching``) and the cluster's
container instances. From one view to the next it sees an instance first launching, then
registered (``scaler_instance_registration_seconds``); first DRAINING, then without tasks, then
gone from the cluster (``scaler_instance_drain_seconds{stage}``). Times are those of the views,
so each is known to within one capacity cycle. Instances are tracked by id only while they are
seen, and only in memory: the histograms have no instance label.
"""

from __future__ import annotations

from collections.abc import Iterable

from scaler.metrics import Metrics
from scaler.model import ContainerInstance
from scaler.plan.capacity import NodeView


class Lifetimes:
    """Turns successive views of the cluster into registration and drain durations."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._launching: dict[str, float] = {}  # instance id -> first seen launching
        self._draining: dict[str, float] = {}  # -> first seen DRAINING with tasks
        self._empty: dict[str, float] = {}  # -> first seen DRAINING without tasks
        self._pools: dict[str, str] = {}  # instance id -> its pool, at the last view

    def pool_of(self, instance_id: str) -> str | None:
        """The pool an instance was in at the last view; None if not in one."""
        return self._pools.get(instance_id)

    def observe(
        self, nodes: Iterable[NodeView], instances: Iterable[ContainerInstance], now: float
    ) -> None:
        """One view, taken at ``now`` (seconds)."""
        registered = {ci.ec2_instance_id: ci for ci in instances}
        nodes = list(nodes)
        self._pools = {node.id: node.pool for node in nodes}
        for node in nodes:
            if node.status == "launching" and node.id not in registered:
                self._launching.setdefault(node.id, now)
        for iid in [i for i in self._launching if i in registered]:
            self._metrics.registration_seconds.observe(now - self._launching.pop(iid))
        for iid, ci in registered.items():
            self._drain_step(iid, ci, now)
        self._gone(set(registered), {n.id for n in nodes}, now)

    def _drain_step(self, iid: str, ci: ContainerInstance, now: float) -> None:
        if not ci.draining or iid in self._empty:
            return
        if ci.running_tasks > 0:
            self._draining.setdefault(iid, now)
            return
        self._empty[iid] = now
        since = self._draining.pop(iid, None)
        if since is not None:  # seen with tasks: the drain's start is known
            self._metrics.drain_seconds.labels("drain_to_empty").observe(now - since)

    def _gone(self, registered: set[str], launching: set[str], now: float) -> None:
        for iid in [i for i in self._empty if i not in registered]:
            self._metrics.drain_seconds.labels("empty_to_terminated").observe(
                now - self._empty.pop(iid)
            )
        for iid in [i for i in self._draining if i not in registered]:
            del self._draining[iid]  # left with tasks still on it: no whole drain to time
        for iid in [i for i in self._launching if i not in launching]:
            del self._launching[iid]  # never registered

    def tracked(self) -> int:
        """How many instances are being followed."""
        return len(self._launching) + len(self._draining) + len(self._empty)
