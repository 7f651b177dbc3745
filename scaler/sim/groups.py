"""Capacity groups the baselines run on: an Auto Scaling group, and a Spot Fleet of type maintain.

A group owns instances and keeps a *desired* count of them, as EC2 does without anyone asking:

- an instance it loses (a spot reclaim, an AZ outage) is replaced at once (health replacement);
  the replacement avoids the pool that just lost one (EC2 knows which pools are under pressure);
- a launch picks the AZ with the fewest members first (AZ balance), then a pool there by the
  allocation strategy: price-capacity-optimized (the deepest pools, here those with the lowest
  interruption rate, then the cheapest) or lowest-price; other AZs' pools are asked in the same
  request when the first AZ has no capacity;
- ``on_demand_base`` of its members are on-demand (OnDemandBaseCapacity), the rest spot;
- with Capacity Rebalancing, a rebalance recommendation launches a replacement first; once the
  replacement is InService (registered with ECS) the at-risk instance is drained (ECS managed
  instance draining) and terminated when empty, or after a timeout.

A group may be one ECS capacity provider's (``provider``): it holds and launches into that
provider's pools only, and its managed scaling counts the tasks bound to that provider
(:func:`demand`).

Whatever else changes the group goes through :meth:`Group.retire` (an instance the group
terminates and replaces: an instance refresh) and :meth:`Group.shrink` (a scale-in: terminated and
the desired count lowered), so the group never mistakes its own terminations for losses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from scaler.ecs.cluster import ACTIVE, DRAINING, Instance, ServiceState
from scaler.sim.engine import Sim
from scaler.sim.scenario import Pool

PERIOD = 30.0  # how often the group looks at its members and retries launches that failed
PRESSURE_MEMORY = 3600.0  # how long a pool that lost an instance is asked last
DRAIN_TIMEOUT = 900.0  # managed draining's wait for an at-risk instance's tasks, at most
SCALE_OUT_PERIOD = 60.0
SCALE_IN_PERIOD = 300.0
SCALE_IN_AFTER = 900.0  # scale-in's 15 minutes below target
WARMUP = 300.0


@dataclass(frozen=True)
class GroupSettings:
    allocation: str = "price-capacity-optimized"  # or "lowest-price"
    on_demand_base: int = 0
    capacity_rebalance: bool = True


@dataclass
class Retiring:
    """An at-risk instance on its way out, and the replacement launched for it."""

    replacement: str
    draining_since: float | None = None


@dataclass
class Group:
    settings: GroupSettings = field(default_factory=GroupSettings)
    desired: int = 0
    members: set[str] = field(default_factory=set)
    retiring: dict[str, Retiring] = field(default_factory=dict)
    pressure: dict[str, float] = field(default_factory=dict)  # pool -> when it lost an instance
    ever: set[str] = field(default_factory=set)  # every instance that was a member
    own: set[str] = field(default_factory=set)  # instances the group terminated itself
    provider: str | None = None  # the capacity provider it is: its pools only (None: every pool)

    def start(self, sim: Sim) -> None:
        """Adopt every instance of its pools the cluster starts with; top up to the on-demand
        base."""
        self.members = {i.id for i in sim.cluster.instances.values() if self.has(sim.pools[i.pool])}
        self.ever = set(self.members)
        on_demand = sum(1 for i in self.live(sim) if i.capacity == "on-demand")
        self.desired = len(self.members) + max(0, self.settings.on_demand_base - on_demand)
        sim.at(PERIOD, self._tick, sim)
        self.reconcile(sim)

    # -- what the group holds ---------------------------------------------------------------

    def has(self, pool: Pool) -> bool:
        """Whether ``pool`` is one of the group's pools."""
        return self.provider is None or (pool.capacity_provider or "") == self.provider

    def live(self, sim: Sim) -> list[Instance]:
        """The members in the cluster (launching, active or draining), not those retiring."""
        found = (sim.instance(i) for i in sorted(self.members))
        return [i for i in found if i is not None]

    # -- keeping the desired count ------------------------------------------------------------

    def _tick(self, sim: Sim) -> None:
        sim.at(sim.now + PERIOD, self._tick, sim)
        self.reconcile(sim)
        self._retire_at_risk(sim)

    def lost(self, sim: Sim, instance_id: str) -> bool:
        """An instance is gone: if a member the group did not terminate, replace it (and say
        so: True)."""
        real = instance_id in sim.terminated and instance_id in self.ever
        self.reconcile(sim)
        return real and instance_id not in self.own

    def reconcile(self, sim: Sim) -> None:
        """Prune members that are gone; launch until the group holds its desired count."""
        for iid in sorted(self.members - sim.cluster.instances.keys()):
            gone = sim.terminated.get(iid)
            if gone is not None and iid not in self.own:  # lost: its pool is under pressure
                self.pressure[gone.pool] = sim.now
        self.members = {i.id for i in self.live(sim)}
        for iid, entry in list(self.retiring.items()):
            if sim.instance(iid) is None:
                del self.retiring[iid]
            elif sim.instance(entry.replacement) is None and entry.draining_since is None:
                del self.retiring[iid]  # the replacement is gone before it served: keep this one
                self.members.add(iid)
        while len(self.members) < self.desired:
            if self.launch(sim, "replace") is None:
                return  # no capacity: the next tick tries again

    def launch(self, sim: Sim, why: str, avoid: str | None = None) -> Instance | None:
        """One instance as the group launches it (on-demand below the base, else spot)."""
        on_demand = sum(1 for i in self.live(sim) if i.capacity == "on-demand")
        capacity = "on-demand" if on_demand < self.settings.on_demand_base else "spot"
        order = self.order(sim, capacity, avoid)
        launched = sim.launch_instances([p.name for p in order], 1, why)
        for inst in launched:
            self.members.add(inst.id)
            self.ever.add(inst.id)
        return launched[0] if launched else None

    def order(self, sim: Sim, capacity: str, avoid: str | None = None) -> list[Pool]:
        """Pools in the order one launch asks them: the emptiest AZ first, within an AZ by the
        allocation strategy, pools under pressure (or ``avoid``) last."""
        pools = [p for p in sim.pools.values() if p.capacity == capacity and self.has(p)]
        count: dict[str, int] = {p.az: 0 for p in pools}
        for inst in self.live(sim):
            if inst.az in count:
                count[inst.az] += 1

        def key(p: Pool) -> tuple[bool, int, str, float, float, str]:
            pressed = p.name == avoid or sim.now - self.pressure.get(p.name, -1e18) < (
                PRESSURE_MEMORY
            )
            price = p.price if p.price is not None else 0.0
            depth = p.interruptions_per_hour if self._capacity_first else 0.0
            return (pressed, count[p.az], p.az, depth, price, p.name)

        return sorted(pools, key=key)

    @property
    def _capacity_first(self) -> bool:
        return self.settings.allocation == "price-capacity-optimized"

    # -- changes the group is asked for --------------------------------------------------------

    def grow(self, sim: Sim, count: int) -> None:
        """Raise the desired count by ``count`` (a scale-out)."""
        self.desired += max(0, count)
        self.reconcile(sim)

    def shrink(self, sim: Sim, inst: Instance) -> None:
        """Terminate a member and lower the desired count (a scale-in)."""
        self.members.discard(inst.id)
        self.desired = max(0, self.desired - 1)
        self._terminate(sim, inst)

    def retire(self, sim: Sim, inst: Instance) -> None:
        """Terminate a member and launch its replacement (an instance refresh)."""
        self.members.discard(inst.id)
        self._terminate(sim, inst)
        self.reconcile(sim)

    def removable(self, sim: Sim, inst: Instance) -> bool:
        """Whether a scale-in may take this member: not below the on-demand base."""
        if inst.capacity != "on-demand":
            return True
        on_demand = sum(1 for i in self.live(sim) if i.capacity == "on-demand")
        return on_demand > self.settings.on_demand_base

    # -- Capacity Rebalancing -----------------------------------------------------------------

    def recommended(self, sim: Sim, instance_id: str) -> None:
        """A rebalance recommendation for a member: launch its replacement first."""
        inst = sim.instance(instance_id)
        if (
            not self.settings.capacity_rebalance
            or inst is None
            or inst.capacity != "spot"
            or instance_id not in self.members
        ):
            return
        self.pressure[inst.pool] = sim.now
        self.members.discard(instance_id)
        replacement = self.launch(sim, "rebalance", avoid=inst.pool)
        if replacement is None:  # no capacity: the group keeps the instance
            self.members.add(instance_id)
            return
        self.retiring[instance_id] = Retiring(replacement.id)

    def _retire_at_risk(self, sim: Sim) -> None:
        """Drain each at-risk instance once its replacement is InService; terminate it empty."""
        for iid, entry in sorted(self.retiring.items()):
            inst = sim.instance(iid)
            if inst is None:
                continue
            replacement = sim.instance(entry.replacement)
            if entry.draining_since is None:
                if replacement is not None and replacement.status in (ACTIVE, DRAINING):
                    sim.cluster.drain(inst)  # managed draining: ECS does it, no API call of ours
                    entry.draining_since = sim.now
                continue
            if not inst.tasks or sim.now - entry.draining_since >= DRAIN_TIMEOUT:
                del self.retiring[iid]
                self._terminate(sim, inst)

    def _terminate(self, sim: Sim, inst: Instance) -> None:
        self.own.add(inst.id)
        sim.terminate(inst)


