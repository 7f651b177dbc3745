"""How much capacity to add, where from, and when to give the fallback back.

A pure function of a :class:`CapacitySnapshot` (what runs where, which instances are doomed, what
each pool holds), a :class:`CapacityMemory` (recent interruptions per pool) and the operator's
:class:`CapacityPolicy`, returning a :class:`CapacityPlan` of *absolute* targets:

**Deficit.** The CPU and memory of service tasks that will lose their place (on instances that are
DRAINING or under a spot notice) or have none (tasks ECS could not place), plus the headroom the
operator asked for, minus what can take them: free room on healthy ACTIVE instances and the whole
of instances still launching.

**Headroom.** Per resource, the larger of ``headroom`` (a share of ACTIVE capacity) and an absolute
amount (``headroom_cpu`` CPU units, ``headroom_memory`` MiB). With ``headroom_per_az`` every AZ
with healthy instances must also keep its own headroom (of its own capacity, or the absolute
amount) in its own free room and launching instances; an AZ short of it is grown in pools of that
AZ, or, if it has none, in multi-AZ pools (``az == "*"``: the Auto Scaling group picks the AZ),
pools still chosen as below and its launches counted toward the cluster's deficit, which is still
kept as well. In that mode instances launching, or being launched by the plan, count as capacity
for the share (they will be ACTIVE soon), so a plan made again once its launches have arrived asks
for nothing more; without it, the share is of ACTIVE capacity only, as it always was.

**Shape.** Tasks are placed whole, so the waiting ones (losing their place, or unplaced) are
packed, not summed, first-fit decreasing: those ECS could not place into instances still launching
and new ones (it failed to use the free room there is), then those losing their place into what
room is left there and the free room of healthy ACTIVE instances, all in one order of room, largest
first, whatever an instance's status (an empty ACTIVE instance holds what it held launching, so a
plan made again once its launches are ACTIVE asks for nothing more). Tasks of a desired count
raised moments ago (``settling``: ECS has not tried to place them yet) are packed as those losing
their place are, free room first: a scale-out that the free room holds launches nothing. New
instances are added one at a time, of the pool with the lowest price per task among those whose
type holds the largest task still waiting (Karpenter simulates pending pods onto instance types
the same way); an instance holds its type's registered size less its DAEMON tasks. A type no
waiting task fits is never launched for them; tasks no pool may hold are named in the reasons.
The aggregate deficit then adds what the headroom still needs, from types that hold a waiting
task.

**Source.** Each instance comes from a spot pool that has not been interrupted or out of
capacity within ``pool_cooldown`` (Karpenter marks an interrupted type and zone unavailable the
same way), nor of an instance type or AZ in a storm (``storm_pools`` of its pools in trouble
within ``storm_window`` seconds: :func:`scaler.plan.cooldown.correlated`), in the AZ that lost
the capacity when possible; failing that from an on-demand pool, up to ``max_on_demand``
instances and ``max_hourly_spend``. Each spot pool grown is named with the other spot pools that
could have met the same need (``alternatives``): they are asked together (one EC2 Fleet request,
price-capacity-optimized across them), and if all of them refuse, all are cooled down, so the
next plan, made at once, turns to on-demand instead of trying the next spot pool. Targets are the
pool's current size plus what is missing, so a plan made again after its launches are under way
asks for nothing more.

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
left keeps twice the headroom (and, with ``headroom_per_az``, the instance's AZ twice its own with
the instance's tasks put back in it), so a release never causes the next top-up. Nothing is
released while an AZ is short of headroom that no pool may serve now: freeing an on-demand slot
would let the next plan launch.

**On-demand base and percentage** (as an Auto Scaling mixed-instances policy has them): at least
``on_demand_base`` instances are on-demand, and ``on_demand_percent`` of those above the base.
Growth picks on-demand pools while the mix is short of that (a missing base is launched even
without a deficit, cause ``on_demand_base``); the return to spot never releases below it. Spot
instances already running are not replaced to meet the percentage.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from scaler.ecs.placement import (
    Bin,
    Bound,
    Shape,
    allows,
    bound_first,
    fill,
    holds,
    pack_bound,
    room_for,
)
from scaler.plan.cooldown import correlated

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
    instance_type: str = ""  # what it launches ("": not known), for storms of a type
    provider: str = ""  # the ECS capacity provider this group is ("": none)


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
    provider: str = ""  # the ECS capacity provider it belongs to ("": none)

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
    # the (EC2) capacity providers of its strategy: only their instances and pools hold its
    # tasks (none: any)
    providers: tuple[str, ...] = ()
    # of the unplaced, how many ECS may not have tried to place yet (its desired count rose moments
    # ago): they take free room first, as tasks losing their place do
    settling: int = 0


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
    headroom_cpu: int = 0  # CPU units kept free at least (the share, where larger, wins)
    headroom_memory: int = 0  # MiB kept free at least
    headroom_per_az: bool = False  # every AZ with healthy instances keeps its own headroom too
    storm_pools: int = 2  # pools of one type, or of one AZ, in trouble together: a storm
    storm_window: float = 300.0  # seconds within which troubles count as together


@dataclass(frozen=True)
class CapacityPlan:
    pool_targets: Mapping[str, int] = field(default_factory=dict)
    overflow_targets: Mapping[str, int] = field(default_factory=dict)
    evacuate: tuple[tuple[str, str], ...] = ()  # (service, node) pairs to stop gracefully now
    release: tuple[str, ...] = ()  # on-demand nodes to drain and give back
    reasons: tuple[str, ...] = ()
    causes: Mapping[str, str] = field(default_factory=dict)  # pool -> why its target rose
    # spot pool -> other spot pools that may launch its instances instead, best first (asked
    # together: one EC2 Fleet request across them, price-capacity-optimized)
    alternatives: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

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
    growth = _Growth.start(carried, sum(overflow.values()) * policy.fargate_task_price)
    _top_up(carried, memory, policy, growth, reasons, deficit_cause(snap))
    base = _base(snap, memory, policy, growth, reasons)
    if base and policy.headroom_per_az:
        # the base's instances may open an AZ, which must then keep its headroom too
        _top_up_azs(carried, memory, policy, growth, _az_rooms(carried), reasons)
    targets = growth.targets
    evacuate = _evacuate(snap, policy)
    sizes = {p.name: p.size for p in snap.pools}
    release: tuple[str, ...] = ()
    causes = {name: growth.causes[name] for name in targets if name in growth.causes} | base
    if not causes and not growth.blocked:
        release = _release(snap, memory, policy, reasons)
        if not release:
            targets = _bring_spot_back(snap, memory, policy, targets, reasons)
            causes = {n: "return_to_spot" for n, t in targets.items() if t > sizes[n]}
    alternatives = {
        name: tuple(others)
        for name, others in growth.alternatives.items()
        if others and targets[name] > sizes[name]
    }
    return CapacityPlan(targets, overflow, evacuate, release, tuple(reasons), causes, alternatives)


# -- headroom -------------------------------------------------------------------------------------

Pair = tuple[int, int]  # (CPU units, MiB)
NOTHING: Pair = (0, 0)


def headroom(policy: CapacityPolicy, cpu: float, memory: float) -> tuple[float, float]:
    """Room to keep free on ``cpu`` units and ``memory`` MiB of capacity: the share of it, or
    the absolute amount where that is larger."""
    return (
        max(policy.headroom * cpu, policy.headroom_cpu),
        max(policy.headroom * memory, policy.headroom_memory),
    )


@dataclass(frozen=True)
class _Room:
    """Capacity held against the headroom in one scope: the cluster, or one AZ."""

    base: Pair  # the capacity the headroom's share is of
    spare: Pair  # free room on healthy instances, launching ones whole
    homeless: Pair = NOTHING  # tasks that need a place (in the cluster's room only)
    floor: Pair = NOTHING  # unplaced tasks less what launches: free room does not count
    grows: bool = False  # what the plan launches adds to the base (headroom is kept on it)
    whole: bool = True  # headroom is kept with no capacity at all (the cluster), else not

    def keep(self, policy: CapacityPolicy, added: Pair = NOTHING) -> tuple[float, float]:
        base = _plus(self.base, added) if self.grows else self.base
        if not self.whole and base == NOTHING:
            return 0.0, 0.0
        return headroom(policy, *base)

    def short(self, policy: CapacityPolicy, added: Pair = NOTHING) -> Pair:
        """What is missing, once ``added`` capacity has been launched into it."""
        keep = self.keep(policy, added)
        cpu, mem = (
            max(self.homeless[i] + keep[i] - self.spare[i] - added[i], self.floor[i] - added[i])
            for i in (0, 1)
        )
        return max(0, math.ceil(cpu)), max(0, math.ceil(mem))

    def plus(self, size: Pair, free: Pair) -> _Room:
        return replace(self, base=_plus(self.base, size), spare=_plus(self.spare, free))

    def without(self, node: NodeView) -> _Room:
        """With ``node`` gone and its tasks placed again in the room that is left."""
        return self.plus((-node.cpu, -node.memory), (-node.cpu, -node.memory))

    def keeps_twice(self, policy: CapacityPolicy) -> bool:
        keep = self.keep(policy)
        return all(self.spare[i] >= 2 * keep[i] for i in (0, 1))


AZ_ROOM = _Room(NOTHING, NOTHING, grows=True, whole=False)


def _plus(a: Pair, b: Pair) -> Pair:
    return a[0] + b[0], a[1] + b[1]


def _az_rooms(snap: CapacitySnapshot) -> dict[str, _Room]:
    """The room of each AZ with healthy instances: ACTIVE ones by their free room, launching
    ones whole (they are soon ACTIVE and empty, so they count for the share as well)."""
    rooms: dict[str, _Room] = {}
    for n in snap.nodes:
        if n.doomed or n.status not in ("ACTIVE", "launching"):
            continue
        free = (n.cpu, n.memory) if n.status == "launching" else (n.free_cpu, n.free_memory)
        rooms[n.az] = rooms.get(n.az, AZ_ROOM).plus((n.cpu, n.memory), free)
    return rooms


def _serving(snap: CapacitySnapshot, az: str) -> str | None:
    """Which pools launch into ``az``: those of that AZ, else multi-AZ ones (``"*"``: the Auto
    Scaling group picks the AZ), else none."""
    zones = {p.az for p in snap.pools if p.managed}
    return az if az in zones else "*" if "*" in zones else None


# -- deficit and top-up -------------------------------------------------------------------------


def deficit(snap: CapacitySnapshot, policy: CapacityPolicy) -> tuple[int, int]:
    """(CPU units, MiB) missing for tasks losing their place or unplaced, with headroom.

    Two bounds, the larger wins: in aggregate (homeless tasks plus headroom on ACTIVE capacity,
    less the free room on healthy instances and what is launching), and for tasks ECS already
    failed to place (free room it could not use, because of constraints or fragmentation, does
    not count for those). A Fargate companion carries its service's tasks on doomed instances
    through the notice; tasks left unplaced afterwards need EC2 capacity like any other, so the
    service comes back from Fargate once the storm is over. The cluster's alone: AZs short of
    their own headroom (``headroom_per_az``) may need more.
    """
    return _cluster_room(snap, policy).short(policy)


def _cluster_room(
    snap: CapacitySnapshot,
    policy: CapacityPolicy,
    holders: Sequence[Bin] | None = None,
    stuck: Sequence[Bound] = (),
) -> _Room:
    """The cluster's room; with ``holders`` (instance sizes and providers), counting only the
    tasks one of them can hold; leaving out the ``stuck`` tasks (bound to providers whose pools
    cannot grow)."""
    doomed_ids = _doomed(snap)
    homeless_cpu = homeless_mem = unplaced_cpu = unplaced_mem = 0
    for svc in served(snap):
        if holders is not None and not any(holds(h, _bound(svc)) for h in holders):
            continue
        doomed = _on(svc, doomed_ids)
        carried = min(svc.overflow_desired, doomed) if svc.overflow else 0
        unplaced = svc.unplaced - svc.settling  # ECS tried and found no room for these
        homeless = doomed - carried + svc.unplaced
        homeless_cpu += homeless * svc.cpu
        homeless_mem += homeless * svc.memory
        unplaced_cpu += unplaced * svc.cpu
        unplaced_mem += unplaced * svc.memory
    for (cpu, mem), _ in stuck:
        homeless_cpu, homeless_mem = homeless_cpu - cpu, homeless_mem - mem
        unplaced_cpu, unplaced_mem = unplaced_cpu - cpu, unplaced_mem - mem
    healthy = [n for n in snap.nodes if not n.doomed]
    launching = [n for n in healthy if n.status == "launching"]
    active = [n for n in healthy if n.status == "ACTIVE"]
    coming = (sum(n.cpu for n in launching), sum(n.memory for n in launching))
    total = (sum(n.cpu for n in active), sum(n.memory for n in active))
    free = (sum(n.free_cpu for n in active), sum(n.free_memory for n in active))
    return _Room(
        _plus(total, coming) if policy.headroom_per_az else total,
        _plus(free, coming),
        (homeless_cpu, homeless_mem),
        (unplaced_cpu - coming[0], unplaced_mem - coming[1]),
        grows=policy.headroom_per_az,
    )


def deficit_cause(snap: CapacitySnapshot) -> str:
    """What a top-up now is for: ``interruption`` when service tasks sit on doomed instances,
    else ``demand`` when tasks could not be placed, else ``headroom``."""
    if any(n.doomed and n.tasks for n in snap.nodes):
        return "interruption"
    if any(s.unplaced for s in served(snap)):
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
    interrupted or out of capacity within the cooldown is left out, and so are the spot pools
    of an instance type or an AZ in a storm (:func:`scaler.plan.cooldown.correlated`), and the
    pools of capacity providers no service may use (when every service is bound to some)."""
    storms = correlated(
        memory.interrupted,
        {p.name: (p.instance_type, p.az) for p in snap.pools},
        snap.now,
        policy.storm_window,
        policy.pool_cooldown,
        policy.storm_pools,
    )
    useful = _useful(snap)
    usable = [
        p
        for p in snap.pools
        if p.managed
        and useful(p)
        and not memory.cooling(p.name, snap.now, policy.pool_cooldown)
        and not (p.capacity == SPOT and storms.holds(p.instance_type, p.az))
    ]
    spot = sorted(
        (p for p in usable if p.capacity == SPOT), key=lambda p: (p.az != az, p.price, p.name)
    )
    od = sorted(
        (p for p in usable if p.capacity == ON_DEMAND), key=lambda p: (p.az != az, p.price, p.name)
    )
    return spot + od


