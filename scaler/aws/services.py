"""How the live cluster's services are read: one :class:`scaler.ecs.cluster.ServiceSpec` each.

ListServices and DescribeServices (batched), then each primary deployment's task definition
(DescribeTaskDefinition, bounded concurrency; a revision never changes, so a reader that reads
again keeps them in a :class:`Definitions`): desired count, CPU and memory reservation,
deployment percentages (ECS's REPLICA defaults when unset), placement strategies and the
constraints the ECS model understands (others are noted and left out), the launch type, and the
container health checks' worst-case time. ``scaler snapshot`` writes these into a scenario; the
rebalancer and ``scaler plan`` build the live model from them.

Capacity providers: a service's ``capacityProviderStrategy`` (or, with neither a strategy nor a
launch type, the cluster's ``defaultCapacityProviderStrategy``, from DescribeClusters) decides
where its tasks may run. Only Fargate providers: a Fargate service. Otherwise its EC2 providers
become ``ServiceSpec.capacity_providers`` (any of them, whatever their weights), and only their
instances may hold its tasks. :func:`read_providers` adds which Auto Scaling group each provider
is (DescribeCapacityProviders); an instance belongs to a provider by ECS's word
(``capacityProviderName``, the ``ecs.capacity-provider-name`` attribute) or by its group.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from scaler.aws.clients import error_code
from scaler.aws.concurrency import bounded
from scaler.aws.ecs import PROVIDER_ATTRIBUTE, attribute
from scaler.aws.taskdefs import reservation
from scaler.ecs.cluster import (
    DEFAULT_STRATEGY,
    Constraint,
    Instance,
    InstanceType,
    ServiceSpec,
    Strategy,
)
from scaler.ecs.health import ServiceHealth
from scaler.ecs.placement import member_of
from scaler.guard import container_health_check_seconds, describe_services, list_service_arns

CPU_USE = 0.5
MIN_CPU = 128  # CPU units modelled for a task that reserves none
MIN_MEMORY = 128  # MiB, likewise
DEFAULT_PERCENTS = (100, 200)  # ECS's REPLICA deployment defaults
FARGATE_PROVIDERS = frozenset({"FARGATE", "FARGATE_SPOT"})
_SUBJECT = re.compile(r"^\s*([^\s=!<>]+)")
_PROBE = Instance(
    "i-probe", "probe", InstanceType("probe", 1, 1024, 0.0), "az", "spot", 0.0, 0.0, "", "cp"
)


DESCRIBE_PROVIDERS_BATCH = 100  # names per DescribeCapacityProviders call
KEPT_DEFINITIONS = 1000  # task definitions a Definitions keeps, the last read first


class Definitions:
    """Task definitions read before, by ARN. A revision is immutable (a change registers a new
    one), so what was read stays true; only successful reads are kept (an unreadable one may
    be readable next time), and at most ``KEPT_DEFINITIONS``, those read or used last."""

    def __init__(self, keep: int = KEPT_DEFINITIONS) -> None:
        self._keep = keep
        self._known: dict[str, dict[str, Any]] = {}
        self.reads = 0  # DescribeTaskDefinition calls made

    async def read(self, ecs: Any, arns: list[str]) -> dict[str, dict[str, Any] | None]:
        """ARN -> its definition (None: unreadable), reading only those not kept."""
        missing = [a for a in arns if a not in self._known]
        self.reads += len(missing)
        for arn, found in zip(
            missing, await bounded([_task_definition(ecs, a) for a in missing]), strict=True
        ):
            if found is not None:
                self._known[arn] = found
        answer = {a: self._known.pop(a, None) for a in arns}
        for arn, found in answer.items():  # last used last: the oldest go first
            if found is not None:
                self._known[arn] = found
        while len(self._known) > self._keep:
            del self._known[next(iter(self._known))]
        return answer


@dataclass(frozen=True)
class Providers:
    """The cluster's capacity providers, as far as placement goes."""

    default: tuple[str, ...] = ()  # the default strategy's providers (Fargate ones included)
    groups: Mapping[str, str] = field(default_factory=dict)  # provider -> its group's name

    def of(self, raw: Mapping[str, Any], group: str | None = None) -> str:
        """The provider a container instance belongs to (DescribeContainerInstances entry; its
        Auto Scaling group, if known): ECS's word, else its group's; "" if none."""
        named = raw.get("capacityProviderName") or attribute(dict(raw), PROVIDER_ATTRIBUTE)
        if named:
            return str(named)
        return next((p for p, g in sorted(self.groups.items()) if group and g == group), "")


