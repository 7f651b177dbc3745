"""The live cluster as the ECS model sees it, built from read-only ECS calls.

The rebalance planner and ``scaler plan`` reason on :class:`scaler.ecs.cluster.Cluster`, the same
model the simulator runs. This module fills one from the real cluster: container instances (type
and AZ from their ECS attributes, registered and remaining CPU and memory), services (placement
strategies and constraints, deployment bounds, task sizes:
:func:`scaler.aws.services.read_services`) and their running tasks (where they run, when they
started, whether they belong to the service's current task definition, and when each counts as
healthy: :func:`scaler.ecs.health.healthy_since` on its ``healthStatus`` and ``startedAt``, its
service's health check grace period and load balancers, and whether its task definition has
container health checks). Each instance's capacity provider is ECS's word for it
(``capacityProviderName`` or the ``ecs.capacity-provider-name`` attribute), so services bound to
providers are placed on their instances only.

CPU load is the share of CPU *reserved* on each instance (each task counted at its reservation).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from scaler.aws.clients import AwsClients
from scaler.aws.cpu import measured_cpu
from scaler.aws.ecs import (
    describe_container_instances_raw,
    list_container_instance_arns,
    resource,
)
from scaler.aws.services import Definitions, Providers, read_providers, read_services
from scaler.aws.tasks import epoch, running_tasks, task_health
from scaler.ecs.cluster import (
    ACTIVE,
    DRAINING,
    Cluster,
    Instance,
    InstanceType,
    ServiceState,
    Task,
)
from scaler.ecs.health import ServiceHealth, healthy_since
from scaler.prices import on_demand_price


def _attribute(raw: dict[str, Any], name: str) -> str:
    for attr in raw.get("attributes", []):
        if attr.get("name") == name:
            return str(attr.get("value", ""))
    return ""


@dataclass
class LiveCluster:
    model: Cluster
    task_arns: dict[str, str] = field(default_factory=dict)  # model task id -> task ARN
    # service name -> (service ARN, its tags)
    service_tags: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    standalone: dict[str, int] = field(default_factory=dict)  # instance id -> non-service tasks


async def live_cluster(
    aws: AwsClients, cluster: str, definitions: Definitions | None = None
) -> LiveCluster:
    """The model of the live cluster, its tasks' ARNs, and notes on what it had to assume.
    ``definitions``: the task definitions read before (a reader that reads again keeps them)."""
    live = LiveCluster(Cluster())
    model = live.model
    by_arn: dict[str, tuple[Instance, dict[str, Any]]] = {}
    providers = await read_providers(aws.ecs, cluster)
    for raw in await _container_instances(aws, cluster):
        if raw.get("status") in (ACTIVE, DRAINING):
            by_arn[raw["containerInstanceArn"]] = (_instance(model, raw, providers), raw)
    health: dict[str, ServiceHealth] = {}
    primaries: dict[str, str] = {}
    specs = await read_services(
        aws.ecs, cluster, live.notes, live.service_tags, providers, health, definitions, primaries
    )
    for spec in specs:
        model.add_service(replace(spec, cpu_use=1.0))  # load counts reservations
    for raw in await running_tasks(aws.ecs, cluster):
        _count_standalone(live, raw, by_arn)
        task = _place(model, raw, by_arn, primaries, health)
        if task is not None:
            live.task_arns[task.id] = raw["taskArn"]
    for inst, raw in by_arn.values():  # ECS's own accounting of what is left wins
        inst.free_cpu = resource(raw, "remainingResources", "CPU")
        inst.free_mem = resource(raw, "remainingResources", "MEMORY")
    live.notes.append("CPU load is the share of CPU reserved by tasks (not measured use)")
    return live


async def with_measured_cpu(
    aws: AwsClients, live: LiveCluster, now: datetime | None = None
) -> LiveCluster:
    """Replace reserved load by CloudWatch's measured CPU where there is a measurement.

    Each instance's load becomes its measured share; each service's modelled use per task is
    estimated from the instances it runs on (measured over reserved, weighted by its tasks
    there), so a move's size reflects how much CPU the task really uses.
    """
    model = live.model
    shares = await measured_cpu(aws.cloudwatch, sorted(model.instances), now)
    ratio: dict[str, float] = {}
    for iid, share in shares.items():
        inst = model.instances[iid]
        reserved = inst.cpu - inst.free_cpu
        ratio[iid] = share * inst.cpu / reserved if reserved > 0 else 1.0
    for state in model.services.values():
        weights = [
            ratio[t.instance.id]
            for t in state.tasks.values()
            if t.instance is not None and t.instance.id in ratio
        ]
        if weights:
            use = sum(weights) / len(weights)
            state.spec = replace(state.spec, cpu_use=use)
            for task in state.tasks.values():
                task.service = state.spec
    for iid, share in shares.items():
        model.instances[iid].used_cpu = share * model.instances[iid].cpu
    live.notes[-1] = (
        f"CPU load measured by CloudWatch for {len(shares)} of {len(model.instances)} instances "
        "(the others: reserved share)"
    )
    return live


def _instance(model: Cluster, raw: dict[str, Any], providers: Providers) -> Instance:
    cpu = resource(raw, "registeredResources", "CPU")
    memory = resource(raw, "registeredResources", "MEMORY")
    name = _attribute(raw, "ecs.instance-type") or "unknown"
    vcpu = max(1, cpu // 1024)
    itype = InstanceType(name, vcpu, memory, on_demand_price(name, vcpu))
    az = _attribute(raw, "ecs.availability-zone")
    inst = model.launch(
        "live",
        itype,
        az,
        "unknown",
        itype.on_demand_price,
        0.0,
        id=raw["ec2InstanceId"],
        provider=providers.of(raw),
    )
    model.register(inst, epoch(raw.get("registeredAt")))  # 0.0 when ECS does not say
    inst.status = str(raw["status"])
    return inst


def _count_standalone(
    live: LiveCluster, raw: dict[str, Any], by_arn: dict[str, tuple[Instance, dict[str, Any]]]
) -> None:
    placed = by_arn.get(raw.get("containerInstanceArn", ""))
    if placed is not None and not str(raw.get("group", "")).startswith("service:"):
        iid = placed[0].id
        live.standalone[iid] = live.standalone.get(iid, 0) + 1


def _place(
    model: Cluster,
    raw: dict[str, Any],
    by_arn: dict[str, tuple[Instance, dict[str, Any]]],
    primaries: dict[str, str],
    health: dict[str, ServiceHealth],
) -> Task | None:
    group = str(raw.get("group", ""))
    if not group.startswith("service:"):
        return None
    state: ServiceState | None = model.services.get(group.split(":", 1)[1])
    placed = by_arn.get(raw.get("containerInstanceArn", ""))
    if state is None or placed is None:
        return None
    inst = placed[0]
    started = epoch(raw.get("startedAt") or raw.get("createdAt"))
    seen = task_health(raw)
    task: Task = model.start_task(state, inst, inst.az, started)
    task.running_at = started
    service = health.get(state.spec.name, ServiceHealth())
    task.healthy_at = healthy_since(seen.status, seen.running_since, service)
    if raw.get("taskDefinitionArn") != primaries.get(state.spec.name):
        task.revision = state.revision - 1  # an older revision: a deployment is under way
    if seen.running_since is not None:
        model.mark_running(task)
    return task


async def _container_instances(aws: AwsClients, cluster: str) -> list[dict[str, Any]]:
    arns = await list_container_instance_arns(aws.ecs, cluster)
    return await describe_container_instances_raw(aws.ecs, cluster, arns)
