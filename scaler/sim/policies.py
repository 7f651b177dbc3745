"""Policies the simulator compares: the scaler's own decision code, and two baselines.

- ``scaler``: the real drain planner (:func:`scaler.plan.drain.decide`) on every signal, drains
  batched as the production drainer batches them; capacity scales out from placement demand.
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
from collections import Counter
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from scaler.ecs.cluster import ACTIVE, DRAINING, LAUNCHING, Instance, ServiceState
from scaler.ecs.placement import allows
from scaler.events import (
    InstanceStateChange,
    RebalanceRecommendation,
    Signal,
    SpotInterruption,
    instance_ids,
)
from scaler.model import ContainerInstance
from scaler.plan.capacity import (
    CapacityMemory,
    CapacityPolicy,
    CapacitySnapshot,
    NodeView,
    PoolView,
    ServiceView,
    plan_capacity,
    sources,
)
from scaler.plan.consolidate import ConsolidationPolicy, plan_consolidation
from scaler.plan.drain import Drain, DrainPolicy, GatedDrain, ReplaceThenDrain, decide
from scaler.plan.drain_budget import Member, Waiting, admit
from scaler.plan.rebalance import RebalancePolicy
from scaler.plan.roll import RollPolicy, RollState, machines, plan_roll, surges_before_drain
from scaler.plan.scale_in import capacity_agrees
from scaler.sim.engine import Policy, Sim, overflow_name
from scaler.sim.groups import Group, GroupSettings, ManagedScaling
from scaler.sim.rebalancing import SimRebalancer
from scaler.sim.scenario import Pool
from scaler.sim.settings_file import file_settings

if TYPE_CHECKING:
    from scaler.settings import Settings

SCALE_OUT_PERIOD = 60.0
WARMUP = 300.0
SCALE_IN_PERIOD = 300.0
SCALE_IN_AFTER = 900.0
DRAIN_WINDOW = 0.25
DRAIN_POLL = 10.0  # SCALER_DRAIN_POLL: how often held recommendation drains are looked at
DISRUPTION_BUDGET = 0.1  # SCALER_DISRUPTION_BUDGET's default
CAPACITY_PERIOD = 15.0
CONSOLIDATE_PERIOD = 300.0
ROLL_PERIOD = 60.0
SURGE_WAIT = 600.0  # longest wait for a service's extra tasks before draining anyway
REFRESH_MIN_HEALTHY = 0.9
REFRESH_WARMUP = 300.0
REFRESH_DRAIN_TIMEOUT = 900.0
MAX_REPLANS = 4
FORESIGHT = 900.0  # the oracle hears of every interruption this long ahead
RETURN_AFTER = 900.0  # ecs-scaler: an on-demand stand-in runs at least this long


class DemandScaling:
    """Capacity-provider-style scaling on spot pools: out from unplaced tasks, in when empty."""

    def __init__(self, warmup: float = WARMUP, scale_out: bool = True) -> None:
        self.warmup = warmup
        self.scale_out = scale_out
        self.empty_since: dict[str, float] = {}

    def start(self, sim: Sim) -> None:
        if self.scale_out:
            sim.at(SCALE_OUT_PERIOD, self._out, sim)
        sim.at(SCALE_IN_PERIOD, self._in, sim)

    def _out(self, sim: Sim) -> None:
        sim.at(sim.now + SCALE_OUT_PERIOD, self._out, sim)
        demand = sim.unplaced()
        if not demand or self._warming(sim):
            return
        # each capacity provider scales its own group for the tasks bound to it
        by_providers: dict[tuple[str, ...], list[ServiceState]] = {}
        for state in demand:
            by_providers.setdefault(state.spec.capacity_providers, []).append(state)
        for providers, states in sorted(by_providers.items()):
            pools = [p for p in spot_pools(sim) if allows(providers, p.capacity_provider or "")]
            if not pools:
                continue
            itype = sim.scenario.instance_types[pools[0].instance_type]
            cpu = sum(s.unplaced * s.spec.cpu for s in states)
            mem = sum(s.unplaced * s.spec.memory for s in states)
            needed = max(1, math.ceil(cpu / itype.cpu_units), math.ceil(mem / itype.memory_mib))
            launch_spread(sim, pools, needed)

    def _warming(self, sim: Sim) -> bool:
        return any(sim.now - i.launched_at < self.warmup for i in sim.cluster.instances.values())

    def _in(self, sim: Sim) -> None:
        sim.at(sim.now + SCALE_IN_PERIOD, self._in, sim)
        live = sim.cluster.instances
        for inst in list(live.values()):
            if inst.busy() or inst.status not in (ACTIVE, DRAINING):
                self.empty_since.pop(inst.id, None)
                continue
            since = self.empty_since.setdefault(inst.id, sim.now)
            if sim.now - since >= SCALE_IN_AFTER:
                self.empty_since.pop(inst.id, None)
                sim.terminate(inst)
        for gone in set(self.empty_since) - live.keys():
            del self.empty_since[gone]


def spot_pools(sim: Sim) -> list[Pool]:
    """Spot pools with capacity now, cheapest first."""
    pools = [p for p in sim.pools.values() if p.capacity == "spot" and sim.available(p)]
    return sorted(pools, key=lambda p: (p.price or 0.0, p.name))


def launch_spread(sim: Sim, pools: list[Pool], count: int) -> int:
    """Launch ``count`` instances balanced across AZs, cheapest pool per AZ first."""
    by_az: dict[str, list[Pool]] = {}
    for pool in pools:
        by_az.setdefault(pool.az, []).append(pool)
    azs = sorted(by_az)
    launched = 0
    for n in range(count):
        candidates = by_az[azs[n % len(azs)]]
        for pool in candidates:
            if sim.launch(pool.name, 1, "demand"):
                launched += 1
                break
    return launched


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


class ScalerPolicy:
    """The scaler's planners, fed the simulator's signals and snapshots.

    Drains follow :func:`scaler.plan.drain.decide` (batched as the production drainer batches
    them); capacity follows :func:`scaler.plan.capacity.plan_capacity`, run at once after every
    interruption signal and every ``CAPACITY_PERIOD`` seconds.

    A scenario's ``[settings]`` table configures it as the environment configures the scaler
    (:meth:`configure`): the drain, capacity, rebalancing, consolidation and roll policies, the
    disruption budget, the drain batch window and poll, the capacity interval. Without one it
    keeps the defaults above.

    With ``SCALER_REBALANCE_POLICY=replace-then-drain``, a recommended instance counts as
    leaving for the capacity planner (as the warning the production replacement source posts,
    ending ``SCALER_REPLACEMENT_TIMEOUT`` after it), so replacement room is launched; it is
    drained (through the drain gate) once a plan finds nothing missing or launching, or once
    the timeout has passed.
    """

    name = "scaler"

    def __init__(
        self,
        policy: DrainPolicy | None = None,
        capacity: CapacityPolicy | None = None,
        rebalance: RebalancePolicy | None = None,
        consolidation: ConsolidationPolicy | None = None,
        roll: RollPolicy | None = None,
    ) -> None:
        self.policy = policy or DrainPolicy()
        self.capacity = capacity or CapacityPolicy()
        self.rebalance = rebalance or RebalancePolicy()
        self.rebalancer = SimRebalancer(self.rebalance)
        self._planned_at_version = -1  # the cluster version of the last plan that did nothing
        self.memory = CapacityMemory()
        self.scaling = DemandScaling(scale_out=False)  # scale-in of empty instances only
        self.releasing: set[str] = set()
        self.consolidation = consolidation  # None: no scale-in beyond empty instances
        self.consolidated_at: list[float] = []
        self.roll = roll  # None: out-of-date instances are left alone
        self.roll_state = RollState()
        self.rolled_at: list[float] = []
        self.presurged: dict[str, tuple[float, dict[str, int]]] = {}  # instance -> (since, surges)
        self.unsurge: dict[str, dict[str, int]] = {}  # drained instance -> surges to set back
        self._batch: list[Instance] = []
        self.held: dict[str, Waiting] = {}  # recommendation drains waiting for budget and room
        self.recommended: set[str] = set()  # instances drained on a recommendation
        self.replacing: dict[str, float] = {}  # replace-then-drain: instance -> when asked
        self.leaving: dict[str, float] = {}  # instance -> end of its replacement notice
        self.budget = DISRUPTION_BUDGET
        self.drain_window = DRAIN_WINDOW
        self.drain_poll = DRAIN_POLL
        self.capacity_period = CAPACITY_PERIOD
        self.consolidate_period = CONSOLIDATE_PERIOD
        self.task_rebalance = True

    def configure(self, s: Settings) -> None:
        """Take the settings production takes (as ``scaler run`` builds its policies)."""
        from scaler.aws import consolidation, rebalancer
        from scaler.capacity.policy import policy_from

        self.policy = DrainPolicy.from_settings(s)
        self.capacity = policy_from(s)
        self.rebalance = rebalancer.policy_from(s)
        self.rebalancer = SimRebalancer(self.rebalance)
        self.task_rebalance = s.task_rebalance
        self.budget = s.disruption_budget
        self.drain_window = s.drain_batch_window
        self.drain_poll = s.drain_poll
        self.capacity_period = s.capacity_interval
        if self.consolidation is not None or s.consolidate:  # the variant, or switched on
            self.consolidation = consolidation.policy_from(s)
            self.consolidate_period = s.consolidate_interval
        if self.roll is not None or s.roll:
            self.roll = RollPolicy(s.disruption_budget, s.roll_per_hour)

    def settings_table(self, sim: Sim) -> Mapping[str, object]:
        """The ``SCALER_*`` settings this policy runs with: the scenario's table."""
        return sim.scenario.settings

    def start(self, sim: Sim) -> None:
        table = self.settings_table(sim)
        if table:
            self.configure(file_settings(table))
        self.scaling.start(sim)
        sim.at(self.capacity_period, self._tick, sim)
        if self.task_rebalance:
            self.rebalancer.start(sim)
        if self.consolidation is not None:
            sim.at(self.consolidate_period, self._consolidate, sim)
        if self.roll is not None:
            sim.at(ROLL_PERIOD, self._roll, sim)

    def on_signal(self, sim: Sim, signal: Signal) -> None:
        members = {
            iid: _view(inst)
            for iid in instance_ids(signal)
            if (inst := sim.instance(iid)) is not None
        }
        if not members:
            return
        if isinstance(signal, SpotInterruption | RebalanceRecommendation):
            for inst in (sim.instance(i) for i in members):
                if inst is not None and inst.capacity == "spot":
                    self.memory = self.memory.noting(inst.pool, sim.now)
        decision = decide(signal, members, self.policy, sim.wall())
        if decision.defer is not None:
            sim.at(sim.now + decision.defer, self.on_signal, sim, signal)
            return
        for action in decision.actions:
            if isinstance(action, Drain):
                self._queue_drain(sim, action.instance.ec2_instance_id)
            elif isinstance(action, GatedDrain):
                self._hold(sim, action.instance.ec2_instance_id)
            elif isinstance(action, ReplaceThenDrain):
                self._replace(sim, action.instance.ec2_instance_id, action.timeout)

    def _replace(self, sim: Sim, instance_id: str, timeout: float) -> None:
        """Ask for replacement room: the instance counts as leaving ``timeout`` from now; it is
        drained once a plan finds nothing missing or coming, or when the timeout ends."""
        if instance_id in self.replacing:
            return
        self.replacing[instance_id] = sim.now
        self.leaving[instance_id] = min(self.leaving.get(instance_id, math.inf), sim.now + timeout)
        sim.at(sim.now + timeout, self._replaced, sim, instance_id)
        self._plan(sim)

    def _replaced(self, sim: Sim, instance_id: str) -> None:
        """Replacement ready (or the timeout over): drain as a recommendation drain does."""
        if self.replacing.pop(instance_id, None) is not None:
            self._hold(sim, instance_id)

    def _hold(self, sim: Sim, instance_id: str) -> None:
        """A recommendation drain waits for the budget and room, as the drain gate has it."""
        inst = sim.instance(instance_id)
        if inst is None or instance_id in self.held:
            return
        used = (inst.cpu - inst.free_cpu, inst.memory - inst.free_mem)
        if not self.held:
            sim.at(sim.now + self.drain_poll, self._admit_held, sim)
        self.held[instance_id] = Waiting(instance_id, sim.now, max(0, used[0]), max(0, used[1]))
        self._admit(sim)

    def _admit_held(self, sim: Sim) -> None:
        self._admit(sim)
        if self.held:
            sim.at(sim.now + self.drain_poll, self._admit_held, sim)

    def _admit(self, sim: Sim) -> None:
        live = {i.id: i for i in sim.cluster.instances.values() if i.status in (ACTIVE, DRAINING)}
        for iid in [i for i in self.held if i not in live or live[i].status == DRAINING]:
            del self.held[iid]  # gone, or drained for another reason meanwhile
        members = [
            Member(
                i.id,
                i.status,
                i.free_cpu,
                i.free_mem,
                i.id in self.recommended and i.status == DRAINING and bool(i.tasks),
            )
            for i in live.values()
        ]
        result = admit(
            list(self.held.values()), members, self.budget, sim.now, self.policy.undrain_after
        )
        for iid in (*result.drain, *result.expired):
            del self.held[iid]
        for iid in result.drain:
            self.recommended.add(iid)
            self._queue_drain(sim, iid)

    def _queue_drain(self, sim: Sim, instance_id: str) -> None:
        inst = sim.instance(instance_id)
        if inst is None:
            return
        if not self._batch:
            sim.at(sim.now + self.drain_window, self._flush, sim)
        self._batch.append(inst)

    def _flush(self, sim: Sim) -> None:
        batch, self._batch = self._batch, []
        sim.drain([i for i in batch if i.id in sim.cluster.instances])
        self._plan(sim)  # top up at once, not at the next tick

    def _consolidate(self, sim: Sim) -> None:
        """Scale in: drain instances whose tasks fit elsewhere (terminated once empty)."""
        assert self.consolidation is not None
        sim.at(sim.now + self.consolidate_period, self._consolidate, sim)
        self.consolidated_at = [t for t in self.consolidated_at if sim.now - t < 3600]
        others_draining = any(
            i.status == DRAINING and i.id not in self.releasing
            for i in sim.cluster.instances.values()
        )
        if sim.doomed or sim.unplaced() or others_draining or sim.launching():
            return  # a disruption or a top-up is under way
        plan = plan_consolidation(
            sim.cluster.instances,
            sim.cluster.services,
            sim.now,
            self.consolidation,
            draining=len(self.releasing),
            removed_last_hour=len(self.consolidated_at),
            last_trouble=self.memory.last_spot_trouble(),
            agrees=capacity_agrees(self._snapshot(sim), self.memory, self.capacity),
        )
        for removal in plan.remove:
            inst = sim.instance(removal.instance)
            if inst is not None and sim.drain([inst]):
                self.releasing.add(inst.id)
                self.consolidated_at.append(sim.now)

    def _roll(self, sim: Sim) -> None:
        """Replace out-of-date instances: replacement first, then drain (terminated once empty)."""
        assert self.roll is not None
        sim.at(sim.now + ROLL_PERIOD, self._roll, sim)
        self.rolled_at = [t for t in self.rolled_at if sim.now - t < 3600]
        self._presurged(sim)
        plan = plan_roll(
            machines(sim.cluster.instances),
            {i.id for i in sim.out_of_date()},
            sim.now,
            self.roll,
            self.roll_state,
            ours=self.releasing | self.presurged.keys(),
            unplaced=sum(s.unplaced for s in sim.unplaced()),
            doomed=sim.doomed.keys(),
            replaced_last_hour=len(self.rolled_at),
            last_trouble=self.memory.last_spot_trouble(),
        )
        state = plan.state
        for iid in plan.drain:
            inst = sim.instance(iid)
            if inst is None:
                continue
            surges = surges_before_drain(inst, sim.cluster.services)
            for name, count in surges.items():
                sim.surge(name, count)
            self.presurged[iid] = (sim.now, surges)
            self.rolled_at.append(sim.now)
        self._presurged(sim)
        snap = self._snapshot(sim) if plan.launch else None
        for az, count in sorted(plan.launch.items()):
            for _ in range(count):
                if snap is None or not self._launch_in(sim, snap, az, "roll"):
                    state = state.failed(az)
        self.roll_state = state

    def _presurged(self, sim: Sim) -> None:
        """Drain each instance whose services have their extra tasks healthy (or waited
        ``SURGE_WAIT``); set the counts back once a drained instance holds none of their tasks."""
        for iid, (since, surges) in sorted(self.presurged.items()):
            inst = sim.instance(iid)
            ready = all(_steady(sim, name) for name in surges)
            if inst is not None and not ready and sim.now - since < SURGE_WAIT:
                continue
            del self.presurged[iid]
            if inst is not None and sim.drain([inst]):
                self.releasing.add(iid)
            self.unsurge[iid] = surges
        for iid, surges in sorted(self.unsurge.items()):
            inst = sim.instance(iid)
            for name in list(surges):
                if inst is None or not any(t.service.name == name for t in inst.tasks.values()):
                    sim.surge(name, -surges.pop(name))
            if not surges:
                del self.unsurge[iid]

    def _launch_in(self, sim: Sim, snap: CapacitySnapshot, az: str, why: str) -> bool:
        """One instance in ``az`` from the first pool there that has capacity (the order top-up
        uses); pools without capacity are remembered as top-up remembers them."""
        for pool in sources(snap, self.memory, self.capacity, az):
            if pool.az != az:
                continue
            if sim.launch(pool.name, 1, why):
                return True
            self.memory = self.memory.failing(pool.name, sim.now, pool.capacity == "spot")
        return False

    def _tick(self, sim: Sim) -> None:
        sim.at(sim.now + self.capacity_period, self._tick, sim)
        if self._calm(sim):
            return
        self._plan(sim)

    def _calm(self, sim: Sim) -> bool:
        """Nothing the capacity planner could act on (the common case: skip the snapshot)."""
        if sim.doomed or self.releasing or sim.on_demand or sim.unplaced() or self.leaving:
            return False
        overflow = any(s.spec.desired for s in sim.cluster.services.values() if s.spec.overflow_of)
        return not overflow and sim.version == self._planned_at_version

    def _plan(self, sim: Sim) -> None:
        """Plan and launch; pools that refused are marked and the plan made again at once, so
        on-demand follows in the next plan once every spot pool asked for a need refused."""
        self._planned_at_version = sim.version
        waiting = list(self.replacing)  # replacements asked before this plan
        for _ in range(MAX_REPLANS):  # a pool with no capacity is marked, then plan again
            snap = self._snapshot(sim)
            plan = plan_capacity(snap, self.memory, self.capacity)
            pools = {p.name: p for p in snap.pools}
            failed: list[str] = []
            for name, count in plan.launches(pools).items():
                asked = [name, *plan.alternatives.get(name, ())]  # one fleet request
                if sim.launch_any(asked, count, "top-up") is None:
                    failed += [p for p in asked if p not in failed]
            for pool in failed:  # InsufficientInstanceCapacity: avoid the pool for a while
                spot = sim.pools[pool].capacity == "spot"
                self.memory = self.memory.failing(pool, sim.now, spot)
            if not failed:
                break
        if waiting and not plan.launches(pools) and not sim.launching():
            for iid in waiting:  # nothing missing or coming: the replacement room is up
                self._replaced(sim, iid)
        for service, desired in plan.overflow_targets.items():
            sim.set_desired(service, desired)
        for service, node in plan.evacuate:
            inst = sim.instance(node)
            for task in [
                t for t in (inst.tasks.values() if inst else ()) if t.service.name == service
            ]:
                sim.stop_task(task, "evacuated")
        for node in plan.release:
            inst = sim.instance(node)
            if inst is not None and sim.drain([inst]):
                self.releasing.add(node)
        self._finish_releases(sim)

    def _snapshot(self, sim: Sim) -> CapacitySnapshot:
        """The capacity snapshot, with the instances whose replacement was asked for as leaving
        until their notice ends."""
        self.leaving = {i: end for i, end in self.leaving.items() if end > sim.now}
        return capacity_snapshot(sim, self.leaving)

    def _finish_releases(self, sim: Sim) -> None:
        for node in sorted(self.releasing):
            inst = sim.instance(node)
            if inst is None:
                self.releasing.discard(node)
            elif not inst.tasks:
                sim.terminate(inst)
                self.releasing.discard(node)