def strategy(raw: Mapping[str, Any], default: Iterable[str] = ()) -> tuple[str, ...]:
    """The providers a service's tasks may use (DescribeServices entry): its strategy's, else the
    cluster's default when it has no launch type; none for a plain launch type."""
    named = tuple(str(p.get("capacityProvider")) for p in raw.get("capacityProviderStrategy") or [])
    if named:
        return named
    return tuple(default) if not raw.get("launchType") else ()


def on_fargate(raw: Mapping[str, Any], providers: Iterable[str]) -> bool:
    """Whether a service runs on Fargate: by its providers (:func:`strategy`), or by its launch
    type without any."""
    named = set(providers)
    if named:
        return named <= FARGATE_PROVIDERS
    return raw.get("launchType") == "FARGATE"


def ec2_providers(providers: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({p for p in providers if p not in FARGATE_PROVIDERS}))


async def read_providers(ecs: Any, cluster: str, names: Iterable[str] = ()) -> Providers:
    """The cluster's default strategy (DescribeClusters) and the Auto Scaling group of each of
    its providers, the default's and ``names`` (DescribeCapacityProviders, by name: never all)."""
    reply = await ecs.describe_clusters(clusters=[cluster])
    found = reply.get("clusters") or [{}]
    default = tuple(
        str(p.get("capacityProvider"))
        for p in found[0].get("defaultCapacityProviderStrategy") or []
    )
    wanted = sorted({*found[0].get("capacityProviders", []), *default, *names} - FARGATE_PROVIDERS)
    step = DESCRIBE_PROVIDERS_BATCH
    answers = await bounded(
        [
            ecs.describe_capacity_providers(capacityProviders=wanted[i : i + step])
            for i in range(0, len(wanted), step)
        ]
    )
    groups: dict[str, str] = {}
    for answer in answers:
        for provider in answer.get("capacityProviders", []):
            arn = str((provider.get("autoScalingGroupProvider") or {}).get("autoScalingGroupArn"))
            if ":autoScalingGroupName/" in arn:
                groups[str(provider["name"])] = arn.rsplit(":autoScalingGroupName/", 1)[1]
    return Providers(default, groups)


async def read_services(
    ecs: Any,
    cluster: str,
    notes: list[str],
    tags: dict[str, tuple[str, dict[str, str]]] | None = None,
    providers: Providers | None = None,
    health: dict[str, ServiceHealth] | None = None,
    definitions: Definitions | None = None,
    primaries: dict[str, str] | None = None,
) -> tuple[ServiceSpec, ...]:
    """The cluster's services as the ECS model sees them; with ``tags``, also fills it with each
    service's ARN and tags, by name; with ``health``, with what tells its tasks' health
    (:func:`service_health`); with ``primaries``, with each service's task definition ARN.
    ``providers``: the cluster's default strategy (read here if not given); ``definitions``:
    the task definitions read before (default: every one is read)."""
    service_arns = await list_service_arns(ecs, cluster)
    raws = await describe_services(ecs, cluster, service_arns, tags=tags is not None)
    if providers is None:
        providers = await read_providers(ecs, cluster) if raws else Providers()
    if tags is not None:
        for raw in raws:
            pairs = {str(t.get("key")): str(t.get("value", "")) for t in raw.get("tags") or []}
            tags[str(raw["serviceName"])] = (str(raw["serviceArn"]), pairs)
    if primaries is not None:
        primaries.update({str(r["serviceName"]): str(r.get("taskDefinition", "")) for r in raws})
    arns = sorted({str(r["taskDefinition"]) for r in raws if r.get("taskDefinition")})
    read = await (definitions if definitions is not None else Definitions()).read(ecs, arns)
    specs: list[ServiceSpec] = []
    no_cpu: list[str] = []
    no_memory: list[str] = []
    load_balanced: list[str] = []
    for raw in sorted(raws, key=lambda r: str(r.get("serviceName", ""))):
        name = str(raw["serviceName"])
        if raw.get("schedulingStrategy", "REPLICA") == "DAEMON":
            notes.append(f"service {name}: DAEMON services are not simulated; left out")
            continue
        bound = strategy(raw, providers.default)
        launch_type = _launch_type(raw, bound)
        if launch_type not in ("EC2", "FARGATE"):
            notes.append(f"service {name}: launch type {launch_type} is not simulated; left out")
            continue
        if launch_type == "FARGATE" and "FARGATE_SPOT" in bound:
            notes.append(f"service {name}: FARGATE_SPOT modelled as Fargate on-demand")
        definition = read.get(str(raw.get("taskDefinition", "")))
        if definition is None:
            notes.append(f"service {name}: task definition unreadable; left out")
            continue
        cpu, memory = reservation(definition)
        if cpu <= 0:
            cpu = MIN_CPU
            no_cpu.append(name)
        if memory <= 0:
            memory = MIN_MEMORY
            no_memory.append(name)
        if raw.get("loadBalancers"):
            load_balanced.append(name)
        config = raw.get("deploymentConfiguration") or {}
        spec = ServiceSpec(
            name=name,
            desired=int(raw.get("desiredCount", 0)),
            cpu=cpu,
            memory=memory,
            min_healthy_percent=int(config.get("minimumHealthyPercent", DEFAULT_PERCENTS[0])),
            max_percent=int(config.get("maximumPercent", DEFAULT_PERCENTS[1])),
            strategies=_strategies(raw.get("placementStrategy") or []),
            constraints=_constraints(
                name,
                [
                    *(raw.get("placementConstraints") or []),
                    *definition.get("placementConstraints", []),
                ],
                notes,
            ),
            cpu_use=CPU_USE,
            launch_type=launch_type,
            capacity_providers=ec2_providers(bound) if launch_type == "EC2" else (),
            az_rebalancing=raw.get("availabilityZoneRebalancing", "ENABLED") != "DISABLED",
        )
        checks = container_health_check_seconds(definition)
        if checks is not None:
            spec = replace(spec, health_delay=float(checks))
        if health is not None:
            health[name] = service_health(raw, checks is not None)
        specs.append(spec)
    if no_cpu:
        notes.append(
            f"services reserving no CPU modelled with {MIN_CPU} CPU units: {', '.join(no_cpu)}"
        )
    if no_memory:
        notes.append(
            f"services reserving no memory modelled with {MIN_MEMORY} MiB: {', '.join(no_memory)}"
        )
    if load_balanced:
        notes.append(
            "load balancer health checks are not modelled (they need Elastic Load Balancing"
            f" calls): {', '.join(load_balanced)}"
        )
    if specs:
        notes.append(
            "start_delay and health_delay: the simulator's defaults, except health_delay from"
            " container health checks where the task definition has them"
        )
    return tuple(specs)


