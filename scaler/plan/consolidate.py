"""Scale in by consolidation: give back instances whose tasks fit elsewhere.

ECS capacity providers only remove instances that run nothing, so a cluster that shrank after a
peak keeps many half-empty instances. This planner finds instances whose service tasks the rest
of the cluster can take, by placing each of them with the project's ECS placement model
(:mod:`scaler.ecs.placement`: the service's own strategies and constraints) on the room left
after the removals already chosen. Chosen instances are drained (ECS moves their tasks within
each service's deployment bounds) and terminated once empty.

Candidates, first to last: on-demand before spot (the saving is larger and spot is what the
cluster is for), then the fewest reserved CPU units (least to move), then the priciest. An
instance is kept when it is younger than ``min_age``,
runs a task that is not running steadily, saves less than ``min_saving`` an hour, or when
removing it would leave less than
``keep_free`` of the remaining CPU and memory free (so the next deployment's surge or a top-up
does not have to launch it again). A task moves only where its CPU use keeps the instance under
``max_load``: consolidation makes no hot spots, and waits while there are any.

ECS breaks placement ties at random; the plan predicts one draw, and checks the whole plan in
the order ECS replaces tasks (service by service). A draw that differs can leave a task without
room: it then stays on its draining instance (replacement first) until capacity arrives.

Budgets: at most ``max_disrupted`` of the ACTIVE instances (at least one) draining at once
(those already draining count), at most ``max_per_hour`` removals an hour, and nothing within
``quiet_after`` seconds of spot trouble (an interruption or a launch that found no capacity):
capacity is not given back while the market is taking it away. The controller's start opens a
quiet period too (``after_start``): a controller that just started has seen no trouble yet only
because it has not looked, and what it found running may be what the last storm or a rising
demand needs.

Two hooks make it safe beside the other planners: ``only`` limits the candidates (in production,
instances of the scaler's own groups without standalone tasks; the rest still take moved tasks),
and ``agrees`` vetoes a set of removals the capacity planner would answer with a launch (its
headroom or on-demand base would be short), so scale-in and top-up never undo each other
(:func:`scaler.plan.scale_in.capacity_agrees`)."""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from scaler.ecs.cluster import ACTIVE, RUNNING, Instance, ServiceState
from scaler.ecs.placement import Spread, choose, spread_fields, what_if
from scaler.plan.roll import disruption_budget

ON_DEMAND = "on-demand"


@dataclass(frozen=True)
class ConsolidationPolicy:
    max_disrupted: float = 0.1  # share of ACTIVE instances draining at once
    max_per_hour: int = 60
    min_age: float = 1800.0  # seconds since the instance registered
    min_saving: float = 0.01  # USD per hour
    keep_free: float = 0.15  # share of the remaining CPU and memory left free
    quiet_after: float = 7200.0  # seconds without spot trouble before capacity is given back
    after_start: float = 1800.0  # seconds after the controller's start before it gives back
    # only instances whose services ECS drains replacement first (minimumHealthyPercent 100 and
    # room under maximumPercent), so giving capacity back never dips a service
    dip_free: bool = True
    max_load: float = 0.8  # a moved task may not take its new instance's CPU above this
    # wait while any instance is above max_load (with CPU measured: rebalancing cools it
    # first); on reserved CPU a packed instance is not hot, it is what binpack does
    pause_when_hot: bool = True


@dataclass(frozen=True)
class Removal:
    instance: str
    pool: str
    capacity: str
    saving: float  # USD per hour
    tasks: int  # service tasks to move


@dataclass(frozen=True)
class ConsolidationPlan:
    remove: tuple[Removal, ...] = ()
    reasons: tuple[str, ...] = ()


def plan_consolidation(
    instances: Mapping[str, Instance],
    services: Mapping[str, ServiceState],
    now: float,
    policy: ConsolidationPolicy,
    draining: int = 0,
    removed_last_hour: int = 0,
    last_trouble: float | None = None,
    only: Collection[str] | None = None,
    agrees: Callable[[frozenset[str]], bool] | None = None,
    started: float | None = None,
) -> ConsolidationPlan:
    """The instances to drain and give back now, as plain values; nothing is changed.
    ``last_trouble``: the last spot interruption or failed launch in any pool; ``only``: the
    instances that may be removed (default: all); ``agrees``: whether a set of removals leaves
    capacity the capacity planner would not add to; ``started``: when the controller started
    (None: no quiet period for the start)."""
    quiet = paused(now, policy, last_trouble, started)
    if quiet is not None:
        return ConsolidationPlan((), (quiet,))
    active = [i for i in instances.values() if i.status == ACTIVE]
    budget = min(
        disruption_budget(policy.max_disrupted, len(active) + draining) - draining,
        policy.max_per_hour - removed_last_hour,
    )
    if budget <= 0 or len(active) < 2:
        return ConsolidationPlan()
    hot = sum(1 for i in active if i.cpu and i.used_cpu / i.cpu > policy.max_load)
    # cool those first (rebalancing): giving back the cool instances would not help
    if hot and policy.pause_when_hot:
        return ConsolidationPlan(
            (), (f"paused: {hot} instance(s) above {policy.max_load:.0%} CPU",)
        )
    room = _Room(active, services, policy.max_load)
    chosen: list[Removal] = []
    for inst in sorted(active, key=_order):
        if len(chosen) >= budget:
            break
        if (only is not None and inst.id not in only) or not _eligible(inst, now, policy):
            continue
        if policy.dip_free and not _dip_free(inst):
            continue
        if agrees is not None and not agrees(frozenset(r.instance for r in chosen) | {inst.id}):
            continue
        if room.remove(inst, policy.keep_free):
            tasks = sum(1 for t in inst.tasks.values() if t.state == RUNNING)
            chosen.append(Removal(inst.id, inst.pool, inst.capacity, inst.price, tasks))
    # ECS replaces the drained tasks service by service, not instance by instance: check the
    # whole plan in that order, and give up the last removals until it holds
    while chosen and not _feasible({r.instance for r in chosen}, active, services, policy):
        chosen.pop()
    reasons = tuple(
        f"consolidate: drain {r.instance} ({r.capacity}, {r.tasks} task(s) fit elsewhere, "
        f"saves ${r.saving:.3f}/h)"
        for r in chosen
    )
    return ConsolidationPlan(tuple(chosen), reasons)