def capacity_snapshot(sim: Sim, leaving: Mapping[str, float] | None = None) -> CapacitySnapshot:
    """What the capacity planner sees of the simulated cluster: instances at their registered
    sizes, pools' instances at theirs less what the daemon services reserve on each, replica
    services only. ``leaving``: instances noticed to end then (besides the warned ones)."""
    live = [i for i in sim.cluster.instances.values() if i.status in (LAUNCHING, ACTIVE, DRAINING)]
    notices = {**(leaving or {}), **sim.doomed}
    nodes = tuple(
        NodeView(
            i.id,
            i.pool,
            i.az,
            i.capacity,
            "launching" if i.status == LAUNCHING else i.status,
            i.cpu,
            i.memory,
            i.free_cpu,
            i.free_mem,
            notices.get(i.id),
            len(i.tasks),
            i.provider,
        )
        for i in live
    )
    size = Counter(n.pool for n in nodes if not n.doomed)
    reserved = sim.scenario.ecs_reserved_memory_mib
    daemons = [s.spec for s in sim.daemons()]
    pools = tuple(
        PoolView(
            p.name,
            p.capacity,
            p.az,
            sim.scenario.instance_types[p.instance_type].cpu_units
            - sum(
                d.cpu for d in daemons if allows(d.capacity_providers, p.capacity_provider or "")
            ),
            sim.scenario.instance_types[p.instance_type].memory_mib
            - reserved
            - sum(
                d.memory for d in daemons if allows(d.capacity_providers, p.capacity_provider or "")
            ),
            p.price
            if p.price is not None
            else sim.scenario.instance_types[p.instance_type].on_demand_price,
            size[p.name],
            instance_type=p.instance_type,
            provider=p.capacity_provider or "",
        )
        for p in sim.scenario.pools
    )
    services = []
    for state in sim.cluster.services.values():
        spec = state.spec
        if spec.overflow_of is not None or spec.daemon:
            continue
        companion = sim.cluster.services.get(overflow_name(spec.name))
        services.append(
            ServiceView(
                spec.name,
                spec.desired,
                spec.cpu,
                spec.memory,
                Counter(t.instance.id for t in state.tasks.values() if t.instance is not None),
                state.unplaced,
                sum(t.healthy(sim.now) for t in state.tasks.values()),
                companion.spec.name if companion else None,
                companion.spec.desired if companion else 0,
                spec.capacity_providers,
            )
        )
    return CapacitySnapshot(sim.now, nodes, pools, tuple(services))


