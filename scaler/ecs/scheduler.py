"""The ECS service scheduler: keep each service at its desired count, within its deployment bounds.

At each reconcile, for one service with desired count D:

1. Tasks that must go (*outgoing*): those on DRAINING instances and those of an older revision
   (a deployment). PENDING outgoing tasks stop at once (ECS: "tasks in PENDING stop immediately").
2. Replacements start first, as many as are missing from D, within ``maximumPercent``: at most
   ``floor(D * max / 100)`` tasks PENDING or RUNNING in all.
3. Outgoing tasks stop while the service keeps ``ceil(D * min / 100)`` healthy tasks.
4. Surplus tasks (desired lowered) stop, pending and unhealthy ones first.
5. AZ rebalancing, for services whose first strategy is AZ spread: when steady and the AZs differ
   by more than one task, start one in the emptiest AZ, then stop one in the fullest once healthy.

So ``min 50% / max 200%`` replaces a drained instance's tasks start-first, ``max 100%`` stops half
then starts, and ``min 100% / max 100%`` never finishes draining, as ECS documents.
Tasks that cannot be placed are counted in ``ServiceState.unplaced`` (what a capacity provider
would see as PROVISIONING demand).

A daemon service (:meth:`Scheduler.reconcile_daemon`) has one task on every ACTIVE instance it
may use, whatever its desired count: old revisions are stopped, then replaced (a daemon deploys
stop-first); an instance without one gets one if it has room (none left is no demand: ECS never
launches capacity for a daemon). On a DRAINING instance the daemon task stops last, once no
replica task is left there (DEACTIVATING ones included).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from scaler.ecs.cluster import (
    DRAINING,
    FARGATE,
    PENDING,
    RUNNING,
    Cluster,
    Instance,
    ServiceSpec,
    ServiceState,
    Task,
)
from scaler.ecs.placement import Spread, choose, fits, provided, satisfies, spread_fields

AZ = "attribute:ecs.availability-zone"


@dataclass
class Reconciled:
    started: int = 0
    stopped: int = 0
    unplaced: int = 0


def bounds(desired: int, min_percent: int, max_percent: int) -> tuple[int, int]:
    """(minimum healthy tasks, maximum tasks) for a desired count."""
    return math.ceil(desired * min_percent / 100), math.floor(desired * max_percent / 100)


def outgoing(task: Task, service: ServiceState) -> bool:
    inst = task.instance
    return (inst is not None and inst.status == DRAINING) or task.revision < service.revision


class Scheduler:
    def __init__(self, cluster: Cluster, rng: random.Random, azs: Sequence[str]) -> None:
        self.cluster = cluster
        self.rng = rng
        self.azs = list(azs)  # for spreading Fargate tasks

    def reconcile(self, service: ServiceState, now: float) -> Reconciled:
        if service.spec.daemon:
            return self.reconcile_daemon(service, now)
        result = Reconciled()
        spec = service.spec
        leaving = [t for t in service.tasks.values() if outgoing(t, service)]
        for task in [t for t in leaving if t.state == PENDING]:
            self._stop(task, now, "outgoing-pending", result)  # ECS stops these at once
        leaving = [t for t in leaving if t.state == RUNNING]
        staying = [t for t in service.tasks.values() if not outgoing(t, service)]
        min_healthy, max_total = bounds(spec.desired, spec.min_healthy_percent, spec.max_percent)
        room = max_total - len(service.tasks)
        wanted = max(0, spec.desired - len(staying))
        self._start(service, min(wanted, max(0, room)), now, result)
        self._stop_leaving(service, leaving, min_healthy, now, result)
        self._stop_surplus(service, now, result)
        if not leaving and result.started == 0:
            self._rebalance_azs(service, now, result)
        service.unplaced = result.unplaced
        return result

    def reconcile_daemon(self, service: ServiceState, now: float) -> Reconciled:
        result = Reconciled()
        spec = service.spec
        for task in list(service.tasks.values()):
            inst = task.instance
            old = task.revision < service.revision
            drained = inst is not None and inst.status == DRAINING and inst.replicas() == 0
            if old or drained:
                self._stop(task, now, "deployment" if old else "drained", result)
        served = {t.instance.id for t in service.tasks.values() if t.instance is not None}
        for inst in list(self.cluster.active_instances()):
            if inst.id in served or not provided(inst, spec):
                continue
            if not satisfies(inst, spec.constraints, service) or not fits(inst, spec):
                continue
            self.cluster.start_task(service, inst, inst.az, now)
            result.started += 1
        service.unplaced = 0
        return result

    def _start(
        self,
        service: ServiceState,
        count: int,
        now: float,
        result: Reconciled,
        az: str | None = None,
    ) -> None:
        if count <= 0:
            return
        if service.spec.launch_type == "FARGATE":
            for _ in range(count):
                self.cluster.start_task(service, None, self._fargate_az(service), now)
                result.started += 1
            return
        spread = Spread(service, spread_fields(service.spec))
        pool = [i for i in self.cluster.active_instances() if az is None or i.az == az]
        for _ in range(count):
            inst = choose(pool, service, spread, self.rng)
            if inst is None:
                result.unplaced += count - _
                return
            self.cluster.start_task(service, inst, inst.az, now)
            spread.add(inst)
            result.started += 1

    def _fargate_az(self, service: ServiceState) -> str:
        counts = Counter(t.az for t in service.tasks.values())
        return (
            min(self.azs, key=lambda az: (counts[az], self.rng.random())) if self.azs else FARGATE
        )

    def _stop_leaving(
        self,
        service: ServiceState,
        leaving: list[Task],
        min_healthy: int,
        now: float,
        result: Reconciled,
    ) -> None:
        healthy = sum(1 for t in service.tasks.values() if t.healthy(now))
        can_stop = healthy - min_healthy
        for task in sorted(leaving, key=lambda t: t.healthy(now)):  # unhealthy ones first
            if task.healthy(now):
                if can_stop <= 0:
                    break
                can_stop -= 1
            reason = "drained" if task.revision == service.revision else "deployment"
            self._stop(task, now, reason, result)

    def _stop_surplus(self, service: ServiceState, now: float, result: Reconciled) -> None:
        spec = service.spec
        staying = [t for t in service.tasks.values() if not outgoing(t, service)]
        surplus = len(staying) - spec.desired
        if surplus <= 0:
            service.rebalancing = False
            return
        reason = "scale-in"
        if service.rebalancing:
            if not all(t.healthy(now) for t in staying):
                return  # an AZ-rebalancing task: stop the old one once the new one is healthy
            service.rebalancing = False
            reason = "az-rebalance"
        for task in self._victims(service, staying, now)[:surplus]:
            self._stop(task, now, reason, result)

    def _victims(self, service: ServiceState, tasks: list[Task], now: float) -> list[Task]:
        """Scale-in order: pending, unhealthy, then as the first strategy says: binpack stops the
        task on the instance left with the most free resource; otherwise the fullest AZ, then the
        instance with the most of the service's tasks."""
        by_az = Counter(t.az for t in tasks)
        by_inst = Counter(t.instance.id for t in tasks if t.instance is not None)
        first = service.spec.strategies[0] if service.spec.strategies else None
        binpack = first is not None and first.type == "binpack"

        def spare(t: Task) -> int:
            if t.instance is None:
                return 0
            memory = first is not None and first.field == "memory"
            return t.instance.free_mem if memory else t.instance.free_cpu

        def key(t: Task) -> tuple[int, int, int, int, float]:
            inst_count = by_inst[t.instance.id] if t.instance is not None else 0
            placed = (-spare(t), 0) if binpack else (-by_az[t.az], -inst_count)
            return (t.state != PENDING, t.healthy(now), *placed, self.rng.random())

        return sorted(tasks, key=key)

    def _rebalance_azs(self, service: ServiceState, now: float, result: Reconciled) -> None:
        spec = service.spec
        if not rebalances_azs(spec):
            return
        if spec.launch_type != "EC2" or spec.max_percent <= 100 or service.rebalancing:
            return
        tasks = list(service.tasks.values())
        if len(tasks) != spec.desired or not all(t.healthy(now) for t in tasks):
            return
        azs = {i.az for i in self.cluster.active_instances() if provided(i, spec)}
        if len(azs) < 2:
            return
        counts = Counter({az: 0 for az in azs})
        counts.update(t.az for t in tasks if t.az in azs)
        low = min(counts, key=lambda az: (counts[az], az))
        if max(counts.values()) - counts[low] <= 1:
            return
        before, unplaced = result.started, result.unplaced
        self._start(service, 1, now, result, az=low)
        service.rebalancing = result.started > before
        result.unplaced = unplaced  # no room for an AZ move is not demand: the service runs

    def _stop(self, task: Task, now: float, reason: str, result: Reconciled) -> None:
        self.cluster.stop_task(task, now, reason)
        result.stopped += 1


def rebalances_azs(spec: ServiceSpec) -> bool:
    """ECS AZ rebalancing applies to services whose first strategy is AZ spread."""
    first = spec.strategies[0] if spec.strategies else None
    return (
        spec.az_rebalancing and first is not None and first.type == "spread" and first.field == AZ
    )


def instances_in(cluster: Cluster, az: str) -> list[Instance]:
    return [i for i in cluster.instances.values() if i.az == az]