def _useful(snap: CapacitySnapshot) -> Callable[[PoolView], bool]:
    """Whether a pool's instances may hold some service's tasks: any pool's, while a service is
    bound to no capacity provider (or there is none); else only its providers' pools."""
    bound = [s.providers for s in served(snap)]
    if not bound or not all(bound):
        return lambda p: True
    providers = {name for names in bound for name in names}
    return lambda p: p.provider in providers


def _fallback_spend(snap: CapacitySnapshot) -> float:
    return sum(p.size * p.price for p in snap.pools if p.capacity == ON_DEMAND)


@dataclass
class _Growth:
    """The launches one plan has made so far, and what they add up to."""

    targets: dict[str, int]
    od_nodes: int
    all_nodes: int
    od_spend: float  # on-demand fallback and overflow, USD per hour
    placed: dict[str, Pair] = field(default_factory=dict)  # AZ ("*": not known) -> launched
    causes: dict[str, str] = field(default_factory=dict)  # pool -> why it grows
    for_az: Counter[str] = field(default_factory=Counter)  # AZ -> launches for its headroom
    given_up: set[str] = field(default_factory=set)  # AZs left short of headroom
    blocked: set[str] = field(default_factory=set)  # ... of those, because of caps or cooldowns
    doomed: list[Bound] = field(default_factory=list)  # tasks losing their place: any room
    unplaced: list[Bound] = field(default_factory=list)  # tasks ECS could not place: new room
    free: list[Bin] = field(default_factory=list)  # free room of healthy ACTIVE instances
    rooms: list[Bin] = field(default_factory=list)  # instances launching, and those launched
    left: list[Bound] = field(default_factory=list)  # waiting tasks without room, in packing order
    alternatives: dict[str, list[str]] = field(default_factory=dict)  # spot pool -> others

    @classmethod
    def start(cls, snap: CapacitySnapshot, overflow_spend: float) -> _Growth:
        return cls(
            {p.name: p.size for p in snap.pools if p.managed},
            sum(p.size for p in snap.pools if p.capacity == ON_DEMAND),
            sum(p.size for p in snap.pools),
            _fallback_spend(snap) + overflow_spend,
        )

    def pick(self, options: list[PoolView], policy: CapacityPolicy) -> PoolView | None:
        if self.od_nodes < required_on_demand(self.all_nodes + 1, policy):
            options = _on_demand_first(options)
        return _pick(options, self.od_nodes, self.od_spend, policy, self.targets)

    def add(self, pool: PoolView, az: str, options: Sequence[PoolView] = ()) -> None:
        """One more instance of ``pool``, launched into ``az``; the other spot pools among
        ``options`` (those the need could have been met from) may launch it instead."""
        if pool.capacity == SPOT:
            named = self.alternatives.setdefault(pool.name, [])
            named += [
                p.name
                for p in options
                if p.capacity == SPOT
                and p.name != pool.name
                and p.name not in named
                and _fits(p, self.targets)
            ]
        self.targets[pool.name] += 1
        self.all_nodes += 1
        if pool.capacity == ON_DEMAND:
            self.od_nodes += 1
            self.od_spend += pool.price
        self.placed[az] = _plus(self.placed.get(az, NOTHING), (pool.cpu, pool.memory))
        self.rooms.append(_bin(pool))
        self.left = self.pack()

    def wait(
        self, waiting: tuple[list[Bound], list[Bound]], free: list[Bin], launching: list[Bin]
    ) -> None:
        """Tasks waiting for room (losing their place, unplaced), and the room there is: the
        free room of healthy ACTIVE instances, and instances launching."""
        (self.doomed, self.unplaced), self.free, self.rooms = waiting, free, launching
        self.left = self.pack()

    @property
    def waiting(self) -> int:
        """How many tasks wait for room."""
        return len(self.doomed) + len(self.unplaced)

    def pack(self) -> list[Bound]:
        """The waiting tasks left without room, in packing order (:func:`_pack_waiting`):
        unplaced ones into the instances launching or launched, those losing their place there
        or into the free room of ACTIVE instances. The same answer whatever order instances
        were launched or listed in, so a plan made again once its launches are under way asks
        for nothing more."""
        return _pack_waiting(self.unplaced, self.doomed, self.rooms, self.free)

    def added(self, az: str | None = None) -> Pair:
        """Capacity launched into ``az``; into any AZ if None."""
        if az is not None:
            return self.placed.get(az, NOTHING)
        return sum(c for c, _ in self.placed.values()), sum(m for _, m in self.placed.values())


