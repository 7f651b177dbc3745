"""Which EC2 instances belong to this cluster, and what state their container instances are in.

Instance-level events (spot warnings, rebalance recommendations, state changes) cannot be filtered
by cluster in the EventBridge rule, so every scaler sees every instance in the account and region.
:class:`InstanceDirectory` keeps a map of this cluster's EC2 instance ids to their container
instances, built with paginated ``ListContainerInstances`` (100 a page) and batched
``DescribeContainerInstances`` (100 a call). It is refreshed when older than its TTL, or when an id
is missing and the last refresh started more than ``min_refresh_interval`` seconds before the
question was asked. A lookup (on the way to a drain) refreshes with the urgent ECS client; a
full refresh (capacity cycles, the drain gate, the reactivator) with the background one, behind
the priority gate. Concurrent misses share one refresh: a burst of 500 warnings, most of them for
other clusters' instances, costs a refresh or two, not 500. ECS container-instance state-change
events keep the map current between refreshes (:meth:`InstanceDirectory.update`), which closes
most of the short window in which a just-registered instance could be missed.

Filtering happens client-side: the scaler does not rely on the list API's filter expression.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from scaler.clock import Clock
from scaler.model import ContainerInstance
from scaler.plan.undrain import ATTRIBUTE as DRAIN_MARK

log = logging.getLogger(__name__)

DESCRIBE_BATCH = 100
PROVIDER_ATTRIBUTE = "ecs.capacity-provider-name"  # set by ECS on a capacity provider's instances
GONE = frozenset({"INACTIVE", "DEREGISTERING", "DEREGISTERED"})


def _container_instance(raw: dict[str, Any]) -> ContainerInstance:
    return ContainerInstance(
        arn=raw["containerInstanceArn"],
        ec2_instance_id=raw.get("ec2InstanceId", ""),
        status=raw.get("status", "UNKNOWN"),
        running_tasks=int(raw.get("runningTasksCount", 0)),
        pending_tasks=int(raw.get("pendingTasksCount", 0)),
        agent_connected=bool(raw.get("agentConnected", True)),
        version=int(raw.get("version", 0)),
        cpu=resource(raw, "registeredResources", "CPU"),
        memory=resource(raw, "registeredResources", "MEMORY"),
        free_cpu=resource(raw, "remainingResources", "CPU"),
        free_memory=resource(raw, "remainingResources", "MEMORY"),
        drain_mark=attribute(raw, DRAIN_MARK),
        capacity_provider=str(
            raw.get("capacityProviderName") or attribute(raw, PROVIDER_ATTRIBUTE) or ""
        ),
        availability_zone=attribute(raw, "ecs.availability-zone"),
        instance_type=attribute(raw, "ecs.instance-type"),
    )


def attribute(raw: dict[str, Any], name: str) -> str:
    """The value of a described container instance's attribute ``name``; "" if it has none."""
    for item in raw.get("attributes", []):
        if item.get("name") == name:
            return str(item.get("value") or "")
    return ""


def resource(raw: dict[str, Any], key: str, name: str) -> int:
    """An integer resource (CPU, MEMORY) of a described container instance; 0 if absent."""
    for item in raw.get(key, []):
        if item.get("name") == name:
            return int(item.get("integerValue", 0))
    return 0


async def list_container_instance_arns(ecs: Any, cluster: str) -> list[str]:
    arns: list[str] = []
    paginator = ecs.get_paginator("list_container_instances")
    async for page in paginator.paginate(cluster=cluster, PaginationConfig={"PageSize": 100}):
        arns.extend(page.get("containerInstanceArns", []))
    return arns


async def describe_container_instances_raw(
    ecs: Any, cluster: str, arns: Sequence[str]
) -> list[dict[str, Any]]:
    """ECS's own description of ``arns``, in calls of 100, concurrently."""
    chunks = [arns[i : i + DESCRIBE_BATCH] for i in range(0, len(arns), DESCRIBE_BATCH)]
    answers = await asyncio.gather(
        *(
            ecs.describe_container_instances(cluster=cluster, containerInstances=list(c))
            for c in chunks
        )
    )
    return [raw for a in answers for raw in a.get("containerInstances", [])]


async def describe_container_instances(
    ecs: Any, cluster: str, arns: Sequence[str]
) -> list[ContainerInstance]:
    """Describe ``arns`` in calls of 100, concurrently."""
    return [
        _container_instance(raw)
        for raw in await describe_container_instances_raw(ecs, cluster, arns)
    ]


