"""The simulation loop: a virtual clock, an event queue, the spot market and the ECS model.

Everything that happens is an event at a virtual time, processed in order (ties in the order
they were scheduled), so a run is a pure function of the scenario, the policy and the seed:

- instances boot (``launching``) and register after a boot delay;
- tasks become RUNNING after their start delay and healthy after their health delay;
- the ECS scheduler reconciles the services something happened to, a few seconds after it
  happened (ECS's own reaction time);
- the spot market (:mod:`scaler.sim.market`: one per scenario and seed, whatever the policy
  launches) reclaims pools, everyday and in storms: it sends interruption warnings to the
  instances there, rebalance recommendations ahead of some of them (and some never followed by
  a warning), terminates them when the 2-minute notice ends, and refuses launches into pools
  short of capacity;
- AZ outages, capacity shortages, deployments, demand changes and new launch images happen when
  the scenario says.

A *policy* hears the signals AWS would send (the same :mod:`scaler.events` signal values) and acts
through :class:`Sim`'s small cloud interface (drain, launch, terminate), which counts API calls.
With a ``trace``, every market event, signal and action becomes a record (see :meth:`Sim.note`).
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

from scaler.ecs.cluster import (
    ACTIVE,
    DEACTIVATING,
    DRAINING,
    LAUNCHING,
    PENDING,
    RUNNING,
    Cluster,
    Instance,
    ServiceSpec,
    ServiceState,
    Task,
)
from scaler.ecs.scheduler import Scheduler, rebalances_azs
from scaler.events import (
    InstanceStateChange,
    RebalanceRecommendation,
    ServicePlacementFailure,
    Signal,
    SpotInterruption,
)
from scaler.sim.accounting import Accountant
from scaler.sim.advice import advising
from scaler.sim.market import FalseAlarm, Market, Reclaim, lead_range
from scaler.sim.scenario import DEFAULT_LEAD, Event, Pool, Scenario

EPOCH = datetime(2026, 1, 5, tzinfo=UTC)  # virtual time 0 as a wall-clock time for signals
NOTICE = 120.0
SCHEDULER_DELAY = 5.0  # seconds between a change and the ECS scheduler's reaction


class Policy(Protocol):
    name: str

    def start(self, sim: Sim) -> None: ...

    def on_signal(self, sim: Sim, signal: Signal) -> None: ...


class World(Protocol):
    """Something outside the model that mirrors it (the demo's local AWS)."""

    def new_instance_id(self, pool: Pool) -> str | None:
        """An id for an instance about to launch in ``pool`` (None: let the model pick one)."""
        ...

    def mirror(self, kind: str, obj: object) -> None:
        """Reflect one change of the model (launch, register, start, stop, terminate...)."""
        ...


class Sim:
    def __init__(
        self,
        scenario: Scenario,
        policy: Policy,
        seed: int,
        *,
        world: World | None = None,
        notice: float = NOTICE,
        signal_delay: float = 1.0,
        trace: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.scenario = scenario
        self.policy = policy
        self.world = world
        self.notice = notice
        self.signal_delay = signal_delay
        self.trace = trace
        self.rng = random.Random(seed)
        self.market = Market(scenario, seed)  # the same spot market for every policy
        self.reclaiming: dict[str, tuple[Reclaim, random.Random]] = {}  # pool -> its storm
        self.now = 0.0
        self.horizon = scenario.hours * 3600
        self._queue: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self.acct = Accountant(scenario.hot_threshold)
        self.cluster = Cluster(observer=self._observe)
        self.scheduler = Scheduler(self.cluster, random.Random(f"ecs:{seed}"), scenario.azs)
        self.pools = {p.name: p for p in scenario.pools}
        self.unavailable_until: dict[str, float] = {}
        self.doomed: dict[str, float] = {}  # instance id -> termination time
        self.terminated: dict[str, Instance] = {}  # instances gone, for policies that look back
        # (when, instance, its service tasks) for each the policy terminated or deregistered
        self.removals: list[tuple[float, str, int]] = []
        self.api_calls: Counter[str] = Counter()
        self.surged: dict[str, int] = {}  # desired count raised for surge moves, per service
        self._dirty: set[str] = set()
        self._tick_due = False
        self._event_ids = itertools.count(1)
        self.events_processed = 0
        self.version = 0  # rises at every change of the cluster: lets policies skip idle work
        self.on_demand = 0  # on-demand instances live (launching included)
        self.image = scenario.image  # what new instances launch from (a launch template version)
        # an oracle policy is told of every interruption this long ahead, as a recommendation
        self.foresight = float(getattr(policy, "foresight", 0.0))
        self.advising = advising(scenario.settings)  # SCALER_SIM_APPLY_ADVICE

    # -- the loop ---------------------------------------------------------------------------

    def at(self, t: float, fn: Callable[..., None], *args: Any) -> None:
        heapq.heappush(self._queue, (max(t, self.now), next(self._seq), fn, args))

    def run(self) -> dict[str, Any]:
        """Run the whole scenario; the figures of :mod:`scaler.sim.accounting` and API calls."""
        self.begin()
        self.step_until(self.horizon)
        return self.finish()

    def begin(self) -> None:
        self._initial_state()
        for index, event in enumerate(self.scenario.events):
            if event.type == "storm" and event.params.get("early_recommendations"):
                self._announce(event, index)
            elif event.type == "storm" and self.foresight > 0:
                self.at(event.at - self.foresight, self._foreseen_storm, event)
            else:
                self.at(event.at, self._scenario_event, event)
        for pool in self.market.spot:
            self._next_everyday(pool)
            self._next_false(pool)
        if self.advising is not None:
            self.advising.start(self)
        self.policy.start(self)

    def step_until(self, t: float) -> None:
        """Process every event due by ``t`` (the demo steps in real time)."""
        while self._queue and self._queue[0][0] <= min(t, self.horizon):
            when, _, fn, args = heapq.heappop(self._queue)
            self.acct.advance(when)
            self.now = when
            fn(*args)
            self.events_processed += 1
        if t > self.now:
            self.acct.advance(min(t, self.horizon))
            self.now = min(t, self.horizon)

    def next_due(self) -> float:
        """When the next event is due (the horizon, if none is before it)."""
        return min(self._queue[0][0], self.horizon) if self._queue else self.horizon

    def finish(self) -> dict[str, Any]:
        self.acct.advance(self.horizon)
        self.now = max(self.now, self.horizon)
        return {
            **self.acct.result(),
            "out_of_date_instances": len(self.out_of_date()),
            "api_calls": sum(self.api_calls.values()),
            "market_digest": self.market.digest(),
        }

    def note(self, what: str, **fields: Any) -> None:
        """A trace record: what happened (a market event, a signal, an action), at what virtual
        time, under which policy, with the instance, task, pool and reason it concerns."""
        if self.trace is not None:
            self.trace(
                {"t": round(self.now, 3), "policy": self.policy.name, "what": what, **fields}
            )

    def wall(self, t: float | None = None) -> datetime:
        return EPOCH + timedelta(seconds=self.now if t is None else t)

    # -- start ------------------------------------------------------------------------------

    def _initial_state(self) -> None:
        for pool in self.scenario.pools:
            for _ in range(pool.initial):
                self.cluster.register(self._launch_one(pool), 0.0)
        for spec in self.scenario.services:
            state = self.cluster.add_service(spec)
            counted = spec.overflow_of is None and not spec.daemon
            self.acct.set_desired(spec.group, spec.desired if counted else 0)
            if spec.fargate_overflow:
                self.cluster.add_service(self._companion(spec))
        for state in sorted(self.cluster.services.values(), key=lambda s: not s.spec.daemon):
            if state.spec.overflow_of is None:  # daemons first, as ECS places them
                self.scheduler.reconcile(state, 0.0)
        for state in self.cluster.services.values():
            for task in list(state.tasks.values()):
                task.running_at = task.healthy_at = 0.0  # the cluster starts warm
                self.cluster.mark_running(task)
                self.acct.task_healthy(task)

    def _companion(self, spec: ServiceSpec) -> ServiceSpec:
        """The Fargate overflow service of ``spec``: same task, desired 0 until a policy says."""
        lo, hi = self.scenario.fargate_start_delay
        return replace(
            spec,
            name=overflow_name(spec.name),
            desired=0,
            launch_type="FARGATE",
            overflow_of=spec.name,
            fargate_overflow=False,
            strategies=(),
            constraints=(),
            start_delay=(lo + hi) / 2,
        )

    # -- the cloud interface policies use -----------------------------------------------------

    def available(self, pool: Pool) -> bool:
        return self.unavailable_until.get(pool.name, -1.0) <= self.now

    def launch(self, pool_name: str, count: int, why: str = "") -> int:
        """Launch ``count`` instances in a pool; how many started (0: the pool has no capacity)."""
        return count if self.launch_any([pool_name], count, why) else 0

    def launch_any(self, pool_names: Sequence[str], count: int, why: str = "") -> str | None:
        """One EC2 Fleet request across pools (price-capacity-optimized): ``count`` instances
        in the first of them, in the order given, that has capacity. Which pool launched them;
        None if none could (or ``count`` is not positive)."""
        launched = self.launch_instances(pool_names, count, why)
        return launched[0].pool if launched else None

    def launch_instances(
        self, pool_names: Sequence[str], count: int, why: str = ""
    ) -> list[Instance]:
        """:meth:`launch_any`, answering with the instances launched (none: no pool could), for
        policies that keep track of what they own (an Auto Scaling group's members)."""
        self.api_calls["CreateFleet"] += 1
        pool = next((self.pools[n] for n in pool_names if self.available(self.pools[n])), None)
        self.note("launch", pools=list(pool_names), count=count, pool=pool and pool.name, why=why)
        if count <= 0 or pool is None:
            return []
        return self._boot(pool, count)

    def _boot(self, pool: Pool, count: int) -> list[Instance]:
        lo, hi = self.scenario.boot_delay
        launched = []
        for _ in range(count):
            inst = self._launch_one(pool)
            self.at(self.now + self.rng.uniform(lo, hi), self._register, inst)
            launched.append(inst)
        return launched

    def drain(self, instances: list[Instance], why: str = "") -> int:
        """Set instances DRAINING, 10 a call (as UpdateContainerInstancesState)."""
        self.api_calls["UpdateContainerInstancesState"] += math.ceil(len(instances) / 10)
        if self.trace is not None:
            for inst in instances:
                self.note("drain", instance=inst.id, pool=inst.pool, why=why)
        return sum(self.cluster.drain(i) for i in instances)

    def reactivate(self, inst: Instance) -> bool:
        """UpdateContainerInstancesState(ACTIVE) of a drained instance."""
        self.api_calls["UpdateContainerInstancesState"] += 1
        self.note("reactivate", instance=inst.id, pool=inst.pool)
        return self.cluster.activate(inst)

    def deregister(self, inst: Instance) -> None:
        """DeregisterContainerInstance(force): out of the cluster, its tasks stopped. The model
        has no EC2 instance outside ECS, so it leaves the world (and the bill) as well."""
        self.api_calls["DeregisterContainerInstance"] += 1
        self.note("deregister", instance=inst.id, pool=inst.pool)
        self._removing(inst)
        self._gone(inst)

    def set_desired(self, service: str, desired: int) -> None:
        """UpdateService(desiredCount), if it changes anything."""
        before = self.cluster.services[service].spec.desired
        if before != desired:
            self.api_calls["UpdateService"] += 1
            self.note("set_desired", service=service, before=before, after=desired)
            self.cluster.set_desired(service, desired)

    def surge(self, service: str, delta: int) -> None:
        """UpdateService(desiredCount +/- 1) for a surge move; availability is still measured
        against the desired count without the surge."""
        self.surged[service] = self.surged.get(service, 0) + delta
        self.set_desired(service, self.cluster.services[service].spec.desired + delta)

    def stop_task(self, task: Task, reason: str) -> None:
        self.api_calls["StopTask"] += 1
        where = task.instance.id if task.instance is not None else None
        self.note("stop_task", task=task.id, service=task.service.name, instance=where, why=reason)
        self.cluster.stop_task(task, self.now, reason)

    def terminate(self, inst: Instance, why: str = "") -> None:
        self.api_calls["TerminateInstances"] += 1
        self.note("terminate", instance=inst.id, pool=inst.pool, why=why)
        self._removing(inst)
        for task in [t for t in inst.tasks.values() if t.service.daemon]:
            self.cluster.stop_task(task, self.now, "instance-stopped")  # not interrupted work
        self._gone(inst)

    def _removing(self, inst: Instance) -> None:
        busy = [t for t in inst.tasks.values() if t.state in (PENDING, RUNNING)]
        self.removals.append((self.now, inst.id, sum(1 for t in busy if not t.service.daemon)))

    def instance(self, instance_id: str) -> Instance | None:
        return self.cluster.instances.get(instance_id)

    def unplaced(self) -> list[ServiceState]:
        return [s for s in self.cluster.services.values() if s.unplaced > 0]

    def launching(self) -> int:
        return sum(1 for i in self.cluster.instances.values() if i.status == LAUNCHING)

    def deliver(self, signal: Signal, delay: float) -> None:
        """Deliver a signal to the policy after ``delay`` seconds."""
        self.at(self.now + delay, self._hear, signal)

    def _hear(self, signal: Signal) -> None:
        self.note(
            "signal", kind=type(signal).__name__, instance=getattr(signal, "instance_id", None)
        )
        self.policy.on_signal(self, signal)

    def next_event_id(self) -> str:
        return f"sim-{next(self._event_ids)}"

    # -- instances ----------------------------------------------------------------------------

    def _launch_one(self, pool: Pool) -> Instance:
        itype = self.scenario.instance_types[pool.instance_type]
        price = pool.price if pool.price is not None else itype.on_demand_price
        external = self.world.new_instance_id(pool) if self.world else None
        inst = self.cluster.launch(
            pool.name,
            itype,
            pool.az,
            pool.capacity,
            price,
            self.now,
            id=external,
            image=self.image,
            provider=pool.capacity_provider or "",
            reserved_memory=self.scenario.ecs_reserved_memory_mib,
        )
        storm = self.reclaiming.get(pool.name)
        if storm is not None and self.now < storm[0].until:  # launched into a pool in a storm
            wait = self.scenario.boot_delay[1] + storm[1].uniform(0, storm[0].over)
            self.at(self.now + wait, self._warn, inst.id)
            if self.foresight > 0:
                self.at(self.now + max(0.0, wait - self.foresight), self._recommend, inst.id)
        return inst

    # -- the market ---------------------------------------------------------------------------

    def _next_everyday(self, pool: Pool, after: float | None = None) -> None:
        """Draw the pool's next everyday reclaim; handle it when its first recommendation may
        come (at its time, without recommendations)."""
        reclaim = self.market.next_everyday(
            pool, self.now if after is None else after, self.horizon
        )
        if reclaim is not None:
            ahead = max(reclaim.longest_lead, self.foresight)
            self.at(reclaim.at - ahead, self._everyday, pool, reclaim)

    def _everyday(self, pool: Pool, reclaim: Reclaim) -> None:
        self._reclaim(reclaim)
        self._next_everyday(pool, reclaim.at)

    def _next_false(self, pool: Pool, after: float | None = None) -> None:
        alarm = self.market.next_false(pool, self.now if after is None else after, self.horizon)
        if alarm is not None:
            self.at(alarm.at, self._false_alarm, pool, alarm)

    def _false_alarm(self, pool: Pool, alarm: FalseAlarm) -> None:
        """Rebalance recommendations never followed by a warning, to the instances in the pool
        the alarm's own stream picks (in a fixed order of them, like a reclaim's victims)."""
        self.note("false_alarm", pool=alarm.pool, share=round(alarm.share, 4))
        rng = self.market.stream("false", alarm.key)
        here = [
            i
            for i in self.cluster.instances.values()
            if i.pool == alarm.pool and i.id not in self.doomed
        ]
        for inst in sorted(here, key=lambda i: (i.launched_at, i.id)):
            if rng.random() < alarm.share:
                self._recommend(inst.id)
        self._next_false(pool, alarm.at)

    def _reclaim(self, reclaim: Reclaim) -> None:
        """Warn the instances the policy has in the pool: each with the reclaim's probability,
        within its ``over`` seconds; some get a rebalance recommendation ahead."""
        self.note("reclaim", pool=reclaim.pool, why=reclaim.cause, share=round(reclaim.share, 4))
        rng = self.market.victims(reclaim)
        here = [
            i
            for i in self.cluster.instances.values()
            if i.pool == reclaim.pool and i.id not in self.doomed
        ]
        order = sorted(here, key=lambda i: (i.launched_at, i.id))
        if reclaim.exact:
            rng.shuffle(order)
            chosen = order[: max(1, round(reclaim.share * len(order)))]
        else:
            chosen = [i for i in order if rng.random() < reclaim.share]
        for inst in chosen:
            offset, advised = rng.uniform(0, reclaim.over), rng.random()
            when = reclaim.at + offset  # handled ahead of its time when it recommends ahead
            self.at(when, self._warn, inst.id)
            lead = reclaim.lead(rng) if advised < reclaim.rebalance_share else None
            if lead is not None or self.foresight > 0:
                ahead = max(lead or 0.0, self.foresight)
                self.at(max(self.now, when - ahead), self._recommend, inst.id)
        if reclaim.until > reclaim.at:
            if reclaim.at <= self.now:
                self._reclaiming(reclaim, rng)
            else:
                self.at(reclaim.at, self._reclaiming, reclaim, rng)

    def _reclaiming(self, reclaim: Reclaim, rng: random.Random) -> None:
        """Spot launched into the pool until the reclaim's ``until`` is reclaimed as well."""
        self.reclaiming[reclaim.pool] = (reclaim, rng)

    def _register(self, inst: Instance) -> None:
        if inst.id in self.cluster.instances:
            self.cluster.register(inst, self.now)
            for state in self.daemons():  # ECS places daemon tasks at once, before replicas
                self.scheduler.reconcile(state, self.now)

    def daemons(self) -> list[ServiceState]:
        return [s for s in self.cluster.services.values() if s.spec.daemon]

    def _warn(self, instance_id: str) -> None:
        inst = self.instance(instance_id)
        if inst is None or instance_id in self.doomed:
            return
        self.doomed[instance_id] = self.now + self.notice
        self.note("warning", instance=instance_id, pool=inst.pool)
        self.at(self.now + self.notice, self._expire, instance_id)
        self.deliver(
            SpotInterruption(
                event_id=self.next_event_id(),
                time=self.wall(),
                instance_id=instance_id,
                action="terminate",
            ),
            self.signal_delay,
        )

    def _recommend(self, instance_id: str) -> None:
        if instance_id in self.cluster.instances:
            self.note("recommendation", instance=instance_id)
            self.deliver(
                RebalanceRecommendation(
                    event_id=self.next_event_id(), time=self.wall(), instance_id=instance_id
                ),
                self.signal_delay,
            )

    def _expire(self, instance_id: str) -> None:
        inst = self.instance(instance_id)
        if inst is not None:
            self._gone(inst)

    def _gone(self, inst: Instance) -> None:
        self.note("terminated", instance=inst.id, pool=inst.pool, tasks=len(inst.tasks))
        self.cluster.terminate(inst, self.now)
        self.terminated[inst.id] = inst
        self.doomed.pop(inst.id, None)
        self.deliver(
            InstanceStateChange(
                event_id=self.next_event_id(),
                time=self.wall(),
                instance_id=inst.id,
                state="terminated",
            ),
            self.signal_delay,
        )

    # -- scenario events ----------------------------------------------------------------------

    def _scenario_event(self, event: Event) -> None:
        handlers: dict[str, Callable[..., None]] = {
            "storm": self._storm,
            "az_outage": self._az_outage,
            "deploy": self._deploy,
            "add_instances": self._add_instances,
            "scale": self._scale,
            "new_image": self._new_image,
            "shortage": self._shortage,
        }
        self.note("scenario", kind=event.type, **event.params)
        handlers[event.type](**event.params)

    def _storm(
        self,
        share: float,
        over: float,
        rebalance_share: float = 0.0,
        rebalance_lead: float = 600.0,
        unavailable_for: float = 3600.0,
        all_spot_pools: bool = False,
        az: str | None = None,
        lasts: float = 0.0,
        pools: Sequence[str] | None = None,
        take: float = 1.0,
        early_recommendations: bool = False,
        *,
        at: float | None = None,
        key: str | None = None,
    ) -> None:
        """Reclaim ``share`` of the scenario's spot pools (of ``az``, of ``pools``), drawn by the
        market whatever the policy uses: the instances in them (``take`` of them, at least one)
        are warned within ``over`` seconds, and for ``lasts`` seconds spot launched into them is
        reclaimed too, within ``over`` seconds of registering. The reclaimed pools (every spot
        pool, with ``all_spot_pools``) take no launches for ``unavailable_for`` seconds.
        Announced (:meth:`_announce`), the storm is drawn now from the stream ``key`` names and
        strikes at ``at``."""
        strikes = self.now if at is None else at
        reclaims = self.market.storm(
            strikes,
            key=key,
            share=share,
            over=over,
            rebalance_share=rebalance_share,
            rebalance_lead=rebalance_lead,
            lasts=lasts,
            az=az,
            pools=pools,
            take=take,
        )
        if strikes <= self.now:
            self._storm_short(reclaims, unavailable_for, all_spot_pools)
        else:
            self.at(strikes, self._storm_short, reclaims, unavailable_for, all_spot_pools)
        for reclaim in reclaims:
            self._reclaim(reclaim)

    def _storm_short(
        self, reclaims: list[Reclaim], unavailable_for: float, all_spot_pools: bool
    ) -> None:
        short = {r.pool for r in reclaims}
        if all_spot_pools:
            short |= {p.name for p in self.market.spot}
        for name in sorted(short):
            self._short(name, unavailable_for, "storm")

    def _announce(self, event: Event, index: int) -> None:
        """A storm with ``early_recommendations``: drawn its longest lead ahead of its time,
        from a stream of its own (the scenario's ``index``-th event), so its recommendations
        may come before it strikes."""
        share = event.params.get("rebalance_share", 0.0)
        low, high = lead_range(event.params.get("rebalance_lead", DEFAULT_LEAD))
        longest = max(low, high or 0.0) if share > 0 else 0.0
        self.at(event.at - max(longest, self.foresight), self._early_storm, event, index)

    def _foreseen_storm(self, event: Event) -> None:
        """A storm an oracle hears of ahead: drawn now, from the stream it is drawn from at its
        time (the same market), striking at its time."""
        self.note("scenario", kind=event.type, strikes=event.at, **event.params)
        self._storm(**event.params, at=event.at)

    def _early_storm(self, event: Event, index: int) -> None:
        self.note("scenario", kind=event.type, strikes=event.at, **event.params)
        self._storm(**event.params, at=event.at, key=f"early:{index}")

    def _shortage(
        self,
        duration: float,
        az: str | None = None,
        instance_types: Sequence[str] | None = None,
        pools: Sequence[str] | None = None,
        capacity: str | None = None,
    ) -> None:
        """No launches for ``duration`` seconds into the pools of ``capacity`` (spot, on-demand
        or any; by default spot, any for named ``pools``) in ``az``, of ``instance_types``,
        among ``pools`` (each: all if not given)."""
        if capacity is None:
            capacity = "spot" if pools is None else "any"
        for pool in self.scenario.pools:
            if (
                capacity in ("any", pool.capacity)
                and (az is None or pool.az == az)
                and (instance_types is None or pool.instance_type in instance_types)
                and (pools is None or pool.name in pools)
            ):
                self._short(pool.name, duration, "shortage")

    def _short(self, pool: str, duration: float, cause: str) -> None:
        """No launches into ``pool`` for ``duration`` seconds."""
        if duration > 0:
            self.unavailable_until[pool] = max(
                self.unavailable_until.get(pool, -1.0), self.now + duration
            )
            self.market.shortage(pool, self.now, self.now + duration, cause)
            self.note("shortage", pool=pool, why=cause, until=round(self.now + duration, 3))

    def _az_outage(self, az: str, duration: float) -> None:
        for pool in self.pools.values():
            if pool.az == az:
                self._short(pool.name, duration, "az_outage")
        for inst in [i for i in self.cluster.instances.values() if i.az == az]:
            self._gone(inst)

    def _add_instances(self, share: float) -> None:
        """The operator adds ``share`` more instances (headroom for a deployment's surge), in the
        pools the cluster started in, round robin."""
        homes = sorted((p for p in self.pools.values() if p.initial), key=lambda p: (p.az, p.name))
        count = round(share * len(self.cluster.instances))
        for n in range(count):
            self.launch(homes[n % len(homes)].name, 1, "headroom")

    def _scale(
        self,
        factor: float | None = None,
        desired: int | None = None,
        services: Sequence[str] | None = None,
        service: str | None = None,
    ) -> None:
        """Demand changes (an application autoscaler at work): the desired count of every
        service (of ``services``, of ``service``) becomes ``factor`` times the scenario's, or
        ``desired``. Daemon services have no desired count to change."""
        named = _named(services, service)
        for spec in self.scenario.services:
            state = self.cluster.services.get(spec.name)
            if state is None or spec.overflow_of is not None or spec.daemon:
                continue
            if named is not None and spec.name not in named:
                continue
            count = desired if desired is not None else max(1, round(spec.desired * (factor or 1)))
            self.cluster.set_desired(spec.name, count + self.surged.get(spec.name, 0))

    def _new_image(self, image: str) -> None:
        """A new launch template version (a new AMI): instances launched from now on run it,
        and every instance running an older one is out of date. A policy with an
        ``on_new_image`` hears of it (the simulated AWS registers the template version)."""
        self.image = image
        hook = getattr(self.policy, "on_new_image", None)
        if hook is not None:
            hook(self, image)

    def out_of_date(self) -> list[Instance]:
        return [i for i in self.cluster.instances.values() if i.image != self.image]

    def _deploy(
        self,
        share: float | None = None,
        services: Sequence[str] | None = None,
        service: str | None = None,
    ) -> None:
        """A new revision of ``share`` of the services (by name order), or of those named."""
        named = _named(services, service)
        every = sorted(self.cluster.services.values(), key=lambda s: s.spec.name)
        if named is not None:
            chosen = [s for s in every if s.spec.name in named]
        else:
            chosen = every[: max(1, round((share or 0.0) * len(every)))]
        for state in chosen:
            if self.advising is not None:
                self.advising.deploy(state, self.now)
            state.revision += 1
            self._mark(state.spec.name)

    # -- ECS reacting ---------------------------------------------------------------------------

    def _mark(self, service: str) -> None:
        self._dirty.add(service)
        if not self._tick_due:
            self._tick_due = True
            self.at(self.now + SCHEDULER_DELAY, self._reconcile)

    def _reconcile(self) -> None:
        self._tick_due = False
        dirty, self._dirty = sorted(self._dirty), set()
        for name in dirty:
            state = self.cluster.services.get(name)
            if state is not None:
                placed_all = state.unplaced == 0
                self.scheduler.reconcile(state, self.now)
                if placed_all and state.unplaced > 0:
                    self._placement_failed(state)

    def _placement_failed(self, state: ServiceState) -> None:
        """ECS tells of a service's task it could not place (an ``ECS Service Action`` event),
        when a service that had every task placed has one it cannot place. The engine knows
        services by name: the world that publishes the event names the cluster."""
        spec = state.spec
        cpu = any(i.free_cpu >= spec.cpu for i in self.cluster.active_instances())
        signal = ServicePlacementFailure(
            event_id=self.next_event_id(),
            time=self.wall(),
            cluster_arn="",
            service_arn=spec.name,
            reason="RESOURCE:MEMORY" if cpu else "RESOURCE:CPU",
        )
        self.deliver(signal, 0.0)

    def _disruption(self) -> None:
        live = [i for i in self.cluster.instances.values() if i.status in (ACTIVE, DRAINING)]
        chosen = sum(1 for i in live if i.status == DRAINING and i.id not in self.doomed)
        self.acct.disrupted(chosen, len(live))

    def _left(self, task: Task) -> None:
        """A task left its instance (or began to): a DRAINING instance with no replica task
        left stops its daemon tasks (ECS stops them last)."""
        inst = task.instance
        if inst is not None and inst.status == DRAINING and not inst.replicas():
            for name in {t.service.name for t in inst.tasks.values()}:
                self._mark(name)

    def _task_running(self, task: Task) -> None:
        self.cluster.mark_running(task)

    def _task_healthy(self, task: Task) -> None:
        if task.state == RUNNING:
            self.acct.task_healthy(task)
            self._mark(task.service.name)

    def _observe(self, kind: str, obj: object) -> None:
        self.version += 1
        on_demand = isinstance(obj, Instance) and obj.capacity == "on-demand"
        if on_demand and kind in ("launch", "terminate"):
            self.on_demand += 1 if kind == "launch" else -1
        self._account(kind, obj)
        if self.world is not None:
            self.world.mirror(kind, obj)

    def _account(self, kind: str, obj: object) -> None:
        if kind == "start":
            assert isinstance(obj, Task)
            self.acct.task_started(obj)
            self.at(obj.running_at, self._task_running, obj)
            self.at(obj.healthy_at, self._task_healthy, obj)
        elif kind == "running":
            assert isinstance(obj, Task)
            if obj.instance is not None:
                self.acct.load_changed(obj.instance)
        elif kind == "stop":
            task, reason = cast(tuple[Task, str], obj)
            self.acct.task_gone(task, reason)
            if task.instance is not None:
                self.acct.load_changed(task.instance)
            self._mark(task.service.name)
            if task.state == DEACTIVATING:
                self.at(
                    self.now + task.service.deregistration_delay, self.cluster.finish_stop, task
                )
            self._left(task)
        elif kind == "stopped":
            assert isinstance(obj, Task)
            self._left(obj)
        elif kind == "launch":
            assert isinstance(obj, Instance)
            self.acct.instance_up(obj)
        elif kind == "register":
            assert isinstance(obj, Instance)
            self.acct.instance_registered(obj)
            for state in self.cluster.services.values():
                if state.unplaced > 0 or rebalances_azs(state.spec):
                    self._mark(state.spec.name)
        elif kind == "drain":
            assert isinstance(obj, Instance)
            for name in {t.service.name for t in obj.tasks.values()}:
                self._mark(name)
            self._disruption()
        elif kind == "terminate":
            assert isinstance(obj, Instance)
            self.acct.instance_down(obj)
        elif kind == "desired":
            _, new = cast(tuple[ServiceSpec, ServiceSpec], obj)
            if new.overflow_of is None:  # a companion's count is not its service's demand
                self.acct.set_desired(new.group, new.desired - self.surged.get(new.name, 0))
            self._mark(new.name)


def _named(services: Sequence[str] | None, service: str | None) -> set[str] | None:
    """The services an event names (None: it names none, so it is about all of them)."""
    if services is None and service is None:
        return None
    return {*(services or ()), *((service,) if service else ())}


def overflow_name(service: str) -> str:
    return f"{service}-overflow"


def active_spot(sim: Sim) -> list[Instance]:
    return [
        i for i in sim.cluster.instances.values() if i.capacity == "spot" and i.status == ACTIVE
    ]