class ManagedScaling:
    """Scaling a group as an ECS capacity provider with managed scaling does.

    With ``target_capacity`` (percent): once a minute, M = the members that hold a task plus the
    instances the unplaced tasks need, and the group is raised to ceil(M * 100 / target); below
    100 the group keeps that much spare room. Scale-in (managed termination protection: only
    instances without a task) takes members empty for 15 minutes, down to the same count and not
    below the on-demand base. Instances launching count toward the group, so a launch in flight
    is not launched again.

    Without a target: the simpler scaling of a homegrown tool: once a minute, as many instances
    as the unplaced tasks need, unless an instance is still warming up.
    """

    def __init__(self, group: Group, target_capacity: int | None) -> None:
        self.group = group
        self.target = target_capacity
        self.empty_since: dict[str, float] = {}

    def start(self, sim: Sim) -> None:
        sim.at(SCALE_OUT_PERIOD, self._out, sim)
        sim.at(SCALE_IN_PERIOD, self._in, sim)

    def wanted(self, sim: Sim) -> int:
        """ceil(M * 100 / targetCapacity): how many members the capacity provider asks for."""
        assert self.target is not None
        busy = sum(1 for i in self.group.live(sim) if i.busy())
        return math.ceil((busy + instances_needed(sim, self.group)) * 100 / self.target)

    def _out(self, sim: Sim) -> None:
        sim.at(sim.now + SCALE_OUT_PERIOD, self._out, sim)
        if self.target is None:
            if not any(sim.now - i.launched_at < WARMUP for i in sim.cluster.instances.values()):
                self.group.grow(sim, instances_needed(sim, self.group))
            return
        self.group.grow(sim, self.wanted(sim) - len(self.group.members))

    def _in(self, sim: Sim) -> None:
        sim.at(sim.now + SCALE_IN_PERIOD, self._in, sim)
        live = self.group.live(sim)
        for inst in live:
            if inst.busy() or inst.status not in (ACTIVE, DRAINING):
                self.empty_since.pop(inst.id, None)
            else:
                self.empty_since.setdefault(inst.id, sim.now)
        ids = {i.id for i in live}
        for gone in set(self.empty_since) - ids:
            del self.empty_since[gone]
        spare = len(live) - (self.wanted(sim) if self.target is not None else 0)
        for inst in sorted(live, key=lambda i: (self.empty_since.get(i.id, sim.now), i.id)):
            since = self.empty_since.get(inst.id)
            if spare <= 0 or since is None or sim.now - since < SCALE_IN_AFTER:
                continue
            if self.group.removable(sim, inst):
                del self.empty_since[inst.id]
                self.group.shrink(sim, inst)
                spare -= 1


