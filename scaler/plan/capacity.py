"""How much capacity to add, where from, and when to give the fallback back.

A pure function of a :class:`CapacitySnapshot` (what runs where, which instances are doomed, what
each pool holds), a :class:`CapacityMemory` (recent interruptions per pool) and the operator's
:class:`CapacityPolicy`, returning a :class:`CapacityPlan` of *absolute* targets:

**Deficit.** The CPU and memory of service tasks that will lose their place (on instances that are
DRAINING or under a spot notice) or have none (tasks ECS could not place), plus the headroom the
operator asked for, minus what can take them: free room on healthy ACTIVE instances and the whole
of instances still launching.

**Source.** Each instance of deficit comes from the cheapest spot pool that has not been
interrupted within ``pool_cooldown`` (Karpenter marks an interrupted type and zone unavailable the
same way), in the AZ that lost the capacity when possible; failing that from an on-demand pool, up
to ``max_on_demand`` instances and ``max_hourly_spend``. Targets are the pool's current size plus
what is missing, so a plan made again after its launches are under way asks for nothing more.

**Fargate overflow.** A service allowed to overflow gets a Fargate companion sized to its tasks
that are at risk (on doomed instances, or unplaced), within ``max_overflow_tasks``. That includes
drains without a spot notice (rebalance recommendations, lifecycle actions): EC2 could arrive in
time for those, but ECS drains down to minimumHealthyPercent at once, and Fargate covers the dip
(measured in the simulator: leaving them out costs the storm scenario about 0.0004 of
availability). The companion shrinks as the service's own tasks become healthy again. Tasks
of such services still on an instance whose notice ends within ``evacuate_lead`` seconds are
stopped gracefully (ECS then counts on the companion) rather than killed with the instance.

**Return to spot.** Once no spot pool has been interrupted for ``revert_after`` seconds, on-demand
fallback instances are released a few at a time (``revert_batch``), but only while the capacity
left keeps the headroom, so a release never causes the next top-up.

**On-demand base and percentage** (as an Auto Scaling mixed-instances policy has them): at least
``on_demand_base`` instances are on-demand, and ``on_demand_percent`` of those above the base.
Growth picks on-demand pools while the mix is short of that (a missing base is launched even
without a deficit, cause ``on_demand_base``); the return to spot never releases below it. Spot
instances already running are not replaced to meet the percentage.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

SPOT, ON_DEMAND = "spot", "on-demand"


@dataclass(frozen=True)
class PoolView:
    name: str
    capacity: str  # spot | on-demand
    az: str
    cpu: int  # per instance, ECS CPU units
    memory: int  # per instance, MiB
    price: float  # USD per instance-hour
    size: int  # instances now, launching included, doomed excluded
    managed: bool = True  # the scaler may set this pool's size
    max_size: int | None = None  # the group's MaxSize: it cannot grow past it


@dataclass(frozen=True)
class NodeView:
    id: str
    pool: str
    az: str
    capacity: str
    status: str  # launching | ACTIVE | DRAINING
    cpu: int
    memory: int
    free_cpu: int
    free_memory: int
    notice_ends: float | None = None  # a spot notice is running out at this time
    tasks: int = 0  # service tasks on it

    @property
    def doomed(self) -> bool:
        return self.notice_ends is not None or self.status == "DRAINING"


@dataclass(frozen=True)
class ServiceView:
    name: str
    desired: int
    cpu: int
    memory: int
    tasks_on: Mapping[str, int]  # node id -> this service's tasks there
    unplaced: int = 0
    healthy: int = 0  # its own healthy tasks (not counting overflow)
    overflow: str | None = None  # the Fargate companion, if it may overflow
    overflow_desired: int = 0


@dataclass(frozen=True)
class CapacitySnapshot:
    now: float
    nodes: tuple[NodeView, ...]
    pools: tuple[PoolView, ...]
    services: tuple[ServiceView, ...]


@dataclass(frozen=True)
class CapacityMemory:
    """What the planner must remember between plans: when each pool was last interrupted."""

    interrupted: Mapping[str, float] = field(default_factory=dict)  # spot pool -> last trouble
    failed: Mapping[str, float] = field(default_factory=dict)  # any pool -> last failed launch

    def noting(self, pool: str, at: float) -> CapacityMemory:
        """A spot interruption (or recommendation) in ``pool``."""
        latest = max(at, self.interrupted.get(pool, at))
        return replace(self, interrupted={**self.interrupted, pool: latest})

    def failing(self, pool: str, at: float, spot: bool) -> CapacityMemory:
        """A launch in ``pool`` found no capacity; for spot that is spot trouble too."""
        memory = replace(self, failed={**self.failed, pool: max(at, self.failed.get(pool, at))})
        return memory.noting(pool, at) if spot else memory

    def cooling(self, pool: str, now: float, cooldown: float) -> bool:
        last = max(self.interrupted.get(pool, -math.inf), self.failed.get(pool, -math.inf))
        return now - last < cooldown

    def last_spot_trouble(self) -> float | None:
        return max(self.interrupted.values(), default=None)


@dataclass(frozen=True)
class CapacityPolicy:
    headroom: float = 0.05  # share of ACTIVE capacity kept free, beyond the deficit
    pool_cooldown: float = 900.0
    max_on_demand: int = 50
    max_overflow_tasks: int = 200
    max_hourly_spend: float = 100.0  # on-demand fallback plus overflow, USD per hour
    revert_after: float = 1800.0
    revert_batch: int = 2
    evacuate_lead: float = 20.0
    fargate_task_price: float = 0.05  # rough USD per task-hour, for the spend cap
    on_demand_base: int = 0  # on-demand instances kept whatever spot can do
    on_demand_percent: int = 0  # share (%) of instances above the base that are on-demand


@dataclass(frozen=True)
class CapacityPlan:
    pool_targets: Mapping[str, int] = field(default_factory=dict)
    overflow_targets: Mapping[str, int] = field(default_factory=dict)
    evacuate: tuple[tuple[str, str], ...] = ()  # (service, node) pairs to stop gracefully now
    release: tuple[str, ...] = ()  # on-demand nodes to drain and give back
    reasons: tuple[str, ...] = ()
    causes: Mapping[str, str] = field(default_factory=dict)  # pool -> why its target rose

    def launches(self, pools: Mapping[str, PoolView]) -> dict[str, int]:
        """Instances to launch per pool: target minus current size, where positive."""
        return {p: t - pools[p].size for p, t in self.pool_targets.items() if t > pools[p].size}

    def cause(self, pool: str) -> str:
        """Why ``pool`` grows: ``interruption`` (tasks losing their instance), ``demand``
        (tasks ECS could not place), ``headroom``, ``on_demand_base`` or ``return_to_spot``."""
        return self.causes.get(pool, "headroom")


def plan_capacity(
    snap: CapacitySnapshot, memory: CapacityMemory, policy: CapacityPolicy
) -> CapacityPlan:
    reasons: list[str] = []
    overflow = _overflow(snap, policy, reasons, _fallback_spend(snap))
    # EC2 top-up counts on what the overflow companions will carry
    carried = replace(
        snap,
        services=tuple(
            replace(svc, overflow_desired=overflow.get(svc.overflow, svc.overflow_desired))
            if svc.overflow
            else svc
            for svc in snap.services
        ),
    )
    targets, _ = _top_up(
        carried,
        memory,
        policy,
        reasons,
        overflow_spend=sum(overflow.values()) * policy.fargate_task_price,
    )
    evacuate = _evacuate(snap, policy)
    sizes = {p.name: p.size for p in snap.pools}
    release: tuple[str, ...] = ()
    cause = deficit_cause(snap)
    causes = {name: cause for name, target in targets.items() if target > sizes[name]}
    causes |= _base(snap, memory, policy, targets, reasons)
    if not causes:
        release = _release(snap, memory, policy, reasons)
        if not release:
            targets = _bring_spot_back(snap, memory, policy, targets, reasons)
            causes = {n: "return_to_spot" for n, t in targets.items() if t > sizes[n]}
    return CapacityPlan(targets, overflow, evacuate, release, tuple(reasons), causes)


# -- deficit and top-up -------------------------------------------------------------------------


def deficit(snap: CapacitySnapshot, policy: CapacityPolicy) -> tuple[int, int]:
    """(CPU units, MiB) missing for tasks losing their place or unplaced, with headroom.

    Two bounds, the larger wins: in aggregate (homeless tasks plus headroom on ACTIVE capacity,
    less the free room on healthy instances and what is launching), and for tasks ECS already
    failed to place (free room it could not use, because of constraints or fragmentation, does
    not count for those). A Fargate companion carries its service's tasks on doomed instances
    through the notice; tasks left unplaced afterwards need EC2 capacity like any other, so the
    service comes back from Fargate once the storm is over.
    """
    nodes = {n.id: n for n in snap.nodes}
    homeless_cpu = homeless_mem = unplaced_cpu = unplaced_mem = 0
    for svc in snap.services:
        doomed = sum(c for nid, c in svc.tasks_on.items() if nid in nodes and nodes[nid].doomed)
        carried = min(svc.overflow_desired, doomed) if svc.overflow else 0
        unplaced = svc.unplaced
        homeless = doomed - carried + unplaced
        homeless_cpu += homeless * svc.cpu
        homeless_mem += homeless * svc.memory
        unplaced_cpu += unplaced * svc.cpu
        unplaced_mem += unplaced * svc.memory
    healthy = [n for n in snap.nodes if not n.doomed]
    launching = [n for n in healthy if n.status == "launching"]
    active = [n for n in healthy if n.status == "ACTIVE"]
    coming_cpu = sum(n.cpu for n in launching)
    coming_mem = sum(n.memory for n in launching)
    spare_cpu = sum(n.free_cpu for n in active) + coming_cpu
    spare_mem = sum(n.free_memory for n in active) + coming_mem
    total_cpu = sum(n.cpu for n in active)
    total_mem = sum(n.memory for n in active)
    cpu = max(homeless_cpu + policy.headroom * total_cpu - spare_cpu, unplaced_cpu - coming_cpu)
    mem = max(homeless_mem + policy.headroom * total_mem - spare_mem, unplaced_mem - coming_mem)
    return max(0, math.ceil(cpu)), max(0, math.ceil(mem))


def deficit_cause(snap: CapacitySnapshot) -> str:
    """What a top-up now is for: ``interruption`` when service tasks sit on doomed instances,
    else ``demand`` when tasks could not be placed, else ``headroom``."""
    if any(n.doomed and n.tasks for n in snap.nodes):
        return "interruption"
    if any(s.unplaced for s in snap.services):
        return "demand"
    return "headroom"


def _lost_by_az(snap: CapacitySnapshot) -> list[str]:
    """The AZs to place top-up in: those losing capacity, most first; else every AZ."""
    lost: dict[str, int] = {}
    for n in snap.nodes:
        if n.doomed:
            lost[n.az] = lost.get(n.az, 0) + n.cpu
    if lost:
        return sorted(lost, key=lambda az: (-lost[az], az))
    return sorted({p.az for p in snap.pools})


def sources(
    snap: CapacitySnapshot, memory: CapacityMemory, policy: CapacityPolicy, az: str
) -> list[PoolView]:
    """Pools that may grow, in order: spot (cheapest, this AZ first), then on-demand; any pool
    interrupted or out of capacity within the cooldown is left out."""
    usable = [
        p
        for p in snap.pools
        if p.managed and not memory.cooling(p.name, snap.now, policy.pool_cooldown)
    ]
    spot = sorted(
        (p for p in usable if p.capacity == SPOT), key=lambda p: (p.az != az, p.price, p.name)
    )
    od = sorted(
        (p for p in usable if p.capacity == ON_DEMAND), key=lambda p: (p.az != az, p.price, p.name)
    )
    return spot + od


def _fallback_spend(snap: CapacitySnapshot) -> float:
    return sum(p.size * p.price for p in snap.pools if p.capacity == ON_DEMAND)


def _top_up(
    snap: CapacitySnapshot,
    memory: CapacityMemory,
    policy: CapacityPolicy,
    reasons: list[str],
    overflow_spend: float = 0.0,
) -> tuple[dict[str, int], float]:
    """Pool targets that cover the deficit; and the hourly spend on fallback and overflow."""
    targets = {p.name: p.size for p in snap.pools if p.managed}
    od_nodes = sum(p.size for p in snap.pools if p.capacity == ON_DEMAND)
    all_nodes = sum(p.size for p in snap.pools)
    od_spend = _fallback_spend(snap) + overflow_spend
    cpu, mem = deficit(snap, policy)
    azs = _lost_by_az(snap)
    turn = 0
    while (cpu > 0 or mem > 0) and azs:
        az = azs[turn % len(azs)]
        options = sources(snap, memory, policy, az)
        if od_nodes < required_on_demand(all_nodes + 1, policy):
            options = _on_demand_first(options)
        pool = _pick(options, od_nodes, od_spend, policy, targets)
        if pool is None:
            reasons.append("deficit left: no pool may grow (caps or cooldowns)")
            break
        targets[pool.name] += 1
        all_nodes += 1
        if pool.capacity == ON_DEMAND:
            od_nodes += 1
            od_spend += pool.price
        cpu -= pool.cpu
        mem -= pool.memory
        turn += 1
    for name, target in targets.items():
        before = next(p.size for p in snap.pools if p.name == name)
        if target > before:
            reasons.append(f"top-up {name}: {before} -> {target}")
    return targets, od_spend


def required_on_demand(total: int, policy: CapacityPolicy) -> int:
    """On-demand instances a cluster of ``total`` instances must have: the base, and the
    percentage of those above it (rounded up, as Auto Scaling rounds)."""
    base = min(total, policy.on_demand_base)
    return base + math.ceil(policy.on_demand_percent * (total - base) / 100)


def _on_demand_first(options: list[PoolView]) -> list[PoolView]:
    return [p for p in options if p.capacity == ON_DEMAND] + [
        p for p in options if p.capacity != ON_DEMAND
    ]


def _base(
    snap: CapacitySnapshot,
    memory: CapacityMemory,
    policy: CapacityPolicy,
    targets: dict[str, int],
    reasons: list[str],
) -> dict[str, str]:
    """Launch the on-demand base that is missing (round robin over the AZs); the causes."""
    od_nodes = sum(targets.get(p.name, p.size) for p in snap.pools if p.capacity == ON_DEMAND)
    azs = sorted({p.az for p in snap.pools})
    causes: dict[str, str] = {}
    for turn in range(max(0, policy.on_demand_base - od_nodes)):
        options = sources(snap, memory, policy, azs[turn % len(azs)])
        pool = next((p for p in options if p.capacity == ON_DEMAND and _fits(p, targets)), None)
        if pool is None:
            reasons.append("on-demand base left short: no on-demand pool may grow")
            break
        targets[pool.name] += 1
        causes[pool.name] = "on_demand_base"
        reasons.append(f"on-demand base: {pool.name} +1")
    return causes


def _fits(pool: PoolView, targets: Mapping[str, int]) -> bool:
    return pool.max_size is None or targets[pool.name] < pool.max_size


def _pick(
    sources: list[PoolView],
    od_nodes: int,
    od_spend: float,
    policy: CapacityPolicy,
    targets: Mapping[str, int],
) -> PoolView | None:
    for pool in sources:
        if pool.max_size is not None and targets[pool.name] >= pool.max_size:
            continue  # full: another pool, or the fallback
        if pool.capacity == SPOT:
            return pool
        if od_nodes < policy.max_on_demand and od_spend + pool.price <= policy.max_hourly_spend:
            return pool
    return None


# -- Fargate overflow -----------------------------------------------------------------------------


def _overflow(
    snap: CapacitySnapshot, policy: CapacityPolicy, reasons: list[str], spend: float
) -> dict[str, int]:
    nodes = {n.id: n for n in snap.nodes}
    targets: dict[str, int] = {}
    budget = policy.max_overflow_tasks
    for svc in sorted(snap.services, key=lambda s: s.name):
        if svc.overflow is None:
            continue
        at_risk = svc.unplaced + sum(
            c for nid, c in svc.tasks_on.items() if nid in nodes and nodes[nid].doomed
        )
        short = max(0, svc.desired - svc.healthy)
        # while tasks are at risk the companion only grows; once calm it shrinks as the
        # service's own tasks come back (hysteresis: no flapping inside a storm)
        if at_risk:
            want = max(svc.overflow_desired, at_risk, short)
        else:
            want = min(svc.overflow_desired, short)
        affordable = int(max(0.0, policy.max_hourly_spend - spend) // policy.fargate_task_price)
        target = max(0, min(want, budget, affordable))
        budget -= target
        spend += target * policy.fargate_task_price
        targets[svc.overflow] = target
        if target != svc.overflow_desired:
            reasons.append(f"overflow {svc.overflow}: {svc.overflow_desired} -> {target}")
    return targets


def _evacuate(snap: CapacitySnapshot, policy: CapacityPolicy) -> tuple[tuple[str, str], ...]:
    ending = {
        n.id
        for n in snap.nodes
        if n.notice_ends is not None and n.notice_ends - snap.now <= policy.evacuate_lead
    }
    return tuple(
        (svc.name, nid)
        for svc in sorted(snap.services, key=lambda s: s.name)
        if svc.overflow is not None
        for nid in sorted(svc.tasks_on)
        if nid in ending and svc.tasks_on[nid] > 0
    )


# -- return to spot -------------------------------------------------------------------------------


def quiet(snap: CapacitySnapshot, memory: CapacityMemory, policy: CapacityPolicy) -> bool:
    """Spot has been healthy for ``revert_after`` seconds and nothing is waiting for a place."""
    trouble = memory.last_spot_trouble()
    if trouble is not None and snap.now - trouble < policy.revert_after:
        return False
    return not any(n.doomed for n in snap.nodes) and not any(s.unplaced for s in snap.services)


def _fallback(snap: CapacitySnapshot) -> list[NodeView]:
    """ACTIVE on-demand instances in scaler-managed pools, emptiest first."""
    managed = {p.name for p in snap.pools if p.managed}
    return sorted(
        (
            n
            for n in snap.nodes
            if n.capacity == ON_DEMAND and n.status == "ACTIVE" and n.pool in managed
        ),
        key=lambda n: (n.tasks, n.id),
    )


def _release(
    snap: CapacitySnapshot, memory: CapacityMemory, policy: CapacityPolicy, reasons: list[str]
) -> tuple[str, ...]:
    """On-demand fallback to drain and give back, while the rest keeps twice the headroom (CPU
    and memory alike), so a release never causes the next top-up."""
    if not quiet(snap, memory, policy):
        return ()
    active = [n for n in snap.nodes if n.status == "ACTIVE"]
    spare = [sum(n.free_cpu for n in active), sum(n.free_memory for n in active)]
    total = [sum(n.cpu for n in active), sum(n.memory for n in active)]
    released: list[str] = []
    od_nodes = sum(p.size for p in snap.pools if p.capacity == ON_DEMAND)
    all_nodes = sum(p.size for p in snap.pools)
    for node in _fallback(snap)[: policy.revert_batch]:
        if od_nodes - 1 < max(policy.on_demand_base, required_on_demand(all_nodes - 1, policy)):
            break  # the on-demand base and percentage stay
        od_nodes, all_nodes = od_nodes - 1, all_nodes - 1
        size = (node.cpu, node.memory)
        if any(spare[i] - size[i] < 2 * policy.headroom * (total[i] - size[i]) for i in (0, 1)):
            break  # its tasks would not fit with room to spare: bring spot back first
        released.append(node.id)
        spare = [spare[i] - size[i] for i in (0, 1)]
        total = [total[i] - size[i] for i in (0, 1)]
    if released:
        reasons.append(f"return to spot: release {len(released)} on-demand instance(s)")
    return tuple(released)


def _bring_spot_back(
    snap: CapacitySnapshot,
    memory: CapacityMemory,
    policy: CapacityPolicy,
    targets: Mapping[str, int],
    reasons: list[str],
) -> dict[str, int]:
    """Launch spot in place of on-demand fallback that cannot be released for lack of room.

    Nothing is launched while anything is still launching: the next plan sees the new capacity
    and releases the on-demand instance instead, so the swap is one for one, never a loop.
    """
    result = dict(targets)
    if not quiet(snap, memory, policy) or any(n.status == "launching" for n in snap.nodes):
        return result
    keep = max(policy.on_demand_base, required_on_demand(sum(p.size for p in snap.pools), policy))
    od_nodes = sum(p.size for p in snap.pools if p.capacity == ON_DEMAND)
    for node in _fallback(snap)[: min(policy.revert_batch, max(0, od_nodes - keep))]:
        spot = [p for p in sources(snap, memory, policy, node.az) if p.capacity == SPOT]
        if not spot:
            break
        result[spot[0].name] += 1
        reasons.append(f"return to spot: {spot[0].name} +1 to replace {node.id}")
    return result
