"""The capacity reader in AWS: pools, instances and services, observed into a snapshot.

:class:`CapacityReader` is the AWS :class:`~scaler.capacity.ports.Reader`. Each capacity cycle it
reads:

- the configured Auto Scaling groups (``SCALER_SPOT_POOLS``, ``SCALER_ON_DEMAND_POOLS``) and the
  EC2 Fleet template pools (:mod:`scaler.aws.templates`): their instances and desired capacity;
  the instance types' CPU and memory (DescribeInstanceTypes), or what the group's instances
  registered in ECS where that is less (the ECS agent and the OS keep part of the memory: a task
  that needs more fits no instance of the group);
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
  (an older policy) is named once in a warning too, and services are then taken as unbound;
- EC2's facts on the groups' instances (the retiring tags) and, with ``SCALER_ROLL``, which are
  out of date (:mod:`scaler.aws.roll`).

Where the tasks run is read in full only when it may have changed (:mod:`scaler.aws.read_memory`):
each cycle describes the container instances and the services anyway, and while their counts,
remaining resources and ECS versions are those the last full read saw, no task can have started,
stopped or moved, and that read's placement is reused. Every 30 minutes, after a pause (a
replica leading again), after the scaler acted and while a notice is on the board (with services
that overflow to Fargate), everything is read again whatever they say. The service
names and the capacity providers are read again with each full read.

Between full cycles, :meth:`CapacityReader.unchanged` is the quiet cycle's probe
(:mod:`scaler.capacity.quiet`): the cluster's counts (DescribeClusters), the Auto Scaling groups
(DescribeAutoScalingGroups) and, every ``SERVICE_PROBES``-th probe, the services
(DescribeServices) compared with what the last read found. Tasks are listed at each
full read of the placement and described only when listed for the first time (a task's group
and container instance never change).

At start, :meth:`CapacityReader.validate` refuses groups that do not exist, and those owned by
ECS managed scaling (tag ``AmazonECSManaged``): ECS sets their desired capacity itself and would
undo the scaler's, so the scaler coexists with them by leaving them alone and topping up through
groups of its own. A group whose AZs Auto Scaling may rebalance by itself (``AZRebalance``, which
terminates without a drain, not suspended) is named with the command that suspends it.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import replace
from functools import cached_property
from typing import Any

from scaler.aws.activities import LaunchFailures
from scaler.aws.clients import AwsClients, error_code
from scaler.aws.ecs import InstanceDirectory
from scaler.aws.errors import DENIED
from scaler.aws.migration import missing_fleets
from scaler.aws.read_memory import (
    FULL_READ_CYCLES,
    Placement,
    ReadMemory,
    fingerprint,
    group_marks,
    service_marks,
)
from scaler.aws.retiring import Ec2Facts, describe
from scaler.aws.roll import DriftReader, template_spec
from scaler.aws.services import Providers, ec2_providers, on_fargate, read_providers, strategy
from scaler.aws.stale import StaleDrains
from scaler.aws.taskdefs import fargate_problem, reservation
from scaler.aws.tasks import describe_tasks, running_task_arns
from scaler.aws.templates import TemplatePools
from scaler.capacity import LOGGER
from scaler.capacity.observed import Observed, live_instances, rebalancing
from scaler.guard import describe_services
from scaler.model import ContainerInstance
from scaler.notices import NoticeBoard
from scaler.plan.capacity import (
    ON_DEMAND,
    SPOT,
    CapacitySnapshot,
    NodeView,
    PoolView,
    ServiceView,
)
from scaler.prices import on_demand_price
from scaler.settings import ConfigError, Settings

log = logging.getLogger(LOGGER)

LAUNCHING_STATES = frozenset({"Pending", "Pending:Wait", "Pending:Proceed"})
UNKNOWN_TYPE = frozenset({"InvalidInstanceType", "InvalidParameterValue"})
# seconds a service's missing tasks count as not tried yet: ECS's scheduler places a raised
# desired count within seconds; what is still unplaced after this found no room
PLACEMENT_GRACE = 20.0
SERVICE_PROBES = 4  # quiet-cycle probes per one that describes the services too


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
        self._daemons = (0, 0)  # CPU units, MiB each instance gives its DAEMON tasks
        # service -> (when, its desired count) read within PLACEMENT_GRACE, and the last before
        self._desired_seen: dict[str, list[tuple[float, int]]] = {}
        self._kept = 0  # MiB of a type's memory an instance does not register
        self._activities = LaunchFailures(aws.autoscaling)
        self.memory = ReadMemory(longest=FULL_READ_CYCLES * settings.capacity_interval)
        self.acted: Callable[[], int] = lambda: 0  # the actuator's count of changes made
        # what the last read's probe would show (quiet cycles): the cluster's counts, the
        # groups', the services'; and how many probes since
        self._probed: tuple[Hashable, Hashable, Hashable] | None = None
        self._probes = 0
        self._places: dict[str, tuple[str, str]] = {}  # task ARN -> (group, container instance)

    @cached_property
    def groups(self) -> dict[str, str]:
        """Pool name (Auto Scaling group or template pool) -> capacity type (the settings'
        pools: fixed for the reader's life)."""
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

    async def _daemon_room(self, described: dict[str, dict[str, Any]]) -> tuple[int, int]:
        """CPU units and MiB each instance gives the cluster's DAEMON services: ECS starts one
        task of each on every instance, before any service task, so a new instance holds that
        much less than it registers (a 4-vCPU instance with a 128-unit log agent has no room for
        a 4096-unit task)."""
        cpu = mem = 0
        for svc in described.values():
            if svc.get("schedulingStrategy") == "DAEMON":
                task_cpu, task_mem = await self._task_size(svc["taskDefinition"])
                cpu, mem = cpu + task_cpu, mem + task_mem
        return cpu, mem

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

    async def unchanged(self, now: float) -> bool:
        """Whether the cluster's task and instance counts (DescribeClusters, one call) and the
        Auto Scaling groups (DescribeAutoScalingGroups) are as the last read found them and,
        every ``SERVICE_PROBES``-th probe, the services' counts and deployments too
        (DescribeServices, a call per ten services). A task started or stopped anywhere shows
        in the cluster's counts at once; a task ECS cannot place comes as an ``ECS Service
        Action`` event (news); what shows in the services alone (a deployment whose counts came
        back where they were, say) within ``SERVICE_PROBES`` intervals. The template pools'
        members change only by the scaler's launches and by what events tell."""
        names = self.memory.names
        if names is None or self._probed is None:
            return False
        cluster, groups, services = self._probed
        self._probes += 1
        if await self._cluster_marks() != cluster:
            return False
        if group_marks(await self._describe_groups()) != groups:
            return False
        due = self._probes % SERVICE_PROBES == 0
        if due and service_marks(await self._describe_services(names)) != services:
            return False
        self.memory.read_at = now  # a read: no pause since it (the same leader throughout)
        return True

    async def _cluster_marks(self) -> Hashable:
        """What DescribeClusters shows of the cluster's tasks, services and instances."""
        reply = await self._aws.ecs.describe_clusters(clusters=[self._settings.cluster])
        found = (reply.get("clusters") or [{}])[0]
        keys = (
            "runningTasksCount",
            "pendingTasksCount",
            "activeServicesCount",
            "registeredContainerInstancesCount",
        )
        return tuple(int(found.get(k, 0)) for k in keys)

    async def read(self, now: float) -> Observed:
        self._probed = None
        cluster = await self._cluster_marks()  # before the rest: a change during the read shows
        asg = await self._describe_groups()
        groups = asg + await self.templates.groups(now)
        kinds = await self._group_types(groups)
        await self._type_info(set(kinds.values()))
        instances = {ci.ec2_instance_id: ci for ci in await self._directory.refresh()}
        described, placement = await self._placement(instances, now)
        self._probed = (cluster, group_marks(asg), service_marks(described))
        self._probes = 0
        providers: Providers | None = self.memory.providers
        observed = Observed(CapacitySnapshot(now, (), (), ()), instances=instances, groups=groups)
        observed.fingerprint = self.memory.seen  # this cycle's: the placement was read under it
        observed.tasks = {key: list(arns) for key, arns in placement.tasks.items()}
        self._daemons = await self._daemon_room(described)
        nodes, pools = self._nodes_and_pools(groups, kinds, instances, observed, providers)
        services = self._settling(await self._services(described, placement, providers), now)
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
        """The nodes (the groups' instances ECS has not registered yet, as launching, then the
        cluster's ACTIVE and DRAINING container instances) and the pools; each group's sizes
        noted in ``observed``."""
        member: dict[str, tuple[str, str]] = {}  # instance id -> (group, AZ)
        nodes: list[NodeView] = []
        self._kept = _kept_memory(groups, kinds, self._types, instances)
        named = providers.groups if providers else {}
        self._providers = {g: p for p, g in sorted(named.items(), reverse=True)}
        pools = [
            self._pool(g, kinds[g["AutoScalingGroupName"]], instances, observed, member, nodes)
            for g in groups
        ]
        nodes += [
            self._node(ci, member)
            for ci in instances.values()
            if ci.status in ("ACTIVE", "DRAINING")
        ]
        return nodes, pools

    def _pool(
        self,
        group: dict[str, Any],
        kind: str,
        instances: dict[str, ContainerInstance],
        observed: Observed,
        member: dict[str, tuple[str, str]],
        nodes: list[NodeView],
    ) -> PoolView:
        """A group as a pool of instances of type ``kind``; its live instances noted in
        ``member``, those ECS has not registered yet added to ``nodes`` as launching."""
        name = group["AutoScalingGroupName"]
        live = _note_sizes(observed, group)
        cpu, mem, price = self._types.get(kind, (4096, 8192, on_demand_price("", 4)))
        cpu, mem = _registered(cpu, mem, [instances.get(i["InstanceId"]) for i in live], self._kept)
        cpu, mem = max(0, cpu - self._daemons[0]), max(0, mem - self._daemons[1])
        size = 0
        for inst in live:
            iid, az = inst["InstanceId"], inst["AvailabilityZone"]
            member[iid] = (name, az)
            ci, ends = instances.get(iid), self._board.ends.get(iid)
            if ci is None:  # not registered in ECS yet: still launching, as far as ECS goes
                nodes.append(self._launching(iid, name, az, (cpu, mem), ends))
            if ends is None and (ci is None or not ci.draining):
                size += 1
        return PoolView(
            name,
            self.groups[name],
            "*",
            cpu,
            mem,
            price,
            size,
            max_size=observed.max_size[name],
            instance_type=kind,
            provider=self._providers.get(name, ""),
        )

    def _launching(
        self, iid: str, pool: str, az: str, size: tuple[int, int], ends: float | None
    ) -> NodeView:
        """An instance of ``pool`` ECS has not registered yet: all of ``size`` (CPU, MiB) free."""
        cpu, mem = size
        return NodeView(
            iid,
            pool,
            az,
            self.groups[pool],
            "launching",
            cpu,
            mem,
            cpu,
            mem,
            ends,
            provider=self._providers.get(pool, ""),
        )

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

    async def _placement(
        self, instances: dict[str, ContainerInstance], now: float
    ) -> tuple[dict[str, dict[str, Any]], Placement]:
        """The services described and where their tasks run: read in full (with the service
        names and the capacity providers, kept in :attr:`memory`), or the last full read's
        placement reused (:mod:`scaler.aws.read_memory`)."""
        memory, acted = self.memory, self.acted()
        # the tasks to evacuate before a notice ends are stopped by their ARNs: current ones
        evacuating = bool(self._board.ends) and bool(self._settings.overflow_services)
        due = memory.due(now, acted, evacuating)
        names = memory.names if memory.names is not None and not due else None
        described = await self._describe_services(names or await self._names())
        if not due:
            reused = memory.reuse(now, fingerprint(instances.values(), described), acted)
            if reused is not None:
                return described, reused
            if set(await self._names()) != set(names or ()):  # a service created or deleted
                described = await self._describe_services(self.memory.names or [])
        by_arn = {ci.arn: ci.ec2_instance_id for ci in instances.values()}
        placement = await self._tasks_by_service(by_arn)
        memory.providers = await self._providers_or_none()
        memory.remember(now, fingerprint(instances.values(), described), placement, acted)
        return described, placement

    async def _names(self) -> list[str]:
        self.memory.names = await self._service_names()
        return self.memory.names

    async def _services(
        self,
        described: dict[str, dict[str, Any]],
        placement: Placement,
        providers: Providers | None,
    ) -> list[ServiceView]:
        """The cluster's services that need EC2 room (not the overflow companions, not those on
        Fargate)."""
        placed = placement.placed
        companions = self._settings.overflow_services
        views = []
        for name, svc in sorted(described.items()):
            bound = strategy(svc, providers.default) if providers else ()
            if name in companions.values() or on_fargate(svc, bound):
                continue  # a companion, or a Fargate service: no EC2 room needed
            companion = companions.get(name)
            desired = int(described[companion]["desiredCount"]) if companion in described else 0
            view = await self._service(svc, placed.get(name, {}), bound)
            views.append(replace(view, overflow=companion, overflow_desired=desired))
        return views

    def _settling(self, services: list[ServiceView], now: float) -> list[ServiceView]:
        """``services`` with their unplaced tasks marked settling as far as the desired count
        rose within PLACEMENT_GRACE seconds: a count raised moments ago reads as tasks without
        a place until ECS's scheduler has tried to place them. A service first read now has
        no history: all its missing tasks settle for the grace."""
        seen, kept = self._desired_seen, {}
        marked = []
        for svc in services:
            history = [*seen.get(svc.name, []), (now, svc.desired)]
            older = [d for t, d in history if t <= now - PLACEMENT_GRACE]
            # the readings within the grace, and the last one before it (the count then)
            kept[svc.name] = history[len(older) - 1 :] if older else history
            rose = svc.desired - older[-1] if older else svc.unplaced
            settling = min(svc.unplaced, max(0, rose))
            marked.append(replace(svc, settling=settling) if settling else svc)
        self._desired_seen = kept
        return marked

    async def _service_names(self) -> list[str]:
        arns: list[str] = []
        paginator = self._aws.ecs.get_paginator("list_services")
        async for page in paginator.paginate(
            cluster=self._settings.cluster, PaginationConfig={"PageSize": 100}
        ):
            arns += page.get("serviceArns", [])
        return [a.rsplit("/", 1)[-1] for a in arns]

    async def _service(
        self, svc: dict[str, Any], placed: Mapping[str, int], bound: tuple[str, ...]
    ) -> ServiceView:
        """A service (as DescribeServices) as the planner sees it, without overflow companion;
        ``placed``: instance -> its tasks there; ``bound``: its capacity providers."""
        cpu, mem = await self._task_size(svc["taskDefinition"])
        running = int(svc.get("runningCount", 0)) + int(svc.get("pendingCount", 0))
        return ServiceView(
            svc["serviceName"],
            int(svc.get("desiredCount", 0)),
            cpu,
            mem,
            dict(placed),
            unplaced=max(0, int(svc.get("desiredCount", 0)) - running),
            healthy=int(svc.get("runningCount", 0)),
            providers=ec2_providers(bound),
        )

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

    async def _tasks_by_service(self, by_arn: dict[str, str]) -> Placement:
        placed: dict[str, Counter[str]] = defaultdict(Counter)
        tasks: dict[tuple[str, str], list[str]] = {}
        for arn, (group, instance) in (await self._task_places()).items():
            node = by_arn.get(instance)
            if group.startswith("service:") and node:
                service = group.split(":", 1)[1]
                placed[service][node] += 1
                tasks.setdefault((service, node), []).append(arn)
        return Placement(dict(placed), tasks)

    async def _task_places(self) -> dict[str, tuple[str, str]]:
        """Task ARN -> (its group, its container instance) for every task whose desired status
        is RUNNING, in ListTasks' order: listed at every full read, described only when listed
        for the first time (neither changes in a task's life; a task not placed yet is
        described again)."""
        cluster = self._settings.cluster
        arns = await running_task_arns(self._aws.ecs, cluster)
        known = self._places
        new = [a for a in arns if a not in known]
        for task in await describe_tasks(self._aws.ecs, cluster, new):  # no call if none
            if task.get("containerInstanceArn"):
                known[task["taskArn"]] = (str(task.get("group", "")), task["containerInstanceArn"])
        self._places = {a: known[a] for a in arns if a in known}
        return self._places


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
    cpu: int, memory: int, instances: list[ContainerInstance | None], kept: int = 0
) -> tuple[int, int]:
    """A pool's instance size as ECS places tasks on it: what its instances registered, where
    less than the type's (the ECS agent and the OS keep part of the memory), the smallest of
    them; until one has registered, the type's less ``kept`` MiB (what the agent and the OS
    keep on the cluster's other instances)."""
    known = [ci for ci in instances if ci is not None and ci.cpu > 0 and ci.memory > 0]
    if not known:
        return cpu, max(0, memory - kept)
    return min(cpu, *(ci.cpu for ci in known)), min(memory, *(ci.memory for ci in known))