def _top_up(
    snap: CapacitySnapshot,
    memory: CapacityMemory,
    policy: CapacityPolicy,
    growth: _Growth,
    reasons: list[str],
    cause: str,
) -> None:
    """Grow pools until each AZ keeps its own headroom (with ``headroom_per_az``: launches
    for AZs come first and count toward the cluster's deficit) and the cluster's is covered."""
    before = dict(growth.targets)
    healthy = [n for n in snap.nodes if not n.doomed and n.status in ("ACTIVE", "launching")]
    # what could ever hold a task: a pool that may grow now, or an instance there is
    holders = [_bin(p) for p in sources(snap, memory, policy, "")]
    holders += [((n.cpu, n.memory), n.provider) for n in healthy]
    waiting = [t for group in _waiting(snap) for t in group]
    growth.wait(
        _placeable(snap, holders, reasons),
        [((n.free_cpu, n.free_memory), n.provider) for n in healthy if n.status == "ACTIVE"],
        [((n.cpu, n.memory), n.provider) for n in healthy if n.status == "launching"],
    )
    rooms = _az_rooms(snap) if policy.headroom_per_az else {}
    _top_up_azs(snap, memory, policy, growth, rooms, reasons)
    stuck_reason = _place_waiting(snap, memory, policy, growth, rooms, reasons, cause)
    # tasks bound to capacity providers whose pools may not grow now: no other pool's launch
    # helps them, so the aggregate leaves them out
    stuck = [t for t in growth.left if t[1]]
    cluster = _cluster_room(snap, policy, holders, stuck)
    azs = _lost_by_az(snap)
    turn = 0
    while azs and any(short := cluster.short(policy, growth.added())):
        options = sources(snap, memory, policy, azs[turn % len(azs)])
        if waiting:  # headroom on top of waiting tasks: in types that hold some of them
            options = [p for p in options if any(holds(_bin(p), t) for t in waiting)]
        pool = growth.pick(options, policy)
        if pool is None:
            reasons.append("deficit left: no pool may grow (caps or cooldowns)")
            break
        growth.add(pool, pool.az, options)
        growth.causes[pool.name] = cause
        if sum(cluster.short(policy, growth.added())) >= sum(short):
            reasons.append("deficit left: launches do not lessen it (headroom share too large)")
            break
        turn += 1
        # an instance of a pool in an AZ without any may open it: it keeps its headroom too
        _top_up_azs(snap, memory, policy, growth, rooms, reasons)
    if turn and growth.left:  # launches for headroom packed the waiting tasks otherwise
        stuck_reason = _place_waiting(snap, memory, policy, growth, rooms, reasons, cause)
    if stuck_reason:
        reasons.append(stuck_reason)
    for name, target in growth.targets.items():
        if target > before[name]:
            reasons.append(f"top-up {name}: {before[name]} -> {target}")


