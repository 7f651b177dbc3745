"""Capacity top-up in AWS: read a capacity snapshot, carry out a capacity plan.

:class:`CapacityController` runs :func:`scaler.plan.capacity.plan_capacity` every
``SCALER_CAPACITY_INTERVAL`` seconds and whenever the handler drained something. It reads:

- the configured Auto Scaling groups (``SCALER_SPOT_POOLS``, ``SCALER_ON_DEMAND_POOLS``): their
  instances and desired capacity; the instance types' CPU and memory (DescribeInstanceTypes);
- the cluster's container instances (free CPU and memory, DRAINING or not) and the notices the
  handler has heard of (:class:`~scaler.notices.NoticeBoard`);
- the services (desired and running counts, task sizes, where their tasks run) and the Fargate
  companions of those allowed to overflow (``SCALER_OVERFLOW_SERVICES``).

It acts only with absolute values: ``SetDesiredCapacity`` to a group's target, ``UpdateService``
to a companion's desired count, so a retry or a second replica repeats a value instead of adding
to it. Evacuations are ``StopTask``; returning to spot drains an on-demand instance and, once it
holds no task, ``TerminateInstanceInAutoScalingGroup`` with the desired capacity decremented.

Groups owned by ECS managed scaling (tag ``AmazonECSManaged``) are refused at start: ECS sets
their desired capacity itself and would undo the scaler's. The scaler coexists with them by
leaving them alone and topping up through groups of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from scaler.aws.clients import AwsClients
from scaler.aws.drainer import Drainer
from scaler.aws.ecs import InstanceDirectory
from scaler.aws.retry import Backoff
from scaler.aws.taskdefs import fargate_problem, reservation
from scaler.metrics import Metrics
from scaler.model import ContainerInstance
from scaler.notices import NoticeBoard
from scaler.plan.capacity import (
    ON_DEMAND,
    SPOT,
    CapacityMemory,
    CapacityPlan,
    CapacityPolicy,
    CapacitySnapshot,
    NodeView,
    PoolView,
    ServiceView,
    deficit,
    plan_capacity,
)
from scaler.prices import on_demand_price
from scaler.settings import ConfigError, Settings

log = logging.getLogger(__name__)

LAUNCHING_STATES = frozenset({"Pending", "Pending:Wait", "Pending:Proceed"})


def policy_from(settings: Settings) -> CapacityPolicy:
    return CapacityPolicy(
        headroom=settings.headroom,
        pool_cooldown=settings.pool_cooldown,
        max_on_demand=settings.max_on_demand,
        max_overflow_tasks=settings.max_overflow_tasks,
        max_hourly_spend=settings.max_hourly_spend,
        revert_after=settings.revert_after,
        revert_batch=settings.revert_batch,
        evacuate_lead=settings.evacuate_lead,
    )


@dataclass
class Observed:
    """A snapshot and what carrying out its plan needs that the planner does not."""

    snapshot: CapacitySnapshot
    tasks: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (svc, node) -> ARNs
    max_size: dict[str, int] = field(default_factory=dict)
    instances: dict[str, ContainerInstance] = field(default_factory=dict)


class CapacityReader:
    def __init__(
        self, aws: AwsClients, settings: Settings, directory: InstanceDirectory, board: NoticeBoard
    ) -> None:
        self._aws = aws
        self._settings = settings
        self._directory = directory
        self._board = board
        self._types: dict[str, tuple[int, int, float]] = {}  # type -> (cpu units, MiB, $/h)
        self._task_sizes: dict[str, tuple[int, int]] = {}

    @property
    def groups(self) -> dict[str, str]:
        """Auto Scaling group name -> capacity type."""
        return {
            **{g: SPOT for g in self._settings.spot_pools},
            **{g: ON_DEMAND for g in self._settings.on_demand_pools},
        }

    async def validate(self) -> None:
        """Refuse groups that do not exist or that ECS managed scaling owns, and overflow
        companions whose task definition cannot run on Fargate."""
        problems: list[str] = []
        found = {g["AutoScalingGroupName"]: g for g in await self._describe_groups()}
        for name, capacity in self.groups.items():
            variable = "SCALER_SPOT_POOLS" if capacity == SPOT else "SCALER_ON_DEMAND_POOLS"
            group = found.get(name)
            if group is None:
                problems.append(f"{variable}: Auto Scaling group {name!r} not found")
            elif any(t.get("Key") == "AmazonECSManaged" for t in group.get("Tags", [])):
                problems.append(
                    f"{variable}: {name!r} is owned by ECS managed scaling; the "
                    "scaler tops up through groups of its own"
                )
        problems += await self._check_companions()
        if problems:
            raise ConfigError(problems)

    async def _check_companions(self) -> list[str]:
        pairs = self._settings.overflow_services
        if not pairs:
            return []
        wanted = sorted(set(pairs) | set(pairs.values()))
        described = await self._describe_services(wanted)
        problems = [
            f"SCALER_OVERFLOW_SERVICES: service {n!r} not found"
            for n in wanted
            if n not in described
        ]
        for companion in (c for c in pairs.values() if c in described):
            arn = described[companion]["taskDefinition"]
            td = (await self._aws.ecs.describe_task_definition(taskDefinition=arn))[
                "taskDefinition"
            ]
            why = fargate_problem(td)
            if why:
                problems.append(
                    f"SCALER_OVERFLOW_SERVICES: {companion!r} cannot run on Fargate: {why}"
                )
        return problems

    async def _describe_groups(self) -> list[dict[str, Any]]:
        names = list(self.groups)
        groups: list[dict[str, Any]] = []
        for i in range(0, len(names), 50):
            reply = await self._aws.autoscaling.describe_auto_scaling_groups(
                AutoScalingGroupNames=names[i : i + 50]
            )
            groups += reply.get("AutoScalingGroups", [])
        return groups

    async def _describe_services(self, names: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for i in range(0, len(names), 10):
            reply = await self._aws.ecs.describe_services(
                cluster=self._settings.cluster, services=names[i : i + 10]
            )
            for svc in reply.get("services", []):
                if svc.get("status") == "ACTIVE":
                    found[svc["serviceName"]] = svc
        return found

    async def _type_info(self, names: set[str]) -> None:
        missing = sorted(n for n in names if n not in self._types)
        for i in range(0, len(missing), 100):
            reply = await self._aws.ec2.describe_instance_types(InstanceTypes=missing[i : i + 100])
            for t in reply.get("InstanceTypes", []):
                vcpu = int(t["VCpuInfo"]["DefaultVCpus"])
                price = on_demand_price(t["InstanceType"], vcpu)
                self._types[t["InstanceType"]] = (
                    vcpu * 1024,
                    int(t["MemoryInfo"]["SizeInMiB"]),
                    price,
                )

    async def _task_size(self, arn: str) -> tuple[int, int]:
        if arn not in self._task_sizes:
            td = (await self._aws.ecs.describe_task_definition(taskDefinition=arn))[
                "taskDefinition"
            ]
            cpu, memory = reservation(td)
            self._task_sizes[arn] = (cpu or 128, memory or 128)
        return self._task_sizes[arn]

    async def read(self, now: float) -> Observed:
        groups = await self._describe_groups()
        types = {i["InstanceType"] for g in groups for i in g.get("Instances", [])}
        await self._type_info(types)
        instances = {ci.ec2_instance_id: ci for ci in await self._directory.refresh()}
        observed = Observed(CapacitySnapshot(now, (), (), ()), instances=instances)
        nodes, pools = self._nodes_and_pools(groups, instances, now, observed)
        services = await self._services(instances, observed)
        observed.snapshot = CapacitySnapshot(now, tuple(nodes), tuple(pools), tuple(services))
        return observed

    def _nodes_and_pools(
        self,
        groups: list[dict[str, Any]],
        instances: dict[str, ContainerInstance],
        now: float,
        observed: Observed,
    ) -> tuple[list[NodeView], list[PoolView]]:
        kinds = self.groups
        member: dict[str, str] = {}
        nodes: list[NodeView] = []
        pools: list[PoolView] = []
        for g in groups:
            name = g["AutoScalingGroupName"]
            observed.max_size[name] = int(g.get("MaxSize", 0))
            live = [
                i
                for i in g.get("Instances", [])
                if i.get("LifecycleState", "").startswith(("Pending", "InService"))
            ]
            itype = next((i["InstanceType"] for i in g.get("Instances", [])), "")
            cpu, mem, price = self._types.get(itype, (4096, 8192, on_demand_price(itype, 4)))
            size = 0
            for inst in live:
                member[inst["InstanceId"]] = name
                ci = instances.get(inst["InstanceId"])
                ends = self._board.ends.get(inst["InstanceId"])
                if ci is None and inst["LifecycleState"] in LAUNCHING_STATES | {"InService"}:
                    nodes.append(
                        NodeView(
                            inst["InstanceId"],
                            name,
                            inst["AvailabilityZone"],
                            kinds[name],
                            "launching",
                            cpu,
                            mem,
                            cpu,
                            mem,
                            ends,
                        )
                    )
                if ends is None and (ci is None or not ci.draining):
                    size += 1
            pools.append(PoolView(name, kinds[name], "*", cpu, mem, price, max(size, 0)))
        for ci in instances.values():
            if ci.status not in ("ACTIVE", "DRAINING"):
                continue
            pool = member.get(ci.ec2_instance_id, "")
            capacity = kinds.get(pool, SPOT)
            nodes.append(
                NodeView(
                    ci.ec2_instance_id,
                    pool,
                    "",
                    capacity,
                    ci.status,
                    ci.cpu,
                    ci.memory,
                    ci.free_cpu,
                    ci.free_memory,
                    self._board.ends.get(ci.ec2_instance_id),
                    ci.running_tasks + ci.pending_tasks,
                )
            )
        return nodes, pools

    async def _services(
        self, instances: dict[str, ContainerInstance], observed: Observed
    ) -> list[ServiceView]:
        arns: list[str] = []
        paginator = self._aws.ecs.get_paginator("list_services")
        async for page in paginator.paginate(
            cluster=self._settings.cluster, PaginationConfig={"PageSize": 100}
        ):
            arns += page.get("serviceArns", [])
        names = [a.rsplit("/", 1)[-1] for a in arns]
        described = await self._describe_services(names)
        by_arn = {ci.arn: ci.ec2_instance_id for ci in instances.values()}
        placed = await self._tasks_by_service(by_arn, observed)
        companions = self._settings.overflow_services
        views = []
        for name, svc in sorted(described.items()):
            if name in companions.values():
                continue
            cpu, mem = await self._task_size(svc["taskDefinition"])
            running = int(svc.get("runningCount", 0)) + int(svc.get("pendingCount", 0))
            companion = companions.get(name)
            views.append(
                ServiceView(
                    name,
                    int(svc.get("desiredCount", 0)),
                    cpu,
                    mem,
                    dict(placed.get(name, {})),
                    unplaced=max(0, int(svc.get("desiredCount", 0)) - running),
                    healthy=int(svc.get("runningCount", 0)),
                    overflow=companion,
                    overflow_desired=int(described[companion]["desiredCount"])
                    if companion in described
                    else 0,
                )
            )
        return views

    async def _tasks_by_service(
        self, by_arn: dict[str, str], observed: Observed
    ) -> dict[str, Counter[str]]:
        arns: list[str] = []
        paginator = self._aws.ecs.get_paginator("list_tasks")
        async for page in paginator.paginate(
            cluster=self._settings.cluster,
            desiredStatus="RUNNING",
            PaginationConfig={"PageSize": 100},
        ):
            arns += page.get("taskArns", [])
        placed: dict[str, Counter[str]] = defaultdict(Counter)
        for i in range(0, len(arns), 100):
            reply = await self._aws.ecs.describe_tasks(
                cluster=self._settings.cluster, tasks=arns[i : i + 100]
            )
            for task in reply.get("tasks", []):
                group = str(task.get("group", ""))
                node = by_arn.get(task.get("containerInstanceArn", ""))
                if group.startswith("service:") and node:
                    service = group.split(":", 1)[1]
                    placed[service][node] += 1
                    observed.tasks.setdefault((service, node), []).append(task["taskArn"])
        return placed


class CapacityActuator:
    """Carries out a plan; in dry-run it only logs and counts."""

    def __init__(
        self,
        aws: AwsClients,
        settings: Settings,
        drainer: Drainer,
        metrics: Metrics,
        backoff: Backoff,
    ) -> None:
        self._aws = aws
        self._settings = settings
        self._drainer = drainer
        self._metrics = metrics
        self._backoff = backoff
        self.releasing: set[str] = set()

    async def apply(self, plan: CapacityPlan, observed: Observed) -> None:
        snap = observed.snapshot
        pools = {p.name: p for p in snap.pools}
        for name, count in plan.launches(pools).items():
            target = min(pools[name].size + count, observed.max_size.get(name, 10**6))
            await self._act(
                "set_desired",
                name,
                lambda n=name, t=target: self._aws.autoscaling.set_desired_capacity(
                    AutoScalingGroupName=n, DesiredCapacity=t, HonorCooldown=False
                ),
            )
        current = {s.overflow: s.overflow_desired for s in snap.services if s.overflow}
        for companion, desired in plan.overflow_targets.items():
            if current.get(companion) != desired:
                await self._act(
                    "overflow",
                    companion,
                    lambda c=companion, d=desired: self._aws.ecs.update_service(
                        cluster=self._settings.cluster, service=c, desiredCount=d
                    ),
                )
        for service, node in plan.evacuate:
            for arn in observed.tasks.get((service, node), []):
                await self._act(
                    "evacuate",
                    service,
                    lambda a=arn: self._aws.ecs.stop_task(
                        cluster=self._settings.cluster,
                        task=a,
                        reason="scaler: evacuated before the spot notice ends",
                    ),
                )
        await self._release(plan.release, observed)

    async def _release(self, release: tuple[str, ...], observed: Observed) -> None:
        for node in release:
            ci = observed.instances.get(node)
            if ci is not None and await self._drainer.drain(ci, "revert_to_spot") in (
                "ok",
                "already",
            ):
                self.releasing.add(node)
        for node in sorted(self.releasing):
            ci = observed.instances.get(node)
            if ci is None or ci.running_tasks + ci.pending_tasks == 0:
                await self._act(
                    "terminate",
                    node,
                    lambda n=node: self._aws.autoscaling.terminate_instance_in_auto_scaling_group(
                        InstanceId=n, ShouldDecrementDesiredCapacity=True
                    ),
                )
                self.releasing.discard(node)

    async def _act(self, action: str, target: str, call: Any) -> None:
        if self._settings.dry_run:
            log.info(f"dry run: would {action}", extra={"target": target})
            self._metrics.actions.labels(action, target, "dry_run").inc()
            return
        try:
            await self._backoff.call(action, call)
        except Exception as exc:
            self._metrics.actions.labels(action, target, "failed").inc()
            log.error(f"{action} failed", extra={"target": target, "error": repr(exc)})
            return
        self._metrics.actions.labels(action, target, "ok").inc()
        log.info(action, extra={"target": target})


class CapacityController:
    """Plans capacity periodically and on demand; remembers troubled pools."""

    def __init__(
        self,
        reader: CapacityReader,
        actuator: CapacityActuator,
        board: NoticeBoard,
        policy: CapacityPolicy,
        metrics: Metrics,
        interval: float,
    ) -> None:
        self._reader = reader
        self._actuator = actuator
        self._board = board
        self._policy = policy
        self._metrics = metrics
        self._interval = interval
        self.memory = CapacityMemory()
        self.wake = asyncio.Event()
        self.last_plan: CapacityPlan | None = None
        self.ready = asyncio.Event()  # set after a plan that needed no new capacity

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.cycle()
            except Exception:
                log.exception("capacity cycle failed")
            self.wake.clear()
            waiters = {asyncio.create_task(stop.wait()), asyncio.create_task(self.wake.wait())}
            await asyncio.wait(waiters, timeout=self._interval, return_when="FIRST_COMPLETED")
            for w in waiters:
                w.cancel()

    async def cycle(self) -> CapacityPlan:
        now = time.time()
        self._board.prune(now)
        observed = await self._reader.read(now)
        self._remember_troubles(observed.snapshot)
        plan = plan_capacity(observed.snapshot, self.memory, self._policy)
        for reason in plan.reasons:
            log.info("capacity decision", extra={"reason": reason})
        await self._actuator.apply(plan, observed)
        self._observe(observed.snapshot, plan)
        self.last_plan = plan
        pools = {p.name: p for p in observed.snapshot.pools}
        launching = any(n.status == "launching" for n in observed.snapshot.nodes)
        if not plan.launches(pools) and not launching:
            self.ready.set()
        else:
            self.ready.clear()
        return plan

    def _remember_troubles(self, snap: CapacitySnapshot) -> None:
        """A notice or recommendation for an instance marks its spot pool as troubled."""
        spot = {p.name for p in snap.pools if p.capacity == SPOT}
        pool_of = {n.id: n.pool for n in snap.nodes if n.pool in spot}
        for iid, at in self._board.noticed.items():
            if iid in pool_of:
                self.memory = self.memory.noting(pool_of[iid], at)

    def _observe(self, snap: CapacitySnapshot, plan: CapacityPlan) -> None:
        cpu, mem = deficit(snap, self._policy)
        self._metrics.deficit.labels("cpu").set(cpu)
        self._metrics.deficit.labels("memory").set(mem)
        counts = Counter(n.capacity for n in snap.nodes if not n.doomed)
        for capacity in (SPOT, ON_DEMAND):
            self._metrics.capacity.labels(capacity).set(counts[capacity])
        self._metrics.capacity.labels("fargate").set(sum(plan.overflow_targets.values()))
        self._metrics.fallback_active.set(1 if counts[ON_DEMAND] else 0)
        for companion, desired in plan.overflow_targets.items():
            self._metrics.overflow_tasks.labels(companion).set(desired)
        if plan.release:
            self._metrics.reverts.inc(len(plan.release))
