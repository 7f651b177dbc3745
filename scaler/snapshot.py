"""``scaler snapshot``: a scenario file taken from a live cluster, with read-only calls only.

:func:`snapshot` reads an ECS cluster and returns a scenario as plain data, in the shape
:func:`scaler.sim.scenario.to_dict` produces, plus a top-level ``notes`` list (a key scenario
files accept and the simulator does not read) saying what was estimated and what was left out.
:func:`render` writes it as JSON or TOML, so ``scaler simulate --scenario FILE`` can replay the
cluster under every policy. Every call is a ``List*``, ``Describe*`` or ``Get*``: nothing is
changed.

What is read:

- Capacity: ``ListContainerInstances`` (pages of 100) and ``DescribeContainerInstances`` (100 a
  call). ACTIVE and DRAINING container instances count (a DRAINING one is still paid for and
  modelled as active); others are left out. Instance type and AZ come from the
  ``ecs.instance-type`` and ``ecs.availability-zone`` attributes, or EC2's if those are missing.
- ``DescribeInstances`` for those instances (filtered by ``instance-id``, 100 ids a call, so an
  instance gone from EC2 is missing rather than failing the call): ``InstanceLifecycle`` ``spot``
  means spot, anything else on-demand. The lifecycle is read client-side because moto cannot
  filter on ``instance-lifecycle``. Instances that are not pending or running are left out.
- ``DescribeInstanceTypes`` for the types seen: vCPUs and memory. ECS registers less memory
  than the type has (the OS and agent keep some); the simulator offers the type's full memory,
  and a note says so.
- ``DescribeSpotPriceHistory`` (``Linux/UNIX``, the price in effect now) for the spot types and
  AZs in use.
- Services: ``ListServices`` (pages of 100), ``DescribeServices`` (10 a call) and
  ``DescribeTaskDefinition`` (once per task definition): desired count, the task's CPU and
  memory reservation, deployment percentages, placement strategies and constraints, launch type
  and AZ rebalancing.

What is estimated, and why:

- On-demand prices: no read-only API gives them in a usable form (the Pricing API is another
  service and another region), so a small table of us-east-1 Linux prices is used, and
  ``0.048`` USD per vCPU-hour for other types (noted).
- Spot prices below 5% of on-demand, or missing, are not believable (moto answers ``0.00001``
  for everything): 35% of on-demand is used instead (noted).
- Interruption rates are not published per pool: every spot pool gets the everyday rate of the
  built-in scenarios, 15% a month (noted).
- Actual CPU use needs CloudWatch metrics, which these calls do not read: every service gets
  ``cpu_use`` 0.5 (noted).
- Start and health delays are not observable: the simulator's defaults are used, except that a
  task whose essential containers have health checks becomes healthy after the worst case of
  those checks (:func:`scaler.guard.container_health_check_seconds`). Load balancer health
  checks (which need Elastic Load Balancing calls) are not modelled (noted).

What is left out (each noted): DAEMON services (the simulator has no daemon scheduling),
EXTERNAL services, services whose task definition cannot be read, and ``memberOf``
constraints the simulator cannot evaluate (compound expressions, or attributes other than the
AZ, instance type and instance id), which are dropped rather than making the service
unplaceable. A service whose task reserves no CPU is modelled with 128 units (noted).

Capacity providers (``DescribeClusters`` and ``DescribeCapacityProviders``:
:func:`scaler.aws.services.read_providers`): a container instance belongs to a provider by ECS's
word (``capacityProviderName``, the ``ecs.capacity-provider-name`` attribute) or by its Auto
Scaling group (EC2's ``aws:autoscaling:groupName`` tag); its pool is then that provider's
(``capacity_provider``), and a service with a capacity provider strategy (or the cluster's
default) keeps its EC2 providers as ``capacity_providers``: the simulator places it on their
pools' instances only. A provider with no instance has no pool: a service bound only to such
providers is modelled without the restriction (noted).

On-demand fallback: besides one pool per (capacity, instance type, AZ, capacity provider) seen,
each AZ gets an empty on-demand pool of the cluster's most common instance type, so policies can
top up there.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from scaler.aws.clients import AwsClients, error_code
from scaler.aws.concurrency import bounded
from scaler.aws.ecs import list_container_instance_arns
from scaler.aws.services import CPU_USE, Providers, read_providers, read_services
from scaler.ecs.cluster import (
    InstanceType,
    ServiceSpec,
)
from scaler.prices import ON_DEMAND_PRICES, PRICE_PER_VCPU_HOUR
from scaler.sim.scenario import Pool, Scenario, to_dict

T = TypeVar("T")

DESCRIBE_INSTANCES_BATCH = 100  # ids per DescribeInstances call (as values of one filter)
DESCRIBE_CONTAINER_INSTANCES_BATCH = 100  # the DescribeContainerInstances limit
DESCRIBE_INSTANCE_TYPES_BATCH = 100  # the DescribeInstanceTypes limit

SPOT_FLOOR_SHARE = 0.05  # a spot price below this share of on-demand is not believed
SPOT_ESTIMATE_SHARE = 0.35  # ... and this share of on-demand is used instead
SPOT_INTERRUPTIONS_PER_HOUR = 0.15 / 720  # per instance: 15% a month
COUNTED_STATUSES = ("ACTIVE", "DRAINING")
LIVE_EC2_STATES = ("pending", "running")
SPOT, ON_DEMAND = "spot", "on-demand"
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
GROUP_TAG = "aws:autoscaling:groupName"  # EC2's tag naming an instance's Auto Scaling group


@dataclass(frozen=True)
class _Node:
    """One container instance that counts, with what EC2 says about it."""

    ec2_id: str
    instance_type: str
    az: str
    capacity: str  # SPOT | ON_DEMAND
    registered_cpu: int
    registered_memory: int
    provider: str = ""  # the ECS capacity provider it belongs to ("": none)


async def snapshot(aws: AwsClients, cluster: str, *, hours: float = 2.0) -> dict[str, Any]:
    """The cluster as a scenario (``to_dict``'s shape plus ``notes``), read with ``aws``.

    ``cluster`` is a name or ARN; ``hours`` the length of the simulated run. AWS errors (a
    cluster that does not exist, missing permissions) propagate as botocore ``ClientError``.
    """
    if not hours > 0:
        raise ValueError(f"hours must be positive (got {hours!r})")
    capacity_notes: list[str] = []
    service_notes: list[str] = []
    providers = await read_providers(aws.ecs, cluster)
    (nodes, types, spot_prices), services = await asyncio.gather(
        _read_capacity(aws, cluster, capacity_notes, providers),
        read_services(aws.ecs, cluster, service_notes, providers=providers),
    )
    pools = _pools(nodes, types, spot_prices, capacity_notes)
    services = _bound(services, {p.capacity_provider for p in pools}, service_notes)
    scenario = Scenario(
        name=cluster.rsplit("/", 1)[-1],
        hours=float(hours),
        instance_types=types,
        pools=pools,
        services=services,
    )
    notes = capacity_notes + service_notes
    if any(p.capacity == SPOT for p in pools):
        notes.append(
            f"spot interruptions_per_hour: {SPOT_INTERRUPTIONS_PER_HOUR:.6f} per instance (15% a"
            " month) for every spot pool; AWS publishes no per-pool rate"
        )
    if services:
        notes.append(
            f"cpu_use: {CPU_USE} for every service; actual CPU use needs CloudWatch, which a"
            " snapshot does not read"
        )
    if not nodes:
        notes.append("no ACTIVE or DRAINING container instances: the scenario has no pools")
    data = to_dict(scenario)
    data["notes"] = list(dict.fromkeys(notes))
    return data


def render(data: dict[str, Any], fmt: str) -> str:
    """``data`` as a scenario file: ``json`` (indented by 2) or ``toml``."""
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    if fmt == "toml":
        return _toml(data)
    raise ValueError(f"unknown format {fmt!r} (choose json or toml)")


# -- capacity ----------------------------------------------------------------------------------


async def _read_capacity(
    aws: AwsClients, cluster: str, notes: list[str], providers: Providers
) -> tuple[list[_Node], dict[str, InstanceType], dict[tuple[str, str], float]]:
    nodes = await _read_nodes(aws, cluster, notes, providers)
    types = await _instance_types(aws.ec2, nodes, notes)
    wanted = {(n.instance_type, n.az) for n in nodes if n.capacity == SPOT}
    spot_prices = await _spot_prices(aws.ec2, wanted)
    return nodes, types, spot_prices


async def _read_nodes(
    aws: AwsClients, cluster: str, notes: list[str], providers: Providers
) -> list[_Node]:
    arns = await list_container_instance_arns(aws.ecs, cluster)
    step = DESCRIBE_CONTAINER_INSTANCES_BATCH
    answers = await bounded(
        [
            aws.ecs.describe_container_instances(
                cluster=cluster, containerInstances=arns[i : i + step]
            )
            for i in range(0, len(arns), step)
        ]
    )
    described = [raw for a in answers for raw in a.get("containerInstances", [])]
    skipped = Counter(
        str(raw.get("status", "UNKNOWN"))
        for raw in described
        if raw.get("status") not in COUNTED_STATUSES
    )
    for status, count in sorted(skipped.items()):
        notes.append(f"{count} container instance(s) with status {status} left out")
    counted = [
        raw
        for raw in described
        if raw.get("status") in COUNTED_STATUSES and raw.get("ec2InstanceId")
    ]
    draining = sum(1 for raw in counted if raw.get("status") == "DRAINING")
    if draining:
        notes.append(f"{draining} DRAINING container instance(s) modelled as ACTIVE")
    ec2 = await _ec2_instances(aws.ec2, [str(raw["ec2InstanceId"]) for raw in counted])
    nodes: list[_Node] = []
    for raw in counted:
        iid = str(raw["ec2InstanceId"])
        instance = ec2.get(iid)
        if instance is None:
            notes.append(f"{iid}: registered with ECS but unknown to EC2; left out")
            continue
        state = instance.get("State", {}).get("Name", "running")
        if state not in LIVE_EC2_STATES:
            notes.append(f"{iid}: EC2 instance is {state}; left out")
            continue
        attributes = {a.get("name"): a.get("value") for a in raw.get("attributes", [])}
        resources = {
            r.get("name"): int(r.get("integerValue") or 0)
            for r in raw.get("registeredResources", [])
        }
        nodes.append(
            _Node(
                ec2_id=iid,
                instance_type=str(
                    attributes.get("ecs.instance-type") or instance.get("InstanceType", "")
                ),
                az=str(
                    attributes.get("ecs.availability-zone")
                    or instance.get("Placement", {}).get("AvailabilityZone", "")
                ),
                capacity=SPOT if instance.get("InstanceLifecycle") == "spot" else ON_DEMAND,
                registered_cpu=resources.get("CPU", 0),
                registered_memory=resources.get("MEMORY", 0),
                provider=providers.of(raw, _tag(instance, GROUP_TAG)),
            )
        )
    return nodes


async def _ec2_instances(ec2: Any, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """EC2 instance id -> its DescribeInstances entry, for those of ``ids`` EC2 still knows."""

    async def chunk(values: list[str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        paginator = ec2.get_paginator("describe_instances")
        filters = [{"Name": "instance-id", "Values": values}]
        async for page in paginator.paginate(Filters=filters):
            for booking in page.get("Reservations", []):
                found.extend(booking.get("Instances", []))
        return found

    step = DESCRIBE_INSTANCES_BATCH
    unique = sorted(set(ids))
    answers = await bounded([chunk(unique[i : i + step]) for i in range(0, len(unique), step)])
    return {str(i["InstanceId"]): i for found in answers for i in found}


async def _instance_types(
    ec2: Any, nodes: Sequence[_Node], notes: list[str]
) -> dict[str, InstanceType]:
    names = sorted({n.instance_type for n in nodes})
    described = await _describe_instance_types(ec2, names)
    types: dict[str, InstanceType] = {}
    for name in names:
        mine = [n for n in nodes if n.instance_type == name]
        registered_cpu = _most_common(n.registered_cpu for n in mine)
        registered_memory = _most_common(n.registered_memory for n in mine)
        raw = described.get(name)
        if raw is not None:
            vcpu = int(raw.get("VCpuInfo", {}).get("DefaultVCpus", 0))
            memory = int(raw.get("MemoryInfo", {}).get("SizeInMiB", 0))
        else:
            vcpu, memory = max(1, registered_cpu // 1024), registered_memory
            notes.append(
                f"{name}: not found by DescribeInstanceTypes; vCPUs and memory taken from what"
                f" its container instances register ({registered_cpu} CPU units,"
                f" {registered_memory} MiB)"
            )
        if raw is not None and registered_cpu and registered_cpu != vcpu * 1024:
            notes.append(
                f"{name}: container instances register {registered_cpu} CPU units, but the type"
                f" has {vcpu} vCPUs ({vcpu * 1024} units); the scenario uses the type's"
            )
        if raw is not None and 0 < registered_memory < memory:
            notes.append(
                f"{name}: ECS registers {registered_memory} of its {memory} MiB (the rest is kept"
                f" for the OS and agent); the simulator offers all {memory} MiB, so it may fit"
                " more tasks per instance than the cluster does"
            )
        price = ON_DEMAND_PRICES.get(name)
        if price is None:
            price = round(vcpu * PRICE_PER_VCPU_HOUR, 5)
            notes.append(
                f"{name}: on-demand price estimated at {PRICE_PER_VCPU_HOUR} USD per vCPU-hour"
                f" = {price} USD/h (not in the built-in us-east-1 table)"
            )
        types[name] = InstanceType(name, vcpu, memory, price)
    return types


async def _describe_instance_types(ec2: Any, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Name -> DescribeInstanceTypes entry; a type EC2 does not know is absent."""

    async def describe(chunk: Sequence[str]) -> list[dict[str, Any]]:
        try:
            answer = await ec2.describe_instance_types(InstanceTypes=list(chunk))
        except Exception as exc:
            if error_code(exc) != "InvalidInstanceType":
                raise
            if len(chunk) == 1:
                return []
            # one unknown type fails the whole call: ask for each on its own
            singles = await bounded([describe([name]) for name in chunk])
            return [entry for found in singles for entry in found]
        return list(answer.get("InstanceTypes", []))

    step = DESCRIBE_INSTANCE_TYPES_BATCH
    answers = await bounded([describe(names[i : i + step]) for i in range(0, len(names), step)])
    return {str(e["InstanceType"]): e for found in answers for e in found}


async def _spot_prices(ec2: Any, wanted: set[tuple[str, str]]) -> dict[tuple[str, str], float]:
    """(instance type, AZ) -> the current Linux spot price, for those of ``wanted`` EC2 reports."""
    if not wanted:
        return {}
    now = datetime.now(UTC)
    latest: dict[tuple[str, str], tuple[datetime, float]] = {}
    paginator = ec2.get_paginator("describe_spot_price_history")
    async for page in paginator.paginate(
        InstanceTypes=sorted({t for t, _ in wanted}),
        ProductDescriptions=["Linux/UNIX"],
        StartTime=now,
        EndTime=now,
        Filters=[{"Name": "availability-zone", "Values": sorted({az for _, az in wanted})}],
    ):
        for entry in page.get("SpotPriceHistory", []):
            key = (str(entry.get("InstanceType")), str(entry.get("AvailabilityZone")))
            if key not in wanted:
                continue
            when = entry.get("Timestamp")
            stamp = when if isinstance(when, datetime) else datetime.min.replace(tzinfo=UTC)
            try:
                price = float(entry["SpotPrice"])
            except (KeyError, TypeError, ValueError):
                continue
            if key not in latest or stamp >= latest[key][0]:
                latest[key] = (stamp, price)
    return {key: price for key, (_, price) in latest.items()}


def _tag(instance: dict[str, Any], key: str) -> str | None:
    return next(
        (str(t.get("Value")) for t in instance.get("Tags", []) if t.get("Key") == key), None
    )


def _pools(
    nodes: Sequence[_Node],
    types: dict[str, InstanceType],
    spot_prices: dict[tuple[str, str], float],
    notes: list[str],
) -> tuple[Pool, ...]:
    counts = Counter((n.capacity, n.instance_type, n.az, n.provider) for n in nodes)
    if nodes:
        common = Counter(n.instance_type for n in nodes).most_common()
        top = max(c for _, c in common)
        fallback_type = min(name for name, c in common if c == top)
        for az in {n.az for n in nodes}:
            counts.setdefault((ON_DEMAND, fallback_type, az, ""), 0)
    pools: list[Pool] = []
    for key in sorted(counts, key=lambda k: (k[0] != SPOT, k[1], k[2], k[3])):
        capacity, name, az, provider = key
        suffix = f"-{provider}" if provider else ""
        if capacity == ON_DEMAND:
            pool = Pool(f"od-{name}-{az}{suffix}", ON_DEMAND, name, az, None, 0.0, counts[key])
        else:
            price = _spot_price(types[name], az, spot_prices.get((name, az)), notes)
            pool = Pool(
                f"spot-{name}-{az}{suffix}",
                SPOT,
                name,
                az,
                price,
                SPOT_INTERRUPTIONS_PER_HOUR,
                counts[key],
            )
        pools.append(replace(pool, capacity_provider=provider or None))
    return tuple(pools)


def _bound(
    services: Sequence[ServiceSpec], providers: set[str | None], notes: list[str]
) -> tuple[ServiceSpec, ...]:
    """The services, each bound to those of its capacity providers that have a pool; one bound
    only to providers without instances is modelled unbound (noted)."""
    kept: list[ServiceSpec] = []
    for spec in services:
        have = tuple(p for p in spec.capacity_providers if p in providers)
        if spec.capacity_providers and not have:
            notes.append(
                f"service {spec.name}: its capacity providers"
                f" ({', '.join(spec.capacity_providers)}) have no instances; modelled as placed"
                " on any instance"
            )
        kept.append(replace(spec, capacity_providers=have))
    return tuple(kept)


def _spot_price(kind: InstanceType, az: str, reported: float | None, notes: list[str]) -> float:
    on_demand = kind.on_demand_price
    if reported is not None and reported >= SPOT_FLOOR_SHARE * on_demand:
        return reported
    estimate = round(SPOT_ESTIMATE_SHARE * on_demand, 5)
    why = (
        "no spot price reported"
        if reported is None
        else f"reported spot price {reported:g} is below {SPOT_FLOOR_SHARE:.0%} of on-demand"
    )
    notes.append(
        f"spot {kind.name} in {az}: {why}; used {SPOT_ESTIMATE_SHARE:.0%} of on-demand"
        f" ({on_demand} USD/h) = {estimate} USD/h"
    )
    return estimate


# -- services ----------------------------------------------------------------------------------


def _most_common(values: Iterable[int]) -> int:
    counted = Counter(values).most_common(1)
    return counted[0][0] if counted else 0


def _toml(data: dict[str, Any]) -> str:
    """Scenario data as TOML: scalars and lists of scalars first, then arrays of tables."""
    lines: list[str] = []
    tables: list[tuple[str, list[dict[str, Any]]]] = []
    for key, value in data.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            tables.append((key, value))
        elif isinstance(value, list) and len(value) > 1:  # one item a line (the notes)
            items = [f"  {_toml_value(v)}," for v in value]
            lines.extend([f"{_toml_key(key)} = [", *items, "]"])
        elif value is not None:  # TOML has no null: a missing key reads as the default
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, rows in tables:
        for row in rows:
            lines.extend(["", f"[[{_toml_key(key)}]]"])
            lines.extend(
                f"{_toml_key(k)} = {_toml_value(v)}" for k, v in row.items() if v is not None
            )
    return "\n".join(lines) + "\n"


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(value, dict):
        items = ", ".join(
            f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None
        )
        return "{" + items + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