def _shape(svc: ServiceView) -> Shape:
    return svc.cpu, svc.memory


def _bound(svc: ServiceView) -> Bound:
    return _shape(svc), svc.providers


def _bin(pool: PoolView) -> Bin:
    """What one new instance of ``pool`` offers: its size, on the pool's capacity provider."""
    return (pool.cpu, pool.memory), pool.provider


Room = tuple[Bin, bool]  # room, and whether it is new (an instance launching or launched)
Waiting = tuple[Bound, bool]  # a task, and whether only new room takes it (ECS placed it nowhere)


def _takes(room: Room, task: Waiting) -> bool:
    return holds(room[0], task[0]) and (room[1] or not task[1])


def _pack_waiting(
    unplaced: Sequence[Bound], doomed: Sequence[Bound], new: Sequence[Bin], free: Sequence[Bin]
) -> list[Bound]:
    """The waiting tasks left without room (in packing order), each packed into the first room
    that takes it: unplaced tasks only into ``new`` room, those losing their place into any.
    Rooms go largest first (the most memory, then the most CPU, then by capacity provider, new
    before free), so the order instances were launched or listed in does not matter. Tasks with
    the fewest places to go are packed first: bound ones, then each kind by how many rooms take
    it, then largest first; so a task that fits many rooms does not take the one room another
    (of more CPU and less memory, say) needed. Free room too small for any task is left out."""
    tasks = [*((t, True) for t in unplaced), *((t, False) for t in doomed)]
    if not tasks:
        return []
    least = (min(t[0][0][0] for t in tasks), min(t[0][0][1] for t in tasks))
    rooms = sorted(
        [*((b, True) for b in new), *((b, False) for b in free if room_for(b[0], least))],
        key=lambda r: (r[0][0][1], r[0][0][0], r[0][1], r[1]),
        reverse=True,
    )
    kinds = Counter(rooms)
    places = {t: sum(n for r, n in kinds.items() if _takes(r, t)) for t in set(tasks)}
    left: list[Bound] = []
    for task in sorted(tasks, key=lambda t: (not t[0][1], places[t], -t[0][0][1], -t[0][0][0])):
        at = next((i for i, r in enumerate(rooms) if _takes(r, task)), None)
        if at is None:
            left.append(task[0])
            continue
        ((cpu, mem), provider), is_new = rooms[at]
        rooms[at] = ((cpu - task[0][0][0], mem - task[0][0][1]), provider), is_new
    return bound_first(left)


