"""Capacity top-up in AWS: read a capacity snapshot, carry out a capacity plan.

:class:`CapacityController` runs :func:`scaler.plan.capacity.plan_capacity` every
``SCALER_CAPACITY_INTERVAL`` seconds and whenever the handler drained something. It reads:

- the configured Auto Scaling groups (``SCALER_SPOT_POOLS``, ``SCALER_ON_DEMAND_POOLS``): their
  instances and desired capacity; the instance types' CPU and memory (DescribeInstanceTypes),
  or what the group's instances registered in ECS where that is less (the ECS agent and the OS
  keep part of the memory: a task that needs more fits no instance of the group);
- the cluster's container instances (free CPU and memory, DRAINING or not) and the notices the
  handler has heard of (:class:`~scaler.notices.NoticeBoard`);
- the services (desired and running counts, task sizes, where their tasks run) and the Fargate
  companions of those allowed to overflow (``SCALER_OVERFLOW_SERVICES``);
- capacity providers (:func:`scaler.aws.services.read_providers`): each service's strategy, or
  the cluster's default, binds its tasks to its providers' instances and its top-up to the pools
  that are those providers' groups; an instance belongs to a provider by ECS's word or its group.
  Services on Fargate providers (or the Fargate launch type) need no EC2 room and are left out. A
  service whose providers' groups are none of the scaler's pools is named once in a warning:
  ECS managed scaling adds its capacity, not the scaler. A task role that may not read them
  (an older policy) is named once in a warning too, and services are then taken as unbound.

It acts only with absolute values: ``SetDesiredCapacity`` to a group's target, ``UpdateService``
to a companion's desired count, so a retry or a second replica repeats a value instead of adding
to it. A group's target is what it holds live (the instances that survive and those leaving,
which it still counts) plus what the plan adds, never its desired capacity plus a count; a group
that replaces a lost instance by itself, as Auto Scaling does, is trimmed back to the plan
(:mod:`scaler.aws.replaced`). A ``SetDesiredCapacity`` Auto Scaling refuses is asked again only
after a cooldown, a few times at most, like a refused terminate.

Evacuations are ``StopTask``; returning to spot tags an on-demand instance
``scaler:retiring=return_to_spot``, drains it and, once it holds no task,
``TerminateInstanceInAutoScalingGroup`` with the desired capacity decremented.

Nothing is retired below a group's MinSize (Auto Scaling refuses to decrement the desired capacity
below it): the return to spot and consolidation drain only what a group can spare, and a
terminate Auto Scaling refuses anyway is asked again only after a cooldown, a few times at most.
Nor does a removal unbalance a group's AZs while Auto Scaling may rebalance them itself (its
``AZRebalance`` process, which terminates without a drain, not suspended: named at start with the
command that suspends it): only instances of an AZ holding the most of the group's are drained
(:mod:`scaler.plan.az_balance`).

Groups owned by ECS managed scaling (tag ``AmazonECSManaged``) are refused at start: ECS sets
their desired capacity itself and would undo the scaler's. The scaler coexists with them by
leaving them alone and topping up through groups of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from scaler.aws.activities import LaunchFailures
from scaler.aws.clients import AwsClients, error_code
from scaler.aws.consolidation import Consolidator, unsettled
from scaler.aws.drainer import Drainer
from scaler.aws.ecs import InstanceDirectory
from scaler.aws.errors import DENIED
from scaler.aws.lease import Always, Leadership
from scaler.aws.migration import Migration, migrate, missing_fleets
from scaler.aws.replaced import GroupState, Replacements
from scaler.aws.retiring import (
    REASONS,
    RETIRING,
    RETURN_TO_SPOT,
    SURPLUS,
    Ec2Facts,
    describe,
    retiring,
)
from scaler.aws.roll import DriftReader, RollMemory, carry_out, template_spec
from scaler.aws.services import Providers, ec2_providers, on_fargate, read_providers, strategy
from scaler.aws.stale import StaleDrains
from scaler.aws.taskdefs import fargate_problem, reservation
from scaler.aws.tasks import is_empty, running_tasks
from scaler.aws.templates import TemplatePools, new_token
from scaler.capacity.observed import (
    Observed,
    balanced,
    draining,
    group_members,
    live_instances,
    note_retiring,
    rebalancing,
    spare,
)
from scaler.guard import describe_services
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
from scaler.plan.roll import RollPolicy
from scaler.plan.scale_in import launches_after
from scaler.prices import on_demand_price
from scaler.settings import ConfigError, Settings

log = logging.getLogger(__name__)

LAUNCHING_STATES = frozenset({"Pending", "Pending:Wait", "Pending:Proceed"})


def policy_from(settings: Settings) -> CapacityPolicy:
    return CapacityPolicy(
        headroom=settings.headroom,
        headroom_cpu=settings.headroom_cpu,
        headroom_memory=settings.headroom_memory,
        headroom_per_az=settings.headroom_per_az,
        pool_cooldown=settings.pool_cooldown,
        max_on_demand=settings.max_on_demand,
        max_overflow_tasks=settings.max_overflow_tasks,
        max_hourly_spend=settings.max_hourly_spend,
        revert_after=settings.revert_after,
        revert_batch=settings.revert_batch,
        evacuate_lead=settings.evacuate_lead,
        on_demand_base=settings.on_demand_base,
        on_demand_percent=settings.on_demand_percent,
    )


class CapacityReader:
    def __init__(
        self, aws: AwsClients, settings: Settings, directory: InstanceDirectory, board: NoticeBoard
    ) -> None:
        self._aws = aws
        self._settings = settings
        self._directory = directory
        self._board = board
        self.templates = TemplatePools(aws, settings)
        self._stale = StaleDrains(board, settings.drain_timeout)
        self._types: dict[str, tuple[int, int, float]] = {}  # type -> (cpu units, MiB, $/h)
        self._task_sizes: dict[str, tuple[int, int]] = {}
        self._template_types: dict[str, str] = {}
        self._unserved: set[tuple[str, tuple[str, ...]]] = set()  # (service, providers) warned
        self._providers: dict[str, str] = {}  # group -> the capacity provider it is
        self._denied = False  # reading capacity providers was refused (warned once)
        self._activities = LaunchFailures(aws.autoscaling)

    @property
    def groups(self) -> dict[str, str]:
        """Pool name (Auto Scaling group or template pool) -> capacity type."""
        return {
            **self._auto_scaling_groups,
            **{p: capacity for p, (_, capacity) in self.templates.templates.items()},
        }

    @property
    def _auto_scaling_groups(self) -> dict[str, str]:
        return {
            **{g: SPOT for g in self._settings.spot_pools},
            **{g: ON_DEMAND for g in self._settings.on_demand_pools},
        }

    async def validate(self) -> None:
        """Refuse groups that do not exist or that ECS managed scaling owns, and overflow
        companions whose task definition cannot run on Fargate."""
        problems: list[str] = []
        found = {g["AutoScalingGroupName"]: g for g in await self._describe_groups()}
        for name, capacity in self._auto_scaling_groups.items():
            variable = "SCALER_SPOT_POOLS" if capacity == SPOT else "SCALER_ON_DEMAND_POOLS"
            group = found.get(name)
            if group is None:
                problems.append(f"{variable}: Auto Scaling group {name!r} not found")
            elif any(t.get("Key") == "AmazonECSManaged" for t in group.get("Tags", [])):
                problems.append(
                    f"{variable}: {name!r} is owned by ECS managed scaling; the "
                    "scaler tops up through groups of its own"
                )
        for group in found.values():
            _warn_rebalancing(group)
        problems += await self._check_companions()
        problems += await self.templates.validate()
        problems += await missing_fleets(self._aws, self._settings.migrate_spot_fleets)
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
        names = list(self._auto_scaling_groups)
        groups: list[dict[str, Any]] = []
        for i in range(0, len(names), 50):
            reply = await self._aws.autoscaling.describe_auto_scaling_groups(
                AutoScalingGroupNames=names[i : i + 50]
            )
            groups += reply.get("AutoScalingGroups", [])
        return groups

    async def _describe_services(self, names: list[str]) -> dict[str, dict[str, Any]]:
        described = await describe_services(self._aws.ecs, self._settings.cluster, names)
        return {svc["serviceName"]: svc for svc in described}

    async def _type_info(self, names: set[str]) -> None:
        missing = sorted(n for n in names if n not in self._types)
        for i in range(0, len(missing), 100):
            for t in await self._describe_types(missing[i : i + 100]):
                vcpu = int(t["VCpuInfo"]["DefaultVCpus"])
                price = on_demand_price(t["InstanceType"], vcpu)
                self._types[t["InstanceType"]] = (
                    vcpu * 1024,
                    int(t["MemoryInfo"]["SizeInMiB"]),
                    price,
                )

    async def _describe_types(self, names: list[str]) -> list[dict[str, Any]]:
        """EC2's description of ``names``; one at a time when the batch is refused, leaving
        out (with a warning) the types EC2 does not know, which then count as 4 vCPU/8 GiB."""
        try:
            reply = await self._aws.ec2.describe_instance_types(InstanceTypes=names)
            return list(reply.get("InstanceTypes", []))
        except Exception as exc:
            code = error_code(exc)
            if code not in UNKNOWN_TYPE:
                raise  # throttling and the like: this cycle fails and the next tries again
            if len(names) == 1:
                log.warning(
                    "instance type not described: sized as 4 vCPU, 8 GiB",
                    extra={"instance_type": names[0], "error": code},
                )
                return []
        found: list[dict[str, Any]] = []
        for name in names:
            found += await self._describe_types([name])
        return found

    async def _task_size(self, arn: str) -> tuple[int, int]:
        if arn not in self._task_sizes:
            try:
                reply = await self._aws.ecs.describe_task_definition(taskDefinition=arn)
            except Exception as exc:
                if error_code(exc) != "ClientException":  # ECS's "unable to describe"
                    raise
                log.warning(
                    "task definition unreadable: its tasks sized as 128 CPU, 128 MiB",
                    extra={"task_definition": arn, "error": error_code(exc)},
                )
                return (128, 128)  # not cached: it may be readable again
            cpu, memory = reservation(reply["taskDefinition"])
            self._task_sizes[arn] = (cpu or 128, memory or 128)
        return self._task_sizes[arn]

    async def read(self, now: float) -> Observed:
        groups = await self._describe_groups() + await self.templates.groups(now)
        kinds = await self._group_types(groups)
        await self._type_info(set(kinds.values()))
        instances = {ci.ec2_instance_id: ci for ci in await self._directory.refresh()}
        providers = await self._providers_or_none()
        observed = Observed(CapacitySnapshot(now, (), (), ()), instances=instances, groups=groups)
        nodes, pools = self._nodes_and_pools(groups, kinds, instances, observed, providers)
        services = await self._services(instances, observed, providers)
        self._warn_unserved(services, pools)
        observed.snapshot = CapacitySnapshot(now, tuple(nodes), tuple(pools), tuple(services))
        s = self._settings
        on_demand = ON_DEMAND in self.groups.values()  # the return to spot retires by tag
        # any Auto Scaling group: a surplus it launched by itself is retired by tag
        if s.roll or s.consolidate or s.migrate_spot_fleets or on_demand or s.spot_pools:
            observed.facts = await self._facts(groups)
        if s.roll and observed.facts is not None:
            observed.drift = await DriftReader(self._aws).read(groups, observed.facts)
        self._stale.apply(observed, now)
        return observed

    async def failed_launches(self, owing: dict[str, float]) -> dict[str, str]:
        """Group -> why it could not launch, for the groups of ``owing`` (group -> when it was
        asked) whose scaling activities show a failed launch since then
        (:mod:`scaler.aws.activities`)."""
        return await self._activities.read(owing)

    async def _facts(self, groups: list[dict[str, Any]]) -> dict[str, Ec2Facts] | None:
        """EC2's facts on every live instance of the groups; None (with a warning) if EC2
        cannot be read: nothing is rolled, consolidated or retired this cycle."""
        ids = [str(i["InstanceId"]) for g in groups for i in live_instances(g)]
        try:
            return await describe(self._aws, ids)
        except Exception as exc:
            log.warning(
                "instances not described: nothing retired this cycle", extra={"error": repr(exc)}
            )
            return None

    async def _group_types(self, groups: list[dict[str, Any]]) -> dict[str, str]:
        """Group name -> the instance type it launches: from its instances, else its launch
        template (an empty fallback group has no instance to look at)."""
        kinds: dict[str, str] = {}
        for g in groups:
            name = g["AutoScalingGroupName"]
            first = next((i["InstanceType"] for i in g.get("Instances", [])), None)
            kinds[name] = first or self._template_types.get(name) or await self._template_type(g)
            self._template_types[name] = kinds[name]
        return kinds

    async def _template_type(self, group: dict[str, Any]) -> str:
        overrides = (
            group.get("MixedInstancesPolicy", {}).get("LaunchTemplate", {}).get("Overrides", [])
        )
        if overrides and overrides[0].get("InstanceType"):
            return str(overrides[0]["InstanceType"])
        ref = template_spec(group)
        if not ref:
            return ""
        version = ref.pop("Version")
        reply = await self._aws.ec2.describe_launch_template_versions(**ref, Versions=[version])
        versions = reply.get("LaunchTemplateVersions", [])
        return (
            str(versions[0].get("LaunchTemplateData", {}).get("InstanceType", ""))
            if versions
            else ""
        )

    def _nodes_and_pools(
        self,
        groups: list[dict[str, Any]],
        kinds: dict[str, str],
        instances: dict[str, ContainerInstance],
        observed: Observed,
        providers: Providers | None,
    ) -> tuple[list[NodeView], list[PoolView]]:
        member: dict[str, tuple[str, str]] = {}  # instance id -> (group, AZ)
        nodes: list[NodeView] = []
        pools: list[PoolView] = []
        named = providers.groups if providers else {}
        self._providers = {g: p for p, g in sorted(named.items(), reverse=True)}
        for g in groups:
            name = g["AutoScalingGroupName"]
            observed.max_size[name] = int(g.get("MaxSize", 0))
            if "MinSize" in g:  # an Auto Scaling group's (a template pool has none)
                observed.min_size[name] = int(g["MinSize"])
            observed.desired[name] = int(g.get("DesiredCapacity", 0))
            live = live_instances(g)
            observed.live[name] = len(live)
            cpu, mem, price = self._types.get(kinds[name], (4096, 8192, on_demand_price("", 4)))
            cpu, mem = _registered(cpu, mem, [instances.get(i["InstanceId"]) for i in live])
            size = 0
            for inst in live:
                iid = inst["InstanceId"]
                member[iid] = (name, inst["AvailabilityZone"])
                ci, ends = instances.get(iid), self._board.ends.get(iid)
                if ci is None:  # not registered in ECS yet: still launching, as far as ECS goes
                    nodes.append(
                        NodeView(
                            iid,
                            name,
                            inst["AvailabilityZone"],
                            self.groups[name],
                            "launching",
                            cpu,
                            mem,
                            cpu,
                            mem,
                            ends,
                            provider=self._providers.get(name, ""),
                        )
                    )
                if ends is None and (ci is None or not ci.draining):
                    size += 1
            pools.append(
                PoolView(
                    name,
                    self.groups[name],
                    "*",
                    cpu,
                    mem,
                    price,
                    size,
                    max_size=observed.max_size[name],
                    instance_type=kinds[name],
                    provider=self._providers.get(name, ""),
                )
            )
        nodes += [
            self._node(ci, member)
            for ci in instances.values()
            if ci.status in ("ACTIVE", "DRAINING")
        ]
        return nodes, pools

    def _node(self, ci: ContainerInstance, member: dict[str, tuple[str, str]]) -> NodeView:
        pool, az = member.get(ci.ec2_instance_id, ("", ""))
        return NodeView(
            ci.ec2_instance_id,
            pool,
            az,
            self.groups.get(pool, SPOT),
            ci.status,
            ci.cpu,
            ci.memory,
            ci.free_cpu,
            ci.free_memory,
            self._board.ends.get(ci.ec2_instance_id),
            ci.running_tasks + ci.pending_tasks,
            ci.capacity_provider or self._providers.get(pool, ""),
        )

    async def _services(
        self,
        instances: dict[str, ContainerInstance],
        observed: Observed,
        providers: Providers | None,
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
            bound = strategy(svc, providers.default) if providers else ()
            if name in companions.values() or on_fargate(svc, bound):
                continue  # a companion, or a Fargate service: no EC2 room needed
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
                    providers=ec2_providers(bound),
                )
            )
        return views

    async def _providers_or_none(self) -> Providers | None:
        """The cluster's capacity providers; None (warned once) if the task role may not read
        them: services are then taken as unbound, as before providers were read."""
        try:
            return await read_providers(self._aws.ecs, self._settings.cluster)
        except Exception as exc:
            if error_code(exc) not in DENIED:
                raise
            if not self._denied:
                self._denied = True
                log.warning(
                    "capacity providers not readable: services taken as bound to none; grant "
                    "the task role ecs:DescribeClusters and ecs:DescribeCapacityProviders",
                    extra={"error": error_code(exc)},
                )
            return None

    def _warn_unserved(self, services: list[ServiceView], pools: list[PoolView]) -> None:
        """Once per service (and strategy): its providers' groups are none of the scaler's."""
        ours = {p.provider for p in pools if p.provider}
        for svc in services:
            key = (svc.name, svc.providers)
            if not svc.providers or ours & set(svc.providers) or key in self._unserved:
                continue
            self._unserved.add(key)
            log.warning(
                "service bound to capacity providers whose groups are not the scaler's pools: "
                "the scaler adds no capacity for it (ECS managed scaling does)",
                extra={"service": svc.name, "capacity_providers": list(svc.providers)},
            )

    async def _tasks_by_service(
        self, by_arn: dict[str, str], observed: Observed
    ) -> dict[str, Counter[str]]:
        placed: dict[str, Counter[str]] = defaultdict(Counter)
        for task in await running_tasks(self._aws.ecs, self._settings.cluster):
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
        templates: TemplatePools,
    ) -> None:
        self._aws = aws
        self._settings = settings
        self._drainer = drainer
        self._metrics = metrics
        self.templates = templates  # the reader's: one memory of template-pool launches
        self.leader: Leadership = Always()  # checked before every call that changes something
        self.asked: dict[str, tuple[int, float]] = {}  # group -> (desired we set, when)
        self.shortfalls: dict[str, float] = {}  # template pool -> when EC2 Fleet came up short
        self.acted = 0  # calls made that changed something (not in dry-run)
        self._refusals = Refusals(TERMINATE_ADVICE)
        self._desired_refusals = Refusals(DESIRED_ADVICE)  # SetDesiredCapacity, by group
        self._ec2_refusals = Refusals(EC2_TERMINATE_ADVICE, EC2_REFUSALS)  # TerminateInstances
        self._kept: set[str] = set()  # drained instances kept at their group's MinSize
        self.replacements = Replacements()  # what groups replace by themselves

    async def apply(self, plan: CapacityPlan, observed: Observed, now: float) -> None:
        pools = {p.name: p for p in observed.snapshot.pools}
        for name, count in plan.launches(pools).items():
            others = plan.alternatives.get(name, ())
            await self.grow(name, count, observed, now, plan.cause(name), others)
        current = {s.overflow: s.overflow_desired for s in observed.snapshot.services if s.overflow}
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

    async def grow(
        self,
        name: str,
        count: int,
        observed: Observed,
        now: float,
        reason: str,
        alternatives: tuple[str, ...] = (),
    ) -> int:
        """Raise a group's desired capacity so that ``count`` more instances come than it has
        live now (within its MaxSize): the absolute target is its live instances, those that
        survive and those leaving that it still counts (so the replacement of an instance under
        a spot notice launches now), plus ``count``. A group that owes instances already (its
        desired capacity above that) is not raised (a group out of capacity is not raised again
        and again). How many were added (0 in dry-run, on failure, when refused lately, or when
        enough is owed already).

        A template pool's EC2 Fleet answers at once: what it could not launch is asked of the
        template pools among ``alternatives`` in turn, in the same cycle (each shortfall marks
        its pool out of capacity). An Auto Scaling group's shortfall shows only after
        ``LAUNCH_GRACE``, so its alternatives are left to the plans that follow."""
        if name in self.templates:
            launched = 0
            for pool in (name, *(a for a in alternatives if a in self.templates)):
                launched += await self._launch(pool, count - launched, observed, now, reason)
                if launched >= count or self._settings.dry_run:
                    break
            return launched
        before = observed.desired.get(name, 0)
        target = min(observed.live.get(name, 0) + count, observed.max_size.get(name, 0))
        if target <= before or not await self._set_desired(name, target, now):
            return 0
        self.asked[name] = (target, now)
        observed.desired[name] = target
        self._metrics.capacity_changes.labels("add", reason).inc(target - before)
        return target - before

    async def _set_desired(self, name: str, target: int, now: float) -> bool:
        """``SetDesiredCapacity``; one Auto Scaling refused is asked again only after
        ``REFUSAL_COOLDOWN``, and at most ``MAX_REFUSALS`` times."""
        if self._desired_refusals.cooling(name, now):
            return False
        return await self._act(
            "set_desired",
            name,
            lambda: self._aws.autoscaling.set_desired_capacity(
                AutoScalingGroupName=name, DesiredCapacity=target, HonorCooldown=False
            ),
            lambda exc: self._desired_refusals.note(name, exc, now),
        )

    async def give_back(self, plan: CapacityPlan, observed: Observed, now: float) -> None:
        """Lower the desired capacity of the groups that lost instances (counted in it while
        they were leaving) and did not replace them within the grace, down to their live
        instances at the lowest (so Auto Scaling terminates nothing), nor below MinSize; not
        for a group the plan grows. What a group still owes otherwise (a launch asked for and not
        started) stays asked for."""
        pools = {p.name: p for p in observed.snapshot.pools}
        growing = plan.launches(pools)
        for name in sorted(observed.min_size):
            if name in growing:
                continue
            desired, live = observed.desired.get(name, 0), observed.live.get(name, 0)
            lower = min(self.replacements.unreplaced(name, now), desired - live)
            target = max(desired - lower, observed.min_size[name])
            if target >= desired:
                continue
            if await self._set_desired(name, target, now):
                self.replacements.given_back(name, desired - target)
                observed.desired[name] = target
                if name in self.asked:  # what it was asked for, less the lost given back
                    asked, since = self.asked[name]
                    self.asked[name] = (asked - (desired - target), since)
                self._metrics.capacity_changes.labels("remove", SURPLUS).inc(desired - target)
                log.info(
                    "lost instances not replaced by their group: desired capacity lowered",
                    extra={"group": name, "desired": target},
                )

    async def _launch(
        self, name: str, count: int, observed: Observed, now: float, reason: str
    ) -> int:
        """Launch up to ``count`` instances in a template pool (within its maximum size);
        how many EC2 Fleet launched (a shortfall marks the pool out of capacity)."""
        before = observed.desired.get(name, 0)
        want = min(before + count, observed.max_size.get(name, 0)) - before
        token = new_token()  # one per launch: retries of this call get its answer
        launched = 0

        async def create() -> None:
            nonlocal launched
            launched = await self.templates.launch(name, want, token, now)

        if want <= 0:
            return 0
        if not await self._act("create_fleet", name, create):
            if not self._settings.dry_run:
                self.shortfalls[name] = now  # refused: try other pools for a while
            return 0
        if launched < want:
            self.shortfalls[name] = now
        observed.desired[name] = before + launched
        self._metrics.capacity_changes.labels("add", reason).inc(launched)
        return launched

    async def retire(self, node: str, pool: str, reason: str, observed: Observed) -> bool:
        """Terminate a drained instance, its group's desired capacity decremented (a template
        pool's instance is just terminated). Never asked below the group's MinSize, which Auto
        Scaling would refuse; a refused call is tried again only after ``REFUSAL_COOLDOWN``,
        and at most ``MAX_REFUSALS`` times."""
        if pool in self.templates:
            return await self.terminate(node, reason, observed.snapshot.now)
        if observed.desired.get(pool, 0) - 1 < observed.min_size.get(pool, 0):
            if node not in self._kept:  # said once, not every cycle
                self._kept.add(node)
                log.warning(
                    "group at its MinSize: drained instance kept until the minimum allows",
                    extra={"group": pool, "instance": node, "min_size": observed.min_size[pool]},
                )
            return False
        if self._refusals.cooling(node, observed.snapshot.now):
            return False
        done = await self._act(
            "terminate",
            pool,
            lambda: self._aws.autoscaling.terminate_instance_in_auto_scaling_group(
                InstanceId=node, ShouldDecrementDesiredCapacity=True
            ),
            lambda exc: self._refusals.note(node, exc, observed.snapshot.now),
        )
        if done:
            observed.desired[pool] = observed.desired.get(pool, 0) - 1
            self.replacements.let_go.add(node)  # gone with its desired: not to be replaced
            self._metrics.capacity_changes.labels("remove", reason).inc()
            if reason == RETURN_TO_SPOT:
                self._metrics.reverts.inc()
        return done

    async def lower_fleet(self, fleet: str, target: float) -> bool:
        """Lower a Spot Fleet's target capacity without letting it stop an instance itself."""
        return await self._act(
            "lower_fleet",
            fleet,
            lambda: self._aws.ec2.modify_spot_fleet_request(
                SpotFleetRequestId=fleet,
                TargetCapacity=int(target),
                ExcessCapacityTerminationPolicy="noTermination",
            ),
        )

    async def terminate(self, node: str, reason: str, now: float) -> bool:
        """Terminate an instance no Auto Scaling group owns (a Spot Fleet's, a template
        pool's); one EC2 refused is asked again only after ``REFUSAL_COOLDOWN``, and at most
        ``MAX_REFUSALS`` times (``now``: the cycle's time)."""
        if self._ec2_refusals.cooling(node, now):
            return False
        done = await self._act(
            "terminate",
            node,
            lambda: self._aws.ec2.terminate_instances(InstanceIds=[node]),
            lambda exc: self._ec2_refusals.note(node, exc, now),
        )
        if done:
            self._metrics.capacity_changes.labels("remove", reason).inc()
        return done

    async def empty(self, ci: ContainerInstance | None) -> bool:
        """Whether a drained instance holds no task of any status (a task ECS is stopping still
        runs, out of its counts) and may be terminated; False when that cannot be read."""
        if ci is None:
            return False
        try:
            return await is_empty(self._aws.ecs, self._settings.cluster, ci.arn)
        except Exception as exc:
            log.warning(
                "tasks not listed: instance kept this cycle",
                extra={"instance": ci.ec2_instance_id, "error": repr(exc)},
            )
            return False

    async def mark_retiring(self, node: str, reason: str) -> bool:
        """Tag an instance the scaler is about to drain by its own choice, so that only such
        instances are ever terminated by it (one drained by hand never is)."""
        return await self._act(
            "mark_retiring",
            node,
            lambda: self._aws.ec2.create_tags(
                Resources=[node], Tags=[{"Key": RETIRING, "Value": reason}]
            ),
        )

    async def drain(self, ci: ContainerInstance, reason: str) -> bool:
        """Drain an instance by the scaler's own choice; False if that failed."""
        if not self._leading("drain", ci.ec2_instance_id):
            return False
        try:
            return await self._drainer.drain(ci, reason) in ("ok", "already", "dry_run")
        except Exception as exc:
            log.error("drain failed", extra={"instance": ci.ec2_instance_id, "error": repr(exc)})
            return False

    async def _release(self, release: tuple[str, ...], observed: Observed) -> None:
        """Tag (``scaler:retiring=return_to_spot``) and drain the on-demand instances the plan
        gives back. The capacity cycle terminates them once empty, like every instance the
        scaler retires, and only those it tagged: one drained by hand stays."""
        for node in self.removable(observed, release):
            ci = observed.instances.get(node)
            if ci is not None and await self.mark_retiring(node, RETURN_TO_SPOT):
                await self.drain(ci, "revert_to_spot")

    def removable(self, observed: Observed, nodes: Iterable[str]) -> list[str]:
        """Those of ``nodes`` the scaler may drain by its own choice: their groups can spare
        them (MinSize) and keep their AZs balanced (AZRebalance)."""
        return balanced(observed, spare(observed, nodes))

    async def _act(
        self,
        action: str,
        target: str,
        call: Any,
        failed: Callable[[Exception], None] = lambda _: None,
    ) -> bool:
        """Make one call (or, in dry-run, say it); True if it was made and succeeded (else
        ``failed`` is told why). Made only while this replica holds the leader lease, checked
        before the call (botocore's retries, the only ones, follow within moments)."""
        if self._settings.dry_run:
            log.info(f"dry run: would {action}", extra={"target": target})
            self._metrics.actions.labels(action, target, "dry_run").inc()
            return False

        if not self._leading(action, target):
            return False
        try:
            await call()  # botocore's retries are the only ones (see scaler.aws.clients)
        except Exception as exc:
            self._metrics.actions.labels(action, target, "failed").inc()
            log.error(f"{action} failed", extra={"target": target, "error": repr(exc)})
            failed(exc)
            return False
        self._metrics.actions.labels(action, target, "ok").inc()
        log.info(action, extra={"target": target})
        self.acted += 1
        return True

    def _leading(self, action: str, target: str) -> bool:
        """Whether this replica still holds the leader lease; a change it may no longer make
        is counted (outcome ``not_leader``) and left to the next leader."""
        if self.leader.holds():
            return True
        log.warning(f"not leading: {action} left to the leader", extra={"target": target})
        self._metrics.actions.labels(action, target, "not_leader").inc()
        return False


