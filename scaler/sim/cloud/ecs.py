"""Simulated ECS: the API over the simulator's one ECS model.

The cluster the scaler sees is the engine's :class:`~scaler.ecs.cluster.Cluster`: its container
instances are the model's registered instances, its services and tasks the model's, placed,
replaced and drained by the model's scheduler. Nothing here decides where a task goes; this
module only answers in ECS's shapes and turns the scaler's writes into the model's methods:

- ``UpdateContainerInstancesState`` DRAINING drains the instance in the model (its scheduler
  then replaces the service tasks within the services' deployment limits), ACTIVE sets a
  drained instance back;
- ``StopTask`` stops a task (its service starts another), ``UpdateService`` sets the desired
  count;
- ``PutAttributes``/``DeleteAttributes`` and tags are kept beside the model, per resource.

Capacity providers are the scenario's: the cluster names those of its pools
(``capacityProviders``; it has no default strategy), ``DescribeCapacityProviders`` gives each by
name (an unknown name is a ``MISSING`` failure) with the Auto Scaling group the world made it
with (:attr:`Ecs.groups`; a provider the world gave none names a group after itself, which the
simulated Auto Scaling does not hold: ECS managed scaling's own), managed scaling, termination
protection and draining disabled (the simulated ECS does none of them), and a service bound to
providers carries its strategy (each provider at weight 1, base 0) and, as in ECS, no
``launchType``.

Health is told as ECS tells it: a task's ``startedAt`` once it is RUNNING, its ``healthStatus``
UNKNOWN until the model counts it healthy (its service's health delay after it started) and
HEALTHY from then on, as for a container health check in its task definition, which says so
(:func:`health_check`).

Counts are ECS's: ``runningTasksCount`` counts RUNNING tasks only, ``pendingTasksCount`` the
PENDING ones. Batches are held to ECS's limits (10 instances a state change, 100 a describe, 10
services a describe, 100 tasks a describe, 100 capacity providers a describe). Every answer
first brings the engine up to the loop's time, and every change wakes the engine's driver.

What reads derive from the whole model (the registered instances, every task by id, a listing's
order) is shared by the reads of one state of the model (:mod:`.ecs_reads`): the pages of one
listing cost the listing once, and each answer is still the model's at the moment of the read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scaler.aws import surges
from scaler.ecs.cluster import (
    ACTIVE,
    DEACTIVATING,
    DRAINING,
    PENDING,
    RUNNING,
    Instance,
    ServiceState,
    Task,
)
from scaler.sim.cloud.driver import LoopDriver
from scaler.sim.cloud.ecs_reads import ClusterReads, TaskDescriptions
from scaler.sim.cloud.transport import AwsError, Operations

ACCOUNT = "123456789012"
PAGE = 100
FARGATE_PROVIDERS = ("FARGATE", "FARGATE_SPOT")  # every account has them
PROVIDERS_PAGE = 10  # DescribeCapacityProviders' page when no names are given
KeptInstance = tuple[Instance, tuple[Any, ...], dict[str, Any]]


class Ecs(Operations):
    """One cluster, ``name``, over the engine ``driver`` runs."""

    def __init__(
        self,
        driver: LoopDriver,
        name: str,
        region: str = "us-east-1",
        groups: Mapping[str, str] | None = None,
    ) -> None:
        self._driver = driver
        self.name = name
        self._region = region
        self._prefix = f"arn:aws:ecs:{region}:{ACCOUNT}"
        self.groups: dict[str, str] = dict(groups or {})  # provider -> its group's ARN
        self.attributes: dict[str, dict[str, str]] = {}  # instance id -> name -> value
        self.tags: dict[str, dict[str, str]] = {}  # resource ARN -> key -> value
        self.drained_at: dict[str, float] = {}  # instance id -> first set DRAINING (loop time)
        self.unknown: list[str] = []  # references to no container instance of the cluster
        self._reads: ClusterReads | None = None  # what reads share at the model's version
        self._task_descriptions = TaskDescriptions(self._task_description)
        # instance id -> (the instance, what its description tells that changes, the description)
        self._instance_descriptions: dict[str, KeptInstance] = {}

    async def answer(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        self._driver.sync()
        try:
            return await super().answer(operation, params)
        finally:
            self._driver.poke()

    @property
    def _cluster(self) -> Any:
        return self._driver.sim.cluster

    # -- names --------------------------------------------------------------------------------

    def arn_of_instance(self, inst: Instance) -> str:
        return f"{self._prefix}:container-instance/{self.name}/{inst.id}"

    def _arn_of_task(self, task: Task) -> str:
        return f"{self._prefix}:task/{self.name}/{task.id}"

    def _arn_of_service(self, name: str) -> str:
        return f"{self._prefix}:service/{self.name}/{name}"

    def _check(self, cluster: str) -> None:
        if cluster.rsplit("/", 1)[-1] != self.name:
            raise AwsError("ClusterNotFoundException", "Cluster not found.")

    def _now(self) -> ClusterReads:
        """What reads share at the model's state now (:mod:`.ecs_reads`)."""
        sim = self._driver.sim
        reads = self._reads
        if reads is None or reads.cluster is not sim.cluster or reads.version != sim.version:
            reads = self._reads = ClusterReads(sim.cluster, sim.version)
        return reads

    def _registered(self) -> dict[str, Instance]:
        return self._now().registered()

    def _instance(self, ref: str) -> Instance | None:
        inst = self._cluster.instances.get(ref.rsplit("/", 1)[-1])
        return inst if inst is not None and inst.status in (ACTIVE, DRAINING) else None

    # -- clusters and capacity providers -----------------------------------------------------

    async def describe_clusters(self, clusters: list[str], **_: Any) -> dict[str, Any]:
        found = [c for c in clusters if c.rsplit("/", 1)[-1] == self.name]
        missing = [c for c in clusters if c not in found]
        described = [
            {
                "clusterName": self.name,
                "clusterArn": f"{self._prefix}:cluster/{self.name}",
                "status": "ACTIVE",
                "registeredContainerInstancesCount": len(self._registered()),
                **self._task_counts(),
                "activeServicesCount": len(self._cluster.services),
                "capacityProviders": self.providers(),
                "defaultCapacityProviderStrategy": [],
            }
            for _ in found
        ]
        failures = [{"arn": c, "reason": "MISSING"} for c in missing]
        return {"clusters": described, "failures": failures}

    def _task_counts(self) -> dict[str, int]:
        """The cluster's tasks RUNNING and PENDING, as its services' counts count them."""
        services = self._cluster.services.values()
        running = sum(s.running for s in services)
        return {
            "runningTasksCount": running,
            "pendingTasksCount": sum(len(s.tasks) for s in services) - running,
        }

    def providers(self) -> list[str]:
        """The cluster's capacity providers: its scenario's pools'."""
        pools = self._driver.sim.scenario.pools
        return sorted({p.capacity_provider for p in pools if p.capacity_provider})

    async def describe_capacity_providers(
        self,
        capacityProviders: list[str] | None = None,
        nextToken: str = "",
        maxResults: int = PROVIDERS_PAGE,
        **_: Any,
    ) -> dict[str, Any]:
        known = [*self.providers(), *FARGATE_PROVIDERS]
        if capacityProviders is None:  # all of them, a page at a time
            reply = _page(known, "capacityProviders", nextToken, maxResults)
            reply["capacityProviders"] = [self._provider(n) for n in reply["capacityProviders"]]
            return {**reply, "failures": []}
        _limit(capacityProviders, 100, "capacityProviders")
        found, failures = [], []
        for ref in capacityProviders:
            name = ref.rsplit("/", 1)[-1]
            if name in known:
                found.append(self._provider(name))
            else:
                failures.append({"arn": ref, "reason": "MISSING"})
        return {"capacityProviders": found, "failures": failures}

    def _provider(self, name: str) -> dict[str, Any]:
        described: dict[str, Any] = {
            "capacityProviderArn": f"{self._prefix}:capacity-provider/{name}",
            "name": name,
            "status": "ACTIVE",
            "updateStatus": "CREATE_COMPLETE",
        }
        if name in FARGATE_PROVIDERS:
            return {**described, "type": name}
        group = self.groups.get(name) or self._unheld_group(name)
        described["type"] = "EC2_AUTOSCALING"
        described["autoScalingGroupProvider"] = {
            "autoScalingGroupArn": group,
            "managedScaling": {
                "status": "DISABLED",
                "targetCapacity": 100,
                "minimumScalingStepSize": 1,
                "maximumScalingStepSize": 10000,
                "instanceWarmupPeriod": 300,
            },
            "managedTerminationProtection": "DISABLED",
            "managedDraining": "DISABLED",
        }
        return described

    def _unheld_group(self, provider: str) -> str:
        """The ARN of a group named after ``provider``, which the simulated Auto Scaling does
        not hold (the world made the provider with none of its groups)."""
        return (
            f"arn:aws:autoscaling:{self._region}:{ACCOUNT}:autoScalingGroup:"
            f"00000000-0000-4000-8000-000000000000:autoScalingGroupName/{provider}"
        )

    # -- container instances -----------------------------------------------------------------

    async def list_container_instances(
        self, cluster: str, nextToken: str = "", maxResults: int = PAGE, **_: Any
    ) -> dict[str, Any]:
        self._check(cluster)
        reads = self._now()
        if reads.instance_arns is None:
            registered = reads.registered().values()
            reads.instance_arns = sorted(self.arn_of_instance(i) for i in registered)
        return _page(reads.instance_arns, "containerInstanceArns", nextToken, maxResults)

    async def describe_container_instances(
        self, cluster: str, containerInstances: list[str], **_: Any
    ) -> dict[str, Any]:
        self._check(cluster)
        _limit(containerInstances, 100, "containerInstances")
        found, failures = [], []
        for ref in containerInstances:
            inst = self._instance(ref)
            if inst is None:
                failures.append({"arn": ref, "reason": "MISSING"})
            else:
                found.append(self._describe_instance(inst))
        return {"containerInstances": found, "failures": failures}

    def _describe_instance(self, inst: Instance) -> dict[str, Any]:
        """``inst`` as DescribeContainerInstances describes it: built again only when what it
        tells of the instance changed (a new dict each time, its ``version`` the engine's; what
        it holds is shared with the earlier answers that described the instance so)."""
        states = [t.state for t in inst.tasks.values()]
        running, pending = states.count(RUNNING), states.count(PENDING)
        put = self.attributes.get(inst.id)
        told = (inst.status, running, pending, inst.free_cpu, inst.free_mem, *(put or {}).items())
        kept = self._instance_descriptions.get(inst.id)
        if kept is None or kept[0] is not inst or kept[1] != told:
            if len(self._instance_descriptions) > 2 * len(self._cluster.instances) + 1000:
                self._forget_instances()
            described = self._instance_description(inst, running, pending)
            kept = self._instance_descriptions[inst.id] = (inst, told, described)
        return {**kept[2], "version": self._driver.sim.version}

    def _forget_instances(self) -> None:
        """Drop the descriptions of instances no longer in the cluster."""
        instances = self._cluster.instances
        kept = self._instance_descriptions.items()
        self._instance_descriptions = {i: k for i, k in kept if instances.get(i) is k[0]}

    def _instance_description(self, inst: Instance, running: int, pending: int) -> dict[str, Any]:
        attributes = [
            {"name": "ecs.availability-zone", "value": inst.az},
            {"name": "ecs.instance-type", "value": inst.type.name},
        ]
        put = self.attributes.get(inst.id)
        if put:
            attributes += [{"name": k, "value": v} for k, v in sorted(put.items())]
        if inst.provider:
            attributes.append({"name": "ecs.capacity-provider-name", "value": inst.provider})
        return {
            "containerInstanceArn": self.arn_of_instance(inst),
            "ec2InstanceId": inst.id,
            "status": inst.status,
            "agentConnected": True,
            "runningTasksCount": running,
            "pendingTasksCount": pending,
            "registeredResources": _resources(inst.cpu, inst.memory),
            "remainingResources": _resources(inst.free_cpu, inst.free_mem),
            "attributes": attributes,
            "capacityProviderName": inst.provider or None,
            "version": self._driver.sim.version,
        }

    async def update_container_instances_state(
        self, cluster: str, containerInstances: list[str], status: str
    ) -> dict[str, Any]:
        self._check(cluster)
        _limit(containerInstances, 10, "containerInstances")
        changed, failures = [], []
        for ref in containerInstances:
            inst = self._instance(ref)
            if inst is None:
                self.unknown.append(ref)
                failures.append({"arn": ref, "reason": "MISSING"})
                continue
            self._set_status(inst, status)
            changed.append(self._describe_instance(inst))
        return {"containerInstances": changed, "failures": failures}

    def _set_status(self, inst: Instance, status: str) -> None:
        sim = self._driver.sim
        if status == DRAINING:
            self.drained_at.setdefault(inst.id, sim.now)
            sim.drain([inst], why="UpdateContainerInstancesState")
        elif status == ACTIVE and inst.status == DRAINING:
            sim.reactivate(inst)
        elif status not in (ACTIVE, DRAINING):
            raise AwsError("InvalidParameterException", f"Invalid status {status}.")

    async def deregister_container_instance(
        self, cluster: str, containerInstance: str, force: bool = False
    ) -> dict[str, Any]:
        self._check(cluster)
        inst = self._instance(containerInstance)
        if inst is None:
            raise AwsError("InvalidParameterException", "Container instance not found.")
        described = {**self._describe_instance(inst), "status": "INACTIVE"}
        self._driver.sim.deregister(inst)
        return {"containerInstance": described}

    async def put_attributes(
        self, cluster: str, attributes: list[dict[str, Any]]
    ) -> dict[str, Any]:
        self._check(cluster)
        for attribute in attributes:
            inst = self._instance(str(attribute.get("targetId", "")))
            if inst is None:
                raise AwsError("TargetNotFoundException", "Could not find the target.")
            self.attributes.setdefault(inst.id, {})[attribute["name"]] = attribute.get("value", "")
        return {"attributes": attributes}

    async def delete_attributes(
        self, cluster: str, attributes: list[dict[str, Any]]
    ) -> dict[str, Any]:
        self._check(cluster)
        for attribute in attributes:
            inst = self._instance(str(attribute.get("targetId", "")))
            if inst is not None:
                self.attributes.get(inst.id, {}).pop(attribute["name"], None)
        return {"attributes": attributes}

    async def tag_resource(self, resourceArn: str, tags: list[dict[str, str]]) -> dict[str, Any]:
        self.tags.setdefault(resourceArn, {}).update({t["key"]: t["value"] for t in tags})
        return {}

    async def untag_resource(self, resourceArn: str, tagKeys: list[str]) -> dict[str, Any]:
        for key in tagKeys:
            self.tags.get(resourceArn, {}).pop(key, None)
        return {}

    # -- services ----------------------------------------------------------------------------

    async def list_services(
        self, cluster: str, nextToken: str = "", maxResults: int = 10, **_: Any
    ) -> dict[str, Any]:
        self._check(cluster)
        arns = sorted(self._arn_of_service(n) for n in self._cluster.services)
        return _page(arns, "serviceArns", nextToken, maxResults)

    async def describe_services(
        self, cluster: str, services: list[str], include: list[str] | None = None, **_: Any
    ) -> dict[str, Any]:
        self._check(cluster)
        _limit(services, 10, "services")
        found, failures = [], []
        for ref in services:
            state = self._cluster.services.get(ref.rsplit("/", 1)[-1])
            if state is None:
                failures.append({"arn": ref, "reason": "MISSING"})
            else:
                found.append(self._describe_service(state))
        if "TAGS" in (include or []):
            for svc in found:
                pairs = self.tags.get(svc["serviceArn"], {})
                svc["tags"] = [{"key": k, "value": v} for k, v in sorted(pairs.items())]
        return {"services": found, "failures": failures}

    def _describe_service(self, state: ServiceState) -> dict[str, Any]:
        spec = state.spec
        described = {
            "serviceName": spec.name,
            "serviceArn": self._arn_of_service(spec.name),
            "status": "ACTIVE",
            "desiredCount": spec.desired,
            "runningCount": state.running,
            "pendingCount": len(state.tasks) - state.running,
            **_placed_by(spec.launch_type, spec.capacity_providers),
            "taskDefinition": self._task_definition_arn(spec.name, state.revision),
            "deploymentConfiguration": {
                "minimumHealthyPercent": spec.min_healthy_percent,
                "maximumPercent": spec.max_percent,
            },
            "placementStrategy": [
                {"type": s.type, **({"field": s.field} if s.field else {})} for s in spec.strategies
            ],
            "placementConstraints": [
                {"type": c.type, **({"expression": c.expression} if c.expression else {})}
                for c in spec.constraints
            ],
            "schedulingStrategy": "DAEMON" if spec.daemon else "REPLICA",
        }
        return described

    def _task_definition_arn(self, family: str, revision: int) -> str:
        return f"{self._prefix}:task-definition/{family}:{revision}"

    async def update_service(
        self, cluster: str, service: str, desiredCount: int | None = None, **_: Any
    ) -> dict[str, Any]:
        self._check(cluster)
        name = service.rsplit("/", 1)[-1]
        state = self._cluster.services.get(name)
        if state is None:
            raise AwsError("ServiceNotFoundException", "Service not found.")
        if desiredCount is not None:
            self._surged(name, desiredCount)
            self._driver.sim.set_desired(name, desiredCount)
        return {"service": self._describe_service(state)}

    def _surged(self, name: str, desired: int) -> None:
        """A count set while the service carries a surge mark (the scaler's, written before it
        raises a count and removed after it set it back) is the mark's count plus a surge:
        availability is measured against the count without it, as for the engine's surges."""
        tags = self.tags.get(self._arn_of_service(name), {})
        move = surges.parse(tags[surges.TAG]) if surges.TAG in tags else None
        roll = surges.parse_roll(tags[surges.ROLL_TAG]) if surges.ROLL_TAG in tags else None
        before = roll.desired if roll is not None else move.desired if move is not None else None
        sim = self._driver.sim
        sim.surged[name] = 0 if before is None else max(0, desired - before)

    async def describe_task_definition(self, taskDefinition: str, **_kw: Any) -> dict[str, Any]:
        family, _, revision = taskDefinition.rsplit("/", 1)[-1].partition(":")
        state = self._cluster.services.get(family)
        if state is None:
            raise AwsError("ClientException", "Unable to describe task definition.")
        spec = state.spec
        return {
            "taskDefinition": {
                "taskDefinitionArn": self._task_definition_arn(family, int(revision or 1)),
                "family": family,
                "revision": int(revision or 1),
                "containerDefinitions": [
                    {
                        "name": "app",
                        "image": "app",
                        "cpu": spec.cpu,
                        "memory": spec.memory,
                        "healthCheck": health_check(spec.health_delay),
                    }
                ],
                "requiresCompatibilities": [spec.launch_type],
                "status": "ACTIVE",
            }
        }

    # -- tasks -------------------------------------------------------------------------------

    async def list_tasks(
        self,
        cluster: str,
        containerInstance: str | None = None,
        serviceName: str | None = None,
        desiredStatus: str | None = None,
        nextToken: str = "",
        maxResults: int = PAGE,
        **_: Any,
    ) -> dict[str, Any]:
        self._check(cluster)
        stopped = desiredStatus == "STOPPED"
        ids, by_id = self._now().listing(containerInstance, serviceName, stopped, self._tasks)
        reply = _page(ids, "taskArns", nextToken, maxResults)
        reply["taskArns"] = [self._arn_of_task(by_id[i]) for i in reply["taskArns"]]
        return reply

    def _tasks(self, instance: str | None, service: str | None) -> list[Task]:
        """Tasks on ``instance`` or of ``service`` (all if neither), DEACTIVATING ones too."""
        if instance is not None:
            inst = self._instance(instance)
            return list(inst.tasks.values()) if inst is not None else []
        every = self._every_task().values()
        if service is None:
            return list(every)
        return [t for t in every if t.service.name == service.rsplit("/", 1)[-1]]

    def _every_task(self) -> dict[str, Task]:
        """Task id -> task: the services' tasks and those still deactivating on instances
        (a stopped task leaves its service at once, and its instance only when it is gone)."""
        return self._now().every_task()

    async def describe_tasks(self, cluster: str, tasks: list[str], **_: Any) -> dict[str, Any]:
        self._check(cluster)
        _limit(tasks, 100, "tasks")
        index = self._every_task()
        found, failures = [], []
        for ref in tasks:
            task = index.get(ref.rsplit("/", 1)[-1])
            if task is None:
                failures.append({"arn": ref, "reason": "MISSING"})
            else:
                found.append(self._describe_task(task, index))
        return {"tasks": found, "failures": failures}

    def _describe_task(self, task: Task, live: dict[str, Task]) -> dict[str, Any]:
        """``task`` as DescribeTasks describes it (``live``: every task of the cluster)."""
        return self._task_descriptions(task, self._driver.sim.now, live)

    def _task_description(self, task: Task) -> dict[str, Any]:
        """``task``'s description but for its health, which :meth:`_describe_task` sets."""
        spec = task.service
        described: dict[str, Any] = {
            "taskArn": self._arn_of_task(task),
            "clusterArn": f"{self._prefix}:cluster/{self.name}",
            "taskDefinitionArn": self._task_definition_arn(spec.name, task.revision),
            "group": f"service:{spec.name}",
            "startedBy": "ecs-svc/0000000000000000000",
            "lastStatus": task.state,
            "desiredStatus": "STOPPED" if task.state == DEACTIVATING else "RUNNING",
            "cpu": str(spec.cpu),
            "memory": str(spec.memory),
            "availabilityZone": task.az,
            "launchType": "FARGATE" if task.fargate else "EC2",
            "createdAt": self._driver.sim.wall(task.created_at),
            "healthStatus": "UNKNOWN",
        }
        if task.state in (RUNNING, DEACTIVATING):
            described["startedAt"] = self._driver.sim.wall(task.running_at)
        if task.instance is not None:
            described["containerInstanceArn"] = self.arn_of_instance(task.instance)
        return described

    async def stop_task(
        self, cluster: str, task: str, reason: str = "", **_: Any
    ) -> dict[str, Any]:
        self._check(cluster)
        live = self._every_task()
        found = live.get(task.rsplit("/", 1)[-1])
        if found is None:
            raise AwsError("InvalidParameterException", "The referenced task was not found.")
        described = {**self._describe_task(found, live), "desiredStatus": "STOPPED"}
        self._driver.sim.stop_task(found, engine_reason(reason))
        return {"task": described}