def service_health(raw: Mapping[str, Any], checked: bool) -> ServiceHealth:
    """What tells a service's tasks' health, from its DescribeServices entry; ``checked``: its
    task definition has container health checks."""
    return ServiceHealth(
        checked=checked,
        grace=float(raw.get("healthCheckGracePeriodSeconds") or 0),
        load_balanced=bool(raw.get("loadBalancers")),
    )


async def _task_definition(ecs: Any, arn: str) -> dict[str, Any] | None:
    try:
        answer = await ecs.describe_task_definition(taskDefinition=arn)
    except Exception as exc:
        if error_code(exc) is None:
            raise
        return None
    definition = answer.get("taskDefinition")
    return dict(definition) if isinstance(definition, dict) else None


def _launch_type(raw: Mapping[str, Any], providers: Iterable[str] = ()) -> str:
    """FARGATE, EC2 or EXTERNAL; a capacity provider strategy decides over ``launchType``."""
    named = set(providers)
    if named:
        return "FARGATE" if named <= FARGATE_PROVIDERS else "EC2"
    return str(raw.get("launchType") or "EC2")


def _strategies(raw: Iterable[dict[str, Any]]) -> tuple[Strategy, ...]:
    strategies = []
    for s in raw:
        kind = str(s.get("type", ""))
        field = str(s.get("field") or "")
        if kind == "binpack":
            field = field.lower()
        strategies.append(Strategy(kind, field))
    return tuple(strategies) or DEFAULT_STRATEGY


# An instance whose attributes are all non-empty, to see which expressions the simulator reads.


def _understood(expression: str) -> bool:
    """Whether the simulator can evaluate a ``memberOf`` expression as ECS would."""
    words = {w.lower() for w in expression.split()}
    subject = _SUBJECT.match(expression)
    if subject is None or words & {"and", "or", "not", "exists"} or "~" in expression:
        return False
    try:
        member_of(_PROBE, expression)
    except ValueError:
        return False
    return _PROBE.attribute(subject.group(1)) != ""


def _constraints(
    service: str, raw: Iterable[dict[str, Any]], notes: list[str]
) -> tuple[Constraint, ...]:
    constraints: list[Constraint] = []
    for c in raw:
        kind = str(c.get("type", ""))
        expression = str(c.get("expression") or "")
        if kind == "memberOf" and not _understood(expression):
            notes.append(
                f"service {service}: memberOf constraint {expression!r} is beyond what the"
                " simulator evaluates; dropped"
            )
            continue
        if kind not in ("memberOf", "distinctInstance"):
            notes.append(f"service {service}: constraint type {kind!r} unknown; dropped")
            continue
        constraint = Constraint(kind, expression)
        if constraint not in constraints:
            constraints.append(constraint)
    return tuple(constraints)


# -- helpers -----------------------------------------------------------------------------------