REFUSAL_COOLDOWN = 600.0  # seconds before a terminate Auto Scaling refused is asked again
MAX_REFUSALS = 3  # refusals after which an instance is no longer asked for (until a restart)


TERMINATE_ADVICE = (
    "terminate refused too often: instance left drained; lower the group's MinSize "
    "or terminate it by hand"
)
EC2_TERMINATE_ADVICE = (
    "terminate refused too often: instance left drained; check its termination protection "
    "and the scaler's permissions, or terminate it by hand"
)
EC2_REFUSALS = frozenset({"OperationNotPermitted", "UnauthorizedOperation"})
DESIRED_ADVICE = (
    "desired capacity refused too often: group left as it is; check its MinSize and MaxSize "
    "(aws autoscaling describe-auto-scaling-groups) and restart the scaler"
)


class Refusals:
    """Calls refused (Auto Scaling's ``ValidationError``: its MinSize, say), by what they were
    about (an instance, a group): not asked again within ``REFUSAL_COOLDOWN``, nor after
    ``MAX_REFUSALS`` (``advice`` logged then)."""

    def __init__(
        self, advice: str = TERMINATE_ADVICE, codes: frozenset[str] = frozenset({"ValidationError"})
    ) -> None:
        self._advice = advice
        self._codes = codes  # the error codes that are refusals (others are tried again)
        self._seen: dict[str, tuple[int, float]] = {}  # instance -> (refusals, last)

    def note(self, node: str, exc: Exception, now: float) -> None:
        if error_code(exc) not in self._codes:
            return  # not a refusal: tried again next cycle
        count = self._seen.get(node, (0, now))[0] + 1
        self._seen[node] = (count, now)
        if count >= MAX_REFUSALS:
            log.error(self._advice, extra={"target": node, "refusals": count})

    def cooling(self, node: str, now: float) -> bool:
        seen = self._seen.get(node)
        return seen is not None and (seen[0] >= MAX_REFUSALS or now - seen[1] < REFUSAL_COOLDOWN)