def demand(sim: Sim, group: Group) -> list[ServiceState]:
    """The services with unplaced tasks whose capacity ``group`` adds: every one for a group of
    every pool; for a capacity provider's, those bound to it (the first provider of a strategy
    that has a group scales for it) and, for the group of pools of no provider (else the first
    provider's), those bound to none."""
    unplaced = sim.unplaced()
    if group.provider is None:
        return unplaced
    providers = sorted({p.capacity_provider or "" for p in sim.pools.values()})
    unbound = "" if "" in providers else providers[0]

    def scales(state: ServiceState) -> str | None:
        bound = state.spec.capacity_providers
        if not bound:
            return unbound
        return next((name for name in bound if name in providers), None)

    return [s for s in unplaced if scales(s) == group.provider]


def instances_needed(sim: Sim, group: Group) -> int:
    """Instances of the cheapest spot pool's type (of the group's pools) that the unplaced tasks
    whose capacity the group adds need (0: none)."""
    needs = demand(sim, group)
    spot = sorted(
        (p for p in sim.pools.values() if p.capacity == "spot" and group.has(p)),
        key=lambda p: (p.price or 0.0, p.name),
    )
    if not needs or not spot:
        return 0
    itype = sim.scenario.instance_types[spot[0].instance_type]
    cpu = sum(s.unplaced * s.spec.cpu for s in needs)
    mem = sum(s.unplaced * s.spec.memory for s in needs)
    return max(1, math.ceil(cpu / itype.cpu_units), math.ceil(mem / itype.memory_mib))