def served(snap: CapacitySnapshot) -> list[ServiceView]:
    """The services the scaler can add capacity for: all but those bound to capacity providers
    none of whose groups is one of its pools (ECS managed scaling adds their capacity)."""
    providers = {p.provider for p in snap.pools if p.managed}
    return [s for s in snap.services if not s.providers or providers & set(s.providers)]


def _doomed(snap: CapacitySnapshot) -> list[str]:
    """The doomed nodes (under a notice, or draining); of two with one id, the last counts."""
    nodes = {n.id: n for n in snap.nodes}
    return [nid for nid, n in nodes.items() if n.doomed]


def _on(svc: ServiceView, nodes: Sequence[str]) -> int:
    """How many of ``svc``'s tasks run on ``nodes`` (few: looked up, not scanned)."""
    return sum(svc.tasks_on.get(nid, 0) for nid in nodes)


def _waiting(snap: CapacitySnapshot) -> tuple[list[Bound], list[Bound]]:
    """The tasks that need a place, one shape (and the providers it is bound to) each: those
    losing theirs on doomed instances (less those a Fargate companion carries) with those ECS
    has not tried to place yet (they may fit the free room), and those ECS could not place."""
    doomed_ids = _doomed(snap)
    doomed: list[Bound] = []
    unplaced: list[Bound] = []
    for svc in served(snap):
        on_doomed = _on(svc, doomed_ids)
        carried = min(svc.overflow_desired, on_doomed) if svc.overflow else 0
        doomed += [_bound(svc)] * (on_doomed - carried + svc.settling)
        unplaced += [_bound(svc)] * (svc.unplaced - svc.settling)
    return doomed, unplaced