def _kept_memory(
    groups: list[dict[str, Any]],
    kinds: dict[str, str],
    types: dict[str, tuple[int, int, float]],
    instances: dict[str, ContainerInstance],
) -> int:
    """MiB the ECS agent and the OS keep from a type's memory (ECS_RESERVED_MEMORY and what the
    kernel holds), as the groups' registered instances show it: the most any keeps; 0 before
    any has registered."""
    kept = 0
    for group in groups:
        size = types.get(kinds.get(group["AutoScalingGroupName"], ""))
        if size is None:
            continue
        for inst in live_instances(group):
            ci = instances.get(inst["InstanceId"])
            if ci is not None and 0 < ci.memory <= size[1]:
                kept = max(kept, size[1] - ci.memory)
    return kept


def _note_sizes(observed: Observed, group: dict[str, Any]) -> list[dict[str, Any]]:
    """Note a group's sizes in ``observed``; its live instances."""
    name = group["AutoScalingGroupName"]
    observed.max_size[name] = int(group.get("MaxSize", 0))
    if "MinSize" in group:  # an Auto Scaling group's (a template pool has none)
        observed.min_size[name] = int(group["MinSize"])
    observed.desired[name] = int(group.get("DesiredCapacity", 0))
    live = live_instances(group)
    observed.live[name] = len(live)
    return live
