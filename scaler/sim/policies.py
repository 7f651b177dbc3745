"""The baselines the simulator compares the scaler with: models of what a competent operator
runs without it. (The scaler itself is not modelled: the simulator runs the controllers
``scaler run`` builds, in a simulated AWS; see :mod:`scaler.sim.run`.)

- ``ecs-native``: the best ECS and Auto Scaling offer without the scaler, set up as AWS
  recommends: the ECS agent drains at the spot warning (``ECS_ENABLE_SPOT_INSTANCE_DRAINING``); a
  capacity provider with managed scaling (the scenario's ``target_capacity``), managed termination
  protection and managed instance draining, over a mixed-instances Auto Scaling group across every
  spot pool (price-capacity-optimized, Capacity Rebalancing, health replacement, the scenario's
  ``on_demand_base``): see :mod:`scaler.sim.groups`.
- ``ecs-scaler``: the homegrown tool it replaces: drains at the warning, autoscales merged Spot
  Fleets that replenish themselves, and launches an on-demand stand-in only for spot capacity
  actually lost, returning to spot later.

Both baselines roll a new image by an instance refresh; ECS's own AZ rebalancing is part of the
model for every policy.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from scaler.ecs.cluster import ACTIVE
from scaler.events import (
    InstanceStateChange,
    RebalanceRecommendation,
    Signal,
    SpotInterruption,
)
from scaler.sim.engine import Policy, Sim
from scaler.sim.groups import Group, GroupSettings, ManagedScaling

SCALE_OUT_PERIOD = 60.0  # ecs-scaler: how often it looks to return to spot
ROLL_PERIOD = 60.0
REFRESH_MIN_HEALTHY = 0.9
REFRESH_WARMUP = 300.0
REFRESH_DRAIN_TIMEOUT = 900.0
RETURN_AFTER = 900.0  # ecs-scaler: an on-demand stand-in runs at least this long


class InstanceRefresh:
    """How the baselines roll a new image: an Auto Scaling instance refresh (MinHealthyPercentage
    90, terminate first) with ECS managed instance draining. A tenth of the instances at a time
    are drained, terminated once empty (or after 15 minutes) and replaced by their group; the
    next batch starts when the replacements have warmed up. Spot notices are not its concern.
    Over several groups (one per capacity provider), each instance is retired by its own."""

    def __init__(self, *groups: Group) -> None:
        self.groups = groups
        self.batch: dict[str, float] = {}  # instance -> when its draining began
        self.next_at = 0.0

    def start(self, sim: Sim) -> None:
        sim.at(ROLL_PERIOD, self._step, sim)

    def _step(self, sim: Sim) -> None:
        sim.at(sim.now + ROLL_PERIOD, self._step, sim)
        for iid, since in sorted(self.batch.items()):
            inst = sim.instance(iid)
            if inst is not None and inst.tasks and sim.now - since < REFRESH_DRAIN_TIMEOUT:
                continue
            del self.batch[iid]
            if inst is not None:
                owner = next((g for g in self.groups if inst.id in g.ever), self.groups[0])
                owner.retire(sim, inst)
                self.next_at = sim.now + sim.scenario.boot_delay[1] + REFRESH_WARMUP
        if self.batch or sim.now < self.next_at:
            return
        stale = sorted((i for i in sim.out_of_date() if i.status == ACTIVE), key=lambda i: i.id)
        live = sum(1 for i in sim.cluster.instances.values() if i.status == ACTIVE)
        for inst in stale[: max(1, math.floor((1 - REFRESH_MIN_HEALTHY) * live))]:
            if sim.cluster.drain(inst):  # managed draining: no API call of ours
                self.batch[inst.id] = sim.now


class EcsNative:
    """ECS and Auto Scaling as AWS recommends them, without the scaler: a capacity provider
    with managed scaling (the scenario's ``target_capacity``), managed termination protection
    and managed instance draining, over a mixed-instances Auto Scaling group across every spot
    pool (price-capacity-optimized, Capacity Rebalancing, the scenario's ``on_demand_base``);
    the ECS agent drains an instance at its spot warning; images roll by instance refresh.
    Pools of capacity providers are one group per provider, each with its own managed scaling
    (the first with an on-demand pool holds the on-demand base)."""

    name = "ecs-native"

    def __init__(self) -> None:
        self.groups: list[Group] = []

    def start(self, sim: Sim) -> None:
        providers = sorted({p.capacity_provider or "" for p in sim.scenario.pools})
        names: list[str | None] = [None] if providers == [""] else list(providers)
        groups = [Group(provider=name) for name in names]
        # the on-demand base is the first group's that has an on-demand pool
        od = [
            g
            for g in groups
            if any(p.capacity == "on-demand" and g.has(p) for p in sim.pools.values())
        ]
        (od or groups)[0].settings = GroupSettings(on_demand_base=sim.scenario.on_demand_base)
        self.groups = groups
        for group in self.groups:
            group.start(sim)
            ManagedScaling(group, sim.scenario.target_capacity).start(sim)
        InstanceRefresh(*self.groups).start(sim)

    def on_signal(self, sim: Sim, signal: Signal) -> None:
        if isinstance(signal, SpotInterruption):
            inst = sim.instance(signal.instance_id)
            if inst is not None:
                sim.cluster.drain(inst)  # the agent itself, from IMDS: no API call of ours
        elif isinstance(signal, RebalanceRecommendation):
            for group in self.groups:
                group.recommended(sim, signal.instance_id)  # its members' only
        elif isinstance(signal, InstanceStateChange) and signal.state == "terminated":
            for group in self.groups:
                group.lost(sim, signal.instance_id)


class EcsScaler:
    """The homegrown tool the scaler replaces. Its capacity is merged Spot Fleets (type
    maintain, lowest price) that replace a reclaimed instance in another of their pools, scaled
    out from tasks that could not be placed. It drains an instance at its spot warning; when
    spot capacity is actually lost (not its own scale-ins or a refresh's terminations) it
    launches an on-demand instance in that AZ, and drains it back to spot once the fleets are
    whole again and the on-demand instance has run ``RETURN_AFTER`` seconds."""

    name = "ecs-scaler"

    def __init__(self) -> None:
        self.fleet = Group(GroupSettings(allocation="lowest-price", capacity_rebalance=False))
        self.on_demand: dict[str, float | None] = {}  # instance -> when it began draining

    def start(self, sim: Sim) -> None:
        self.fleet.start(sim)
        ManagedScaling(self.fleet, None).start(sim)
        InstanceRefresh(self.fleet).start(sim)
        sim.at(SCALE_OUT_PERIOD, self._return_to_spot, sim)

    def on_signal(self, sim: Sim, signal: Signal) -> None:
        if isinstance(signal, SpotInterruption):
            inst = sim.instance(signal.instance_id)
            if inst is not None:
                sim.drain([inst])
        elif isinstance(signal, InstanceStateChange) and signal.state == "terminated":
            lost = self.fleet.lost(sim, signal.instance_id)  # not a termination of its own
            if lost:
                self._replace(sim, signal.instance_id)

    def _replace(self, sim: Sim, instance_id: str) -> None:
        gone = sim.terminated.get(instance_id)
        if gone is None or gone.capacity != "spot":
            return
        for od in sim.pools.values():
            if od.capacity == "on-demand" and od.az == gone.az:
                for inst in sim.launch_instances([od.name], 1, "reclaimed"):
                    self.on_demand[inst.id] = None
                    return

    def _return_to_spot(self, sim: Sim) -> None:
        sim.at(sim.now + SCALE_OUT_PERIOD, self._return_to_spot, sim)
        fleet = self.fleet.live(sim)
        whole = len(fleet) >= self.fleet.desired and all(i.status == ACTIVE for i in fleet)
        for iid, since in sorted(self.on_demand.items()):
            inst = sim.instance(iid)
            if inst is None:
                del self.on_demand[iid]
            elif since is None:
                due = whole and sim.now - inst.launched_at >= RETURN_AFTER
                if due and not sim.unplaced() and sim.drain([inst]):
                    self.on_demand[iid] = sim.now
            elif not inst.tasks or sim.now - since >= REFRESH_DRAIN_TIMEOUT:
                del self.on_demand[iid]
                sim.terminate(inst)


POLICIES: dict[str, Callable[[], Policy]] = {
    "ecs-native": EcsNative,
    "ecs-scaler": EcsScaler,
}