def _placeable(
    snap: CapacitySnapshot, holders: Sequence[Bin], reasons: list[str]
) -> tuple[list[Bound], list[Bound]]:
    """The waiting tasks (losing their place, unplaced) that something can hold: tasks that
    no pool that may grow, nor any instance there is, can hold (on a capacity provider they may
    use) are left out, with a reason."""
    doomed, unplaced = _waiting(snap)
    unfit = [t for t in doomed + unplaced if not any(holds(h, t) for h in holders)]
    if unfit:
        shapes = ", ".join(f"{c} CPU/{m} MiB" for (c, m), _ in sorted(set(unfit)))
        reasons.append(
            f"{len(unfit)} waiting task(s) fit no instance type a pool may launch now, nor any "
            f"instance there is: {shapes}"
        )
    return [t for t in doomed if t not in unfit], [t for t in unplaced if t not in unfit]


def _per_task(options: Sequence[PoolView], left: Sequence[Bound], az: str) -> list[PoolView]:
    """The pools that can hold the first waiting task one of them can hold (bound tasks come
    first, each kind largest first), best first: spot, then this AZ, then the lowest price per
    task that one new instance of the pool takes, filled first fit from the largest task down
    (as Karpenter simulates pending pods onto instance types). Smaller tasks fill the room the
    larger ones leave, so a type that holds only small tasks is chosen only once no larger task
    is waiting. A task bound to capacity providers counts only in their pools."""
    largest = next((t for t in left if any(holds(_bin(p), t) for p in options)), None)
    scored: list[tuple[tuple[bool, bool, float, float, str], PoolView]] = []
    for p in options:
        if largest is None or not holds(_bin(p), largest):
            continue
        takes = [shape for shape, providers in left if allows(providers, p.provider)]
        placed = len(takes) - len(fill((p.cpu, p.memory), takes)[1])
        if placed:
            scored.append(((p.capacity != SPOT, p.az != az, p.price / placed, p.price, p.name), p))
    return [p for _, p in sorted(scored, key=lambda s: s[0])]