class InstanceDirectory:
    """EC2 instance id -> this cluster's container instance, cached and refreshed on a miss."""

    def __init__(
        self,
        ecs: Any,
        cluster: str,
        clock: Clock,
        ttl: float,
        min_refresh_interval: float = 2.0,
        *,
        urgent_ecs: Any = None,
    ) -> None:
        self._ecs = ecs  # full refreshes: the background client, behind the priority gate
        self._urgent_ecs = ecs if urgent_ecs is None else urgent_ecs  # lookups before a drain
        self._cluster = cluster
        self._clock = clock
        self._ttl = ttl
        self._min_interval = min_refresh_interval
        self._by_instance: dict[str, ContainerInstance] = {}
        self._refreshed_at: float | None = None  # monotonic start time of the last refresh
        self._refreshing: asyncio.Task[None] | None = None
        self.refreshes = 0

    async def resolve(self, instance_ids: Iterable[str]) -> dict[str, ContainerInstance]:
        """The container instances of those ids that are in this cluster (others are absent)."""
        asked_at = self._clock.monotonic()
        wanted = set(instance_ids)
        if self._stale(asked_at) or not wanted <= self._by_instance.keys():
            # a refresh that began shortly before the question (a burst's first) answers it too
            await self._refresh_since(asked_at - self._min_interval, self._urgent_ecs)
        return {i: self._by_instance[i] for i in wanted if i in self._by_instance}

    def forget(self, instance_id: str) -> None:
        self._by_instance.pop(instance_id, None)

    def update(self, instance: ContainerInstance) -> None:
        """Record a newer state (from an ECS event or the scaler's own call) without a refresh.

        A state with a lower ECS ``version`` than the one held is older news and is dropped;
        version 0 means "unknown" and always applies.
        """
        held = self._by_instance.get(instance.ec2_instance_id)
        if held and instance.version and held.version > instance.version:
            return
        if held and instance.drain_mark is None:  # an event does not carry the mark
            instance = replace(instance, drain_mark=held.drain_mark)
        if held and not (instance.cpu or instance.memory):  # nor resources, counts, provider
            instance = replace(
                instance,
                running_tasks=held.running_tasks,
                pending_tasks=held.pending_tasks,
                cpu=held.cpu,
                memory=held.memory,
                free_cpu=held.free_cpu,
                free_memory=held.free_memory,
                capacity_provider=held.capacity_provider,
            )
        if held and not instance.availability_zone:  # nor the instance's AZ and type
            instance = replace(
                instance,
                availability_zone=held.availability_zone,
                instance_type=held.instance_type,
            )
        if instance.status in GONE:
            self._by_instance.pop(instance.ec2_instance_id, None)
        else:
            self._by_instance[instance.ec2_instance_id] = instance

    def known(self) -> list[ContainerInstance]:
        return list(self._by_instance.values())

    async def refresh(self) -> list[ContainerInstance]:
        """Read every container instance now (a capacity plan wants current free resources)."""
        await self._refresh_since(self._clock.monotonic(), self._ecs)
        return self.known()

    def age(self) -> float | None:
        """Seconds since the last full refresh began (None: never refreshed)."""
        if self._refreshed_at is None:
            return None
        return self._clock.monotonic() - self._refreshed_at

    def _stale(self, now: float) -> bool:
        return self._refreshed_at is None or now - self._refreshed_at > self._ttl

    async def _refresh_since(self, asked_at: float, ecs: Any) -> None:
        """Make sure a refresh that started at or after ``asked_at`` has completed (a new one
        made with ``ecs``)."""
        if self._fresh_since(asked_at):
            return
        while True:
            if self._refreshing is None:
                self._refreshing = asyncio.create_task(self._refresh(ecs))
            task = self._refreshing
            try:
                await asyncio.shield(task)
            finally:
                if self._refreshing is task and task.done():
                    self._refreshing = None
            if self._fresh_since(asked_at):
                return

    def _fresh_since(self, moment: float) -> bool:
        return self._refreshed_at is not None and self._refreshed_at >= moment

    async def _refresh(self, ecs: Any) -> None:
        started = self._clock.monotonic()
        arns = await list_container_instance_arns(ecs, self._cluster)
        instances = await describe_container_instances(ecs, self._cluster, arns)
        self._by_instance = {ci.ec2_instance_id: ci for ci in instances if ci.ec2_instance_id}
        self._refreshed_at = started
        self.refreshes += 1
        log.debug("container instances refreshed", extra={"count": len(self._by_instance)})