def _warn_rebalancing(group: dict[str, Any]) -> None:
    if not rebalancing(group):
        return
    name = group["AutoScalingGroupName"]
    log.warning(
        f"Auto Scaling group {name!r} may rebalance its AZs by terminating an instance without a "
        "drain: the scaler removes only instances that keep its AZs balanced; to let it remove "
        "any, suspend AZRebalance: aws autoscaling suspend-processes "
        f"--auto-scaling-group-name {name} --scaling-processes AZRebalance",
        extra={"group": name},
    )


def _registered(
    cpu: int, memory: int, instances: list[ContainerInstance | None]
) -> tuple[int, int]:
    """A pool's instance size as ECS places tasks on it: what its instances registered, where
    less than the type's (the ECS agent and the OS keep part of the memory), the smallest of
    them; the type's until one has registered."""
    known = [ci for ci in instances if ci is not None and ci.cpu > 0 and ci.memory > 0]
    if not known:
        return cpu, memory
    return min(cpu, *(ci.cpu for ci in known)), min(memory, *(ci.memory for ci in known))


UNKNOWN_TYPE = frozenset({"InvalidInstanceType", "InvalidParameterValue"})
LAUNCH_GRACE = 240.0  # seconds a group may take to start what it was asked for
ASK_FOLLOW_UP = 10.0  # seconds before a group's scaling activities are read after an ask


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
        roll: RollPolicy | None = None,
        consolidator: Consolidator | None = None,
        migration: Migration | None = None,
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
        self.cycles = 0  # completed cycles
        self.ready_at = -1  # the last cycle after which no capacity was missing or coming
        self._changed = asyncio.Condition()
        self._roll_policy = roll  # None: out-of-date instances are left alone
        self.roll = RollMemory()
        self.consolidator = consolidator  # None: no scale-in by consolidation
        self.migration = migration  # None: no Spot Fleet to move off
        # notices other replicas heard, merged into the board each cycle (None: one replica)
        self.shared: Callable[[NoticeBoard, float], Awaitable[None]] | None = None

    @property
    def replacements(self) -> Replacements:
        """What the Auto Scaling groups replace by themselves (:mod:`scaler.aws.replaced`)."""
        return self._actuator.replacements

    @property
    def leader(self) -> Leadership:
        """With two replicas, only the leader tops up; the actuator checks the lease before each
        call that changes something, so a leader that loses it mid-cycle stops there."""
        return self._actuator.leader

    @leader.setter
    def leader(self, leader: Leadership) -> None:
        self._actuator.leader = leader

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.wake.clear()  # a wake during the cycle below triggers the next one at once
            try:
                if self.leader.holds():
                    await self.cycle()
            except Exception:
                log.exception("capacity cycle failed")
            waiters = {asyncio.create_task(stop.wait()), asyncio.create_task(self.wake.wait())}
            # a group asked to launch shows a failed launch within seconds: look again soon
            pause = min(self._interval, ASK_FOLLOW_UP) if self._actuator.asked else self._interval
            await asyncio.wait(waiters, timeout=pause, return_when="FIRST_COMPLETED")
            for w in waiters:
                w.cancel()

    async def ready_after(self, cycle: int) -> None:
        """Wait for a cycle that started after ``cycle`` to find nothing missing or coming."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.ready_at > cycle)

    async def cycle(self) -> CapacityPlan:
        now = time.time()
        self._board.prune(now)
        if self.shared is not None:
            await self.shared(self._board, now)
        observed = await self._reader.read(now)
        self._remember_troubles(observed, now, await self._failed_launches(observed, now))
        for name, members in group_members(observed).items():
            self.replacements.observe(name, members, now)
        plan = plan_capacity(observed.snapshot, self.memory, self._policy)
        for reason in plan.reasons:
            log.info("capacity decision", extra={"reason": reason})
        acted = self._actuator.acted
        await self._actuator.apply(plan, observed, now)
        await self._actuator.give_back(plan, observed, now)
        if self._actuator.shortfalls:
            self.wake.set()  # plan again at once: the next plan turns to other pools, on-demand
        self._note_shortfalls({p.name for p in observed.snapshot.pools if p.capacity == SPOT})
        if observed.facts is not None:
            migrating = self.migration is not None and self.migration.state.in_flight > 0
            if self._roll_policy is not None and not plan.release and not migrating:
                await self._roll(observed, self._roll_policy)
            await self._migrate(observed, plan)
            await self._retire(observed, observed.facts)
            await self._trim(observed, plan)
            # not in a cycle that changed anything: its snapshot no longer says what runs where
            if self.consolidator is not None and self._actuator.acted == acted:
                await self._consolidate(observed, observed.facts, plan, self.consolidator)
        self._observe(observed.snapshot, plan, observed.stale)
        self._record(observed)
        self.last_plan = plan
        pools = {p.name: p for p in observed.snapshot.pools}
        launching = any(n.status == "launching" for n in observed.snapshot.nodes)
        async with self._changed:
            self.cycles += 1
            if not plan.launches(pools) and not launching:
                self.ready_at = self.cycles
            self._changed.notify_all()
        return plan

    async def _roll(self, observed: Observed, policy: RollPolicy) -> None:
        """Replace out-of-date instances (:mod:`scaler.aws.roll`): launch, drain, retire."""
        snap = observed.snapshot
        plan = self.roll.plan(snap, observed.drift, self.memory, policy, self._blocked(observed))
        for reason in plan.reasons:
            log.info("roll decision", extra={"reason": reason})
        self.roll.state = await carry_out(
            plan, observed, self._actuator, "drift", self.roll.launched_at
        )

    async def _migrate(self, observed: Observed, plan: CapacityPlan) -> None:
        """Replace Spot Fleet instances (:mod:`scaler.aws.migration`), after any roll."""
        if self.migration is None or plan.release:
            return
        if observed.drift.outdated or self.roll.state.in_flight:
            observed.migrating = frozenset({"(after the roll)"})
            return
        fleets = await migrate(
            self.migration,
            observed,
            self._actuator,
            self.memory,
            self._policy,
            self._blocked(observed),
        )
        if fleets is None:  # read again next cycle; consolidation judges on the rest
            return
        registered = {n.id for n in observed.snapshot.nodes}
        observed.migrating = fleets.remaining & registered  # the others are left alone
        observed.facts = {**(observed.facts or {}), **fleets.facts}

    def _blocked(self, observed: Observed) -> frozenset[str]:
        """Groups not to ask for replacements now: those still owing instances they were asked
        for (asking again would only raise their desired capacity), or cooling after trouble."""
        snap = observed.snapshot
        return frozenset(
            p.name
            for p in snap.pools
            if observed.desired.get(p.name, 0) > observed.live.get(p.name, 0)
            or self.memory.cooling(p.name, snap.now, self._policy.pool_cooldown)
        )

    async def _retire(self, observed: Observed, facts: dict[str, Ec2Facts]) -> None:
        """Terminate the instances drained by the scaler's own choice (tagged retiring) once
        they hold no task of any status; count those still on their way out."""
        snap = observed.snapshot
        managed = {p.name for p in snap.pools if p.managed}
        leaving: Counter[str] = Counter()
        for n in snap.nodes:
            reason = facts[n.id].retiring if n.id in facts else None
            if reason is None or n.status != "DRAINING" or facts[n.id].gone:
                continue
            # a Spot Fleet's instance (not in a group) is the migration's to retire
            ours = n.pool in managed and not n.tasks
            if not (
                ours
                and await self._actuator.empty(observed.instances.get(n.id))
                and await self._actuator.retire(n.id, n.pool, reason, observed)
            ):
                leaving[reason] += 1
        for reason in REASONS:
            self._metrics.retiring.labels(reason).set(leaving[reason])

    async def _consolidate(
        self,
        observed: Observed,
        facts: dict[str, Ec2Facts],
        plan: CapacityPlan,
        consolidator: Consolidator,
    ) -> None:
        """Drain the instances consolidation can give back (:mod:`scaler.aws.consolidation`)."""
        snap = observed.snapshot
        ours = frozenset(
            n.id
            for n in snap.nodes
            if n.status == "DRAINING" and n.id in retiring(facts, "consolidation")
        )
        stale = observed.drift.outdated | observed.migrating
        if not consolidator.due(snap.now) or unsettled(snap, plan, ours, stale):
            return
        try:
            chosen = await consolidator.plan(snap, facts, self.memory, ours)
        except Exception:
            log.exception("consolidation plan failed: nothing drained this time")
            return
        for reason in chosen.reasons:
            log.info("consolidation decision", extra={"reason": reason})
        allowed = balanced(observed, spare(observed, [r.instance for r in chosen.remove]))
        for removal in chosen.remove:
            if removal.instance not in allowed:
                continue
            ci = observed.instances.get(removal.instance)
            if ci is None or not await self._actuator.mark_retiring(
                removal.instance, "consolidation"
            ):
                continue
            if await self._actuator.drain(ci, "consolidation"):
                consolidator.drained_at.append(snap.now)

    async def _trim(self, observed: Observed, plan: CapacityPlan) -> None:
        """Drain, for each surplus a group launched by itself (:mod:`scaler.aws.replaced`), one
        of its instances that runs no task, is not leaving and that the plan would not launch
        back; the cycle then terminates it with the desired capacity decremented."""
        snap = observed.snapshot
        pools = {p.name: p for p in snap.pools}
        if plan.launches(pools) or plan.release:
            return
        for name in sorted(observed.min_size):
            for _ in range(self.replacements.excess(name)):
                node = self._spare_empty(observed, name)
                ci = observed.instances.get(node) if node else None
                if node is None or ci is None:
                    break
                if not await self._actuator.mark_retiring(node, SURPLUS):
                    break
                if not await self._actuator.drain(ci, SURPLUS):
                    break
                self.replacements.removed(name)
                note_retiring(observed, node, SURPLUS)  # spare() counts it from now on
                observed.snapshot = draining(observed.snapshot, node)

    def _spare_empty(self, observed: Observed, group: str) -> str | None:
        """An ACTIVE instance of ``group`` running no task, whose group can spare it and whose
        loss the capacity plan would not launch back; None if there is none."""
        snap = observed.snapshot
        empty = sorted(
            n.id
            for n in snap.nodes
            if n.pool == group and n.status == "ACTIVE" and not n.doomed and n.tasks == 0
        )
        for node in spare(observed, empty):
            if not balanced(observed, [node]):
                continue
            if not launches_after(snap, self.memory, self._policy, frozenset({node})):
                return node
        return None

    def _record(self, observed: Observed) -> None:
        """What this cycle left each Auto Scaling group at, for the next to compare with."""
        doomed = {n.id for n in observed.snapshot.nodes if n.doomed}
        for name, members in group_members(observed).items():
            state = GroupState(members, members & doomed, observed.desired.get(name, 0))
            self.replacements.record(name, state)

    def _note_shortfalls(self, spot: set[str]) -> None:
        """Template pools EC2 Fleet could not fill are out of capacity (cooled down)."""
        for name, at in sorted(self._actuator.shortfalls.items()):
            log.warning("pool out of capacity: avoiding it", extra={"group": name})
            self.memory = self.memory.failing(name, at, spot=name in spot)
        self._actuator.shortfalls.clear()

    async def _failed_launches(self, observed: Observed, now: float) -> dict[str, str]:
        """Why each group still owing what it was asked for could not launch it, where its
        scaling activities say so (a failed read waits for the next cycle)."""
        owing = {
            name: since
            for name, (target, since) in self._actuator.asked.items()
            if observed.live.get(name, 0) < target
        }
        if not owing:
            return {}
        try:
            return await self._reader.failed_launches(owing)
        except Exception as exc:
            log.warning("scaling activities not read", extra={"error": repr(exc)})
            return {}

    def _remember_troubles(self, observed: Observed, now: float, failed: dict[str, str]) -> None:
        """Notices and recommendations mark their spot pool; a group that could not start what
        it was asked for (its scaling activities say a launch failed), or has not started it
        within ``LAUNCH_GRACE``, is out of capacity (cooled down too), and the plan turns to
        other pools at once."""
        snap = observed.snapshot
        spot = {p.name for p in snap.pools if p.capacity == SPOT}
        pool_of = {n.id: n.pool for n in snap.nodes if n.pool in spot}
        for iid, at in self._board.noticed.items():
            if iid in pool_of:
                self.memory = self.memory.noting(pool_of[iid], at)
        self._note_shortfalls(spot)
        for name, (target, since) in list(self._actuator.asked.items()):
            if observed.live.get(name, 0) >= target:
                del self._actuator.asked[name]
            elif name in failed:
                log.warning(
                    "group could not launch what it was asked for: avoiding it",
                    extra={"group": name, "asked": target, "why": failed[name]},
                )
                self.memory = self.memory.failing(name, now, spot=name in spot)
                del self._actuator.asked[name]
            elif now - since > LAUNCH_GRACE:
                log.warning(
                    "group did not launch what it was asked for: avoiding it",
                    extra={"group": name, "asked": target, "live": observed.live.get(name)},
                )
                self.memory = self.memory.failing(name, now, spot=name in spot)
                del self._actuator.asked[name]

    def _observe(
        self, snap: CapacitySnapshot, plan: CapacityPlan, stale: tuple[NodeView, ...]
    ) -> None:
        cpu, mem = deficit(snap, self._policy)
        self._metrics.deficit.labels("cpu").set(cpu)
        self._metrics.deficit.labels("memory").set(mem)
        counts = Counter(n.capacity for n in snap.nodes if not n.doomed)
        for capacity in (SPOT, ON_DEMAND):
            self._metrics.capacity.labels(capacity).set(counts[capacity])
        self._metrics.capacity.labels("fargate").set(sum(plan.overflow_targets.values()))
        self._metrics.fallback_active.set(1 if counts[ON_DEMAND] else 0)
        self._metrics.stale_draining.set(len(stale))
        for companion, desired in plan.overflow_targets.items():
            self._metrics.overflow_tasks.labels(companion).set(desired)