def _place_waiting(
    snap: CapacitySnapshot,
    memory: CapacityMemory,
    policy: CapacityPolicy,
    growth: _Growth,
    rooms: Mapping[str, _Room],
    reasons: list[str],
    cause: str,
) -> str | None:
    """Launch until every waiting task has room in an instance of a type that holds it, one
    instance at a time of the pool with the lowest price per task it takes. Tasks no pool may
    grow for (caps or cooldowns) are passed over: the others still get their room. Why tasks
    are left waiting, if they are."""
    azs = _lost_by_az(snap)
    turn = 0
    while azs and growth.left and turn <= growth.waiting:  # an instance a task at most
        az = azs[turn % len(azs)]
        pool, options = _pool_for_waiting(sources(snap, memory, policy, az), growth, policy, az)
        if pool is None:
            return (
                f"{len(growth.left)} waiting task(s) left: no pool they fit may grow "
                "(caps or cooldowns)"
            )
        growth.add(pool, pool.az, options)
        growth.causes[pool.name] = cause
        turn += 1
        _top_up_azs(snap, memory, policy, growth, rooms, reasons)
    return None


def _pool_for_waiting(
    sources: list[PoolView], growth: _Growth, policy: CapacityPolicy, az: str
) -> tuple[PoolView | None, list[PoolView]]:
    """The pool to grow for the first waiting task (in packing order) that a pool may grow
    for, and the pools that could hold it; the kinds of task no pool may grow for now are
    passed over."""
    left = growth.left
    while left:
        options = _per_task(sources, left, az)
        pool = growth.pick(options, policy)
        if pool is not None or not options:
            return pool, options
        kind = next(t for t in left if any(holds(_bin(p), t) for p in options))
        left = [t for t in left if t != kind]
    return None, []


def _top_up_azs(
    snap: CapacitySnapshot,
    memory: CapacityMemory,
    policy: CapacityPolicy,
    growth: _Growth,
    rooms: Mapping[str, _Room],
    reasons: list[str],
) -> None:
    """Launch for each AZ short of its own headroom, in turn (fewest launches for it first)."""
    if not policy.headroom_per_az:
        return
    while short := _short_azs(policy, rooms, growth):
        az = min(short, key=lambda z: (growth.for_az[z], z))
        why = _grow_az(snap, memory, policy, growth, az, reasons)
        if why is None and sum(_short_azs(policy, rooms, growth).get(az, NOTHING)) >= sum(
            short[az]
        ):
            why = "launches do not lessen it (headroom share too large)"
        if why:
            growth.given_up.add(az)
            reasons.append(f"AZ {az} left short of headroom: {why}")


def _short_azs(
    policy: CapacityPolicy, rooms: Mapping[str, _Room], growth: _Growth
) -> dict[str, Pair]:
    """The AZs with instances, or launches planned, short of their own headroom (CPU, MiB)."""
    azs = (set(rooms) | set(growth.placed)) - growth.given_up - {"*"}
    short = {az: rooms.get(az, AZ_ROOM).short(policy, growth.added(az)) for az in azs}
    return {az: s for az, s in short.items() if any(s)}