def _steady(sim: Sim, service: str) -> bool:
    state = sim.cluster.services.get(service)
    if state is None:
        return True
    return sum(t.healthy(sim.now) for t in state.tasks.values()) >= state.spec.desired


def _view(inst: Instance) -> ContainerInstance:
    return ContainerInstance(arn=f"arn:sim:{inst.id}", ec2_instance_id=inst.id, status=inst.status)


def consolidating() -> ScalerPolicy:
    """The scaler with scale-in by consolidation (:mod:`scaler.plan.consolidate`): simulated
    only, until ``scaler run`` carries consolidation out."""
    return ScalerPolicy(consolidation=ConsolidationPolicy())


def rolling() -> ScalerPolicy:
    """The scaler rolling out-of-date instances (:mod:`scaler.plan.roll`): simulated only,
    until ``scaler run`` carries rolls out."""
    return ScalerPolicy(roll=RollPolicy())


class Oracle(ScalerPolicy):
    """The scaler told of every spot interruption ``FORESIGHT`` seconds ahead, as a rebalance
    recommendation it acts on with replace-then-drain (the engine sends them: see
    :attr:`foresight`). Its figures bound what early warning can buy: no policy hears more."""

    name = "oracle"
    foresight = FORESIGHT

    def settings_table(self, sim: Sim) -> Mapping[str, object]:
        return {**sim.scenario.settings, "SCALER_REBALANCE_POLICY": "replace-then-drain"}


POLICIES: dict[str, Callable[[], Policy]] = {
    "scaler": ScalerPolicy,
    "scaler-consolidating": consolidating,
    "scaler-rolling": rolling,
    "oracle": Oracle,
    "ecs-native": EcsNative,
    "ecs-scaler": EcsScaler,
}