def paused(
    now: float, policy: ConsolidationPolicy, last_trouble: float | None, started: float | None
) -> str | None:
    """Why consolidation waits whatever the cluster looks like (a quiet period), or None."""
    if last_trouble is not None and now - last_trouble < policy.quiet_after:
        return "paused: spot trouble within the quiet period"
    if started is not None and now - started < policy.after_start:
        return "paused: quiet period after the start"
    return None


def _order(inst: Instance) -> tuple[int, int, float, str]:
    reserved = inst.cpu - inst.free_cpu
    return (inst.capacity != ON_DEMAND, reserved, -inst.price, inst.id)


def _eligible(inst: Instance, now: float, policy: ConsolidationPolicy) -> bool:
    registered = inst.registered_at if inst.registered_at is not None else inst.launched_at
    if now - registered < policy.min_age or inst.price < policy.min_saving:
        return False
    return all(t.service.name and t.state == RUNNING for t in inst.tasks.values())


def _dip_free(inst: Instance) -> bool:
    for task in inst.tasks.values():
        spec = task.service
        if spec.min_healthy_percent < 100 or spec.max_percent <= 100:
            return False
    return True


def _feasible(
    gone: set[str],
    active: list[Instance],
    services: Mapping[str, ServiceState],
    policy: ConsolidationPolicy,
) -> bool:
    """Can every task on the ``gone`` instances be placed on the others, service by service?"""
    room = _Room(active, services, policy.max_load)
    room.gone = set(gone)
    targets = [i for i in active if i.id not in gone]
    moving = sorted(
        (t.service.name for i in active if i.id in gone for t in i.tasks.values()),
    )
    for name in moving:
        service = services.get(name)
        if service is None or not room._place(service, targets):
            return False
    return room._keeps_free(targets, policy.keep_free)


class _Room:
    """The free room the remaining instances would have, as removals are chosen."""

    def __init__(
        self, active: list[Instance], services: Mapping[str, ServiceState], max_load: float
    ) -> None:
        self.active = active
        self.services = services
        self.max_load = max_load
        self.free = {i.id: (i.free_cpu, i.free_mem) for i in active}
        self.used = {i.id: i.used_cpu for i in active}  # modelled (or measured) CPU in use
        self.gone: set[str] = set()
        self.placed: set[tuple[str, str]] = set()  # (service, instance) given a moved task
        self.moved_in: dict[str, list[ServiceState]] = {}  # instance -> tasks placed on it
        self.rng = random.Random(0)
        # each service's live tasks by spread field, as the cluster has them (moves predicted
        # here are not counted: the plan spreads as ECS would from what runs now)
        self.spreads: dict[str, Spread] = {}

    def remove(self, inst: Instance, keep_free: float) -> bool:
        """Remove ``inst`` if every task of it fits elsewhere and enough stays free."""
        targets = [i for i in self.active if i.id not in self.gone and i.id != inst.id]
        saved = (
            dict(self.free),
            dict(self.used),
            set(self.placed),
            {k: list(v) for k, v in self.moved_in.items()},
        )
        own = [self.services.get(t.service.name) for t in inst.tasks.values()]
        moving = [*own, *self.moved_in.pop(inst.id, [])]  # with what earlier removals put here
        for service in sorted(moving, key=lambda s: -s.spec.cpu if s else 0):
            if service is None or not self._place(service, targets):
                self.free, self.used, self.placed, self.moved_in = saved
                return False
        if not self._keeps_free(targets, keep_free):
            self.free, self.used, self.placed, self.moved_in = saved
            return False
        self.gone.add(inst.id)
        return True

    def _keeps_free(self, targets: list[Instance], keep_free: float) -> bool:
        cpu = sum(i.cpu for i in targets)
        mem = sum(i.memory for i in targets)
        free_cpu = sum(self.free[i.id][0] for i in targets)
        free_mem = sum(self.free[i.id][1] for i in targets)
        return free_cpu >= keep_free * cpu and free_mem >= keep_free * mem

    def _place(self, service: ServiceState, targets: list[Instance]) -> bool:
        spec = service.spec
        distinct = any(c.type == "distinctInstance" for c in spec.constraints)
        use = spec.cpu * spec.cpu_use
        allowed = [i for i in targets if not (distinct and (spec.name, i.id) in self.placed)]
        spread = self.spreads.get(spec.name)
        if spread is None:
            spread = self.spreads[spec.name] = Spread(service, spread_fields(spec))
        with what_if(allowed, self.free):
            dest = choose(allowed, service, spread, self.rng)
        if dest is None or (self.used[dest.id] + use) / dest.cpu > self.max_load:
            return False  # nowhere, or where ECS would put it the instance would run hot
        cpu, mem = self.free[dest.id]
        self.free[dest.id] = (cpu - spec.cpu, mem - spec.memory)
        self.used[dest.id] += use
        self.placed.add((spec.name, dest.id))
        self.moved_in.setdefault(dest.id, []).append(service)
        return True