def _grow_az(
    snap: CapacitySnapshot,
    memory: CapacityMemory,
    policy: CapacityPolicy,
    growth: _Growth,
    az: str,
    reasons: list[str],
) -> str | None:
    """One instance for ``az``'s headroom, in its pools, else in multi-AZ ones; or why not."""
    where = _serving(snap, az)
    if where is None:
        return "no pool launches into it"
    options = [p for p in sources(snap, memory, policy, az) if p.az == where]
    pool = growth.pick(options, policy)
    if pool is None:
        growth.blocked.add(az)
        return "no pool may grow (caps or cooldowns)"
    growth.add(pool, az, options)
    growth.causes.setdefault(pool.name, "headroom")
    growth.for_az[az] += 1
    reasons.append(f"headroom in AZ {az}: {pool.name} +1")
    return None


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
    growth: _Growth,
    reasons: list[str],
) -> dict[str, str]:
    """Launch the on-demand base that is missing (round robin over the AZs); the causes."""
    targets = growth.targets
    od_nodes = sum(targets.get(p.name, p.size) for p in snap.pools if p.capacity == ON_DEMAND)
    azs = sorted({p.az for p in snap.pools})
    causes: dict[str, str] = {}
    for turn in range(max(0, policy.on_demand_base - od_nodes)):
        options = sources(snap, memory, policy, azs[turn % len(azs)])
        pool = next((p for p in options if p.capacity == ON_DEMAND and _fits(p, targets)), None)
        if pool is None:
            reasons.append("on-demand base left short: no on-demand pool may grow")
            break
        growth.add(pool, pool.az)
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
    doomed_ids = _doomed(snap)
    targets: dict[str, int] = {}
    budget = policy.max_overflow_tasks
    for svc in sorted(snap.services, key=lambda s: s.name):
        if svc.overflow is None:
            continue
        at_risk = svc.unplaced + _on(svc, doomed_ids)
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
    and memory alike, its tasks placed again), and with ``headroom_per_az`` so does the rest of
    its AZ (the tasks back in it, as ECS spreading by AZ puts them), so a release never causes
    the next top-up."""
    if not quiet(snap, memory, policy):
        return ()
    active = [n for n in snap.nodes if n.status == "ACTIVE"]
    cluster = _Room(
        (sum(n.cpu for n in active), sum(n.memory for n in active)),
        (sum(n.free_cpu for n in active), sum(n.free_memory for n in active)),
    )
    rooms = _az_rooms(snap) if policy.headroom_per_az else {}
    released: list[str] = []
    od_nodes = sum(p.size for p in snap.pools if p.capacity == ON_DEMAND)
    all_nodes = sum(p.size for p in snap.pools)
    for node in _fallback(snap)[: policy.revert_batch]:
        if od_nodes - 1 < max(policy.on_demand_base, required_on_demand(all_nodes - 1, policy)):
            break  # the on-demand base and percentage stay
        od_nodes, all_nodes = od_nodes - 1, all_nodes - 1
        rest = {az: room.without(node) for az, room in rooms.items() if az == node.az}
        if not all(r.keeps_twice(policy) for r in (cluster.without(node), *rest.values())):
            break  # its tasks would not fit with room to spare: bring spot back first
        others = [
            ((n.free_cpu, n.free_memory), n.provider)
            for n in active
            if n.id != node.id and n.id not in released and not n.doomed
        ]
        if pack_bound(_bound_on(snap, node), others)[0]:
            break  # tasks bound to its capacity provider would have nowhere to go
        released.append(node.id)
        cluster = cluster.without(node)
        rooms = {**rooms, **rest}
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
    and releases the on-demand instance instead, so the swap is one for one, never a loop. With
    ``headroom_per_az`` the spot instance goes to the on-demand one's AZ (its pools, else
    multi-AZ ones), whose room the release needs.
    """
    result = dict(targets)
    if not quiet(snap, memory, policy) or any(n.status == "launching" for n in snap.nodes):
        return result
    keep = max(policy.on_demand_base, required_on_demand(sum(p.size for p in snap.pools), policy))
    od_nodes = sum(p.size for p in snap.pools if p.capacity == ON_DEMAND)
    for node in _fallback(snap)[: min(policy.revert_batch, max(0, od_nodes - keep))]:
        spot = [
            p
            for p in sources(snap, memory, policy, node.az)
            if p.capacity == SPOT
            and _fits(p, result)
            and _replaces(snap, policy, p, node)
            and all(holds(_bin(p), t) for t in _bound_on(snap, node))
        ]
        if not spot:
            break
        result[spot[0].name] += 1
        reasons.append(f"return to spot: {spot[0].name} +1 to replace {node.id}")
    return result


def _replaces(
    snap: CapacitySnapshot, policy: CapacityPolicy, pool: PoolView, node: NodeView
) -> bool:
    """Whether an instance of ``pool`` makes room for releasing ``node``."""
    return not policy.headroom_per_az or pool.az == _serving(snap, node.az)


def _bound_on(snap: CapacitySnapshot, node: NodeView) -> list[Bound]:
    """The tasks on ``node`` of services bound to capacity providers."""
    return [
        _bound(svc)
        for svc in snap.services
        if svc.providers
        for _ in range(svc.tasks_on.get(node.id, 0))
    ]