# the scaler's StopTask reasons that move a task, by their start -> the engine's reason, which
# the figures count as a move (the rebalancer's also against minimum health)
MOVES = {
    "scaler: rebalance": "rebalance",
    "scaler: evacuated": "evacuated",
    "scaler: restarted elsewhere": "evacuated",
}


def engine_reason(reason: str) -> str:
    """The engine's stop reason for a StopTask ``reason``: a move of the scaler's as the
    engine names it, any other reason as given."""
    for start, ours in MOVES.items():
        if reason.startswith(start):
            return ours
    return reason or "StopTask"


def _placed_by(launch_type: str, providers: tuple[str, ...]) -> dict[str, Any]:
    """What decides where a service's tasks run: its capacity provider strategy (each provider
    at weight 1, base 0), with which ECS gives no launch type, else its launch type."""
    if not providers:
        return {"launchType": launch_type}
    strategy = [{"capacityProvider": p, "weight": 1, "base": 0} for p in providers]
    return {"capacityProviderStrategy": strategy}


def health_check(delay: float) -> dict[str, Any]:
    """A container health check that first reports HEALTHY ``delay`` seconds after the task
    starts running, at worst (``startPeriod + interval``, within ECS's bounds: interval 5 to
    300 s, start period up to 300 s), as the model counts its tasks healthy then."""
    start = min(300, max(0, round(delay) - 5))
    interval = min(300, max(5, round(delay) - start))
    return {"command": ["CMD-SHELL", "true"], "interval": interval, "startPeriod": start}


def _resources(cpu: int, memory: int) -> list[dict[str, Any]]:
    return [
        {"name": "CPU", "type": "INTEGER", "integerValue": cpu},
        {"name": "MEMORY", "type": "INTEGER", "integerValue": memory},
    ]


def _limit(items: list[str], most: int, name: str) -> None:
    if len(items) > most:
        raise AwsError("InvalidParameterException", f"{name} can have at most {most} items.")


def _page(items: list[str], key: str, token: str, size: int) -> dict[str, Any]:
    start = int(token) if token else 0
    reply: dict[str, Any] = {key: items[start : start + size]}
    if start + size < len(items):
        reply["nextToken"] = str(start + size)
    return reply
