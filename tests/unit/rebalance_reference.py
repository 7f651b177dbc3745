"""The task-rebalance planner as it was before its speed-up, kept as the reference that
:mod:`scaler.plan.rebalance` must agree with move for move (``test_plan_rebalance_reference``).
Not used by the scaler itself."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

from scaler.ecs.cluster import ACTIVE, DRAINING, RUNNING, STOPPED, Instance, ServiceState, Task
from scaler.ecs.placement import Spread, likely, spread_fields, what_if
from scaler.ecs.scheduler import rebalances_azs
from scaler.plan.cooldown import Cooling
from scaler.plan.rebalance import Move, RebalancePlan, RebalancePolicy

NO_COOLING = Cooling()


def load(inst: Instance) -> float:
    return inst.used_cpu / inst.cpu if inst.cpu else 0.0


def hot_instances(instances: Iterable[Instance], policy: RebalancePolicy) -> list[Instance]:
    """ACTIVE instances above the threshold or the mean plus the deviation, hottest first."""
    active = [i for i in instances if i.status == ACTIVE]
    if not active:
        return []
    mean = sum(load(i) for i in active) / len(active)
    limit = min(policy.hot_threshold, mean + policy.deviation)
    return sorted((i for i in active if load(i) > limit), key=lambda i: (-load(i), i.id))


STOP, SURGE = "stop", "surge"


def move_kind(
    task: Task,
    service: ServiceState,
    now: float,
    policy: RebalancePolicy,
    cooling: Cooling = NO_COOLING,
) -> str | None:
    """How this task may be moved now without breaking a safety rule: ``"stop"``, ``"surge"``
    or None. ``cooling``: the replacements of the scaler's recent moves."""
    spec = service.spec
    tasks = list(service.tasks.values())
    if not task.healthy(now) or now - task.created_at < policy.min_task_age:
        return None
    if cooling.holds(spec.name, task.id, task.created_at):
        return None  # the replacement of a recent move: no ping-pong
    if any(t.revision != service.revision for t in tasks):
        return None  # mid-deployment
    if any(t.instance is not None and t.instance.status != ACTIVE for t in tasks):
        return None  # ECS is moving its tasks off a draining instance already
    if any(not t.healthy(now) for t in tasks) or len(tasks) != spec.desired:
        return None  # a previous move (or a replacement) is still under way
    if policy.surge and len(tasks) + 1 <= spec.desired * spec.max_percent // 100:
        return SURGE  # replacement first: the service never runs short, even briefly
    if len(tasks) - 1 >= math.ceil(spec.desired * spec.min_healthy_percent / 100):
        return STOP
    return None


def movable(task: Task, service: ServiceState, now: float, policy: RebalancePolicy) -> bool:
    """May this task be moved now (stopped, or replaced first) without breaking a safety rule?"""
    return move_kind(task, service, now, policy) is not None


def plan_moves(
    instances: Mapping[str, Instance],
    services: Mapping[str, ServiceState],
    now: float,
    policy: RebalancePolicy,
    moves_last_hour: int = 0,
    seed: int = 0,
    cooling: Cooling = NO_COOLING,
) -> RebalancePlan:
    """The moves that cool the hot instances, as plain values; ``instances`` is not changed.
    ``cooling``: the replacements of recent moves (:meth:`MoveHistory.cooling`) stay put."""
    rng = random.Random(seed)
    active = [i for i in instances.values() if i.status == ACTIVE]
    if not active:
        return RebalancePlan()
    loads = {i.id: load(i) for i in active}
    mean = sum(loads.values()) / len(loads)
    hot = hot_instances(active, policy)
    imbalance = round(max(loads.values()) - mean, 4)
    pause = _disrupted(instances.values(), services.values())
    if pause:
        return RebalancePlan((), tuple(i.id for i in hot), imbalance, (pause,))
    budget = min(policy.max_moves, policy.max_moves_per_hour - moves_last_hour)
    limit = min(policy.hot_threshold, mean + policy.deviation)  # what counts as hot
    plan = _Planning(active, loads, services, now, policy, rng, limit)
    plan.cooling = cooling
    for inst in hot:
        if budget <= 0:
            break
        budget -= plan.cool(inst, budget)
    return RebalancePlan(
        tuple(plan.moves), tuple(i.id for i in hot), imbalance, tuple(plan.reasons)
    )


def _disrupted(instances: Iterable[Instance], services: Iterable[ServiceState]) -> str:
    """Why rebalancing waits: capacity is leaving or short (a move would compete with ECS's own
    replacements for room and for the services' health budget)."""
    draining = sum(1 for i in instances if i.status == DRAINING)
    if draining:
        return f"paused: {draining} instance(s) draining"
    short = sorted(s.spec.name for s in services if s.unplaced > 0)
    if short:
        return f"paused: tasks that could not be placed ({', '.join(short[:3])})"
    return ""


class _Planning:
    """Scratch state: predicted loads and free room as moves are chosen."""

    def __init__(
        self,
        active: list[Instance],
        loads: dict[str, float],
        services: Mapping[str, ServiceState],
        now: float,
        policy: RebalancePolicy,
        rng: random.Random,
        limit: float,
    ) -> None:
        self.limit = limit
        self.active = active
        self.loads = dict(loads)
        self.services = services
        self.now = now
        self.policy = policy
        self.rng = rng
        self.moves: list[Move] = []
        self.reasons: list[str] = []
        self.moved_services: set[str] = set()
        self.free = {i.id: (i.free_cpu, i.free_mem) for i in active}
        self.cooling = NO_COOLING
        # memos, valid until the next move changes the predicted room
        self.rejected: set[tuple[str, str]] = set()
        self.predictions = 0
        self.surge_options: dict[str, list[Instance]] = {}
        self.azs = {i.az for i in active}

    def cool(self, inst: Instance, budget: int) -> int:
        made = 0
        tasks = sorted(
            (t for t in inst.tasks.values() if t.state == RUNNING),
            key=lambda t: (-t.service.cpu * t.service.cpu_use, t.id),
        )
        for task in tasks:
            if made >= budget or self.loads[inst.id] <= self.limit:
                break
            move = self._try(task, inst)
            if move is not None:
                self._apply(move, task)
                made += 1
        return made

    def _try(self, task: Task, source: Instance) -> Move | None:
        service = self.services.get(task.service.name)
        if service is None or task.service.name in self.moved_services:
            return None
        kind = move_kind(task, service, self.now, self.policy, self.cooling)
        if kind is None:
            return None
        name = service.spec.name
        if (name, source.id) in self.rejected:
            return None  # another task of the service, in the same place: the same answer
        if kind == SURGE and name in self.surge_options:
            options = self.surge_options[name]  # a surge's placement does not depend on the source
        elif self.predictions >= self.policy.max_predictions:
            return None  # out of planning time: the hottest instances came first
        else:
            self.predictions += 1
            options = self._predict(task, source, service, surge=kind == SURGE)
            if kind == SURGE:
                self.surge_options[name] = options
        move = self._judge(task, source, service, options, kind)
        if move is None:
            self.rejected.add((name, source.id))
        return move

    def _judge(
        self,
        task: Task,
        source: Instance,
        service: ServiceState,
        options: list[Instance],
        kind: str,
    ) -> Move | None:
        if not options:
            return None
        if rebalances_azs(service.spec) and not self._azs_stay_balanced(service, source, options):
            return None  # ECS's AZ rebalancing would move a task back
        cpu = task.service.cpu * task.service.cpu_use
        before = self.loads[source.id]
        most = self._heat(before) - self._heat(before - cpu / source.cpu)  # all it could remove
        if self._gain(source, options, cpu) <= self.policy.min_gain * most:
            return None  # no surer cooling wherever ECS puts the replacement
        destination = self.rng.choice([d for d in options if d is not source])
        return Move(task.id, task.service.name, source.id, destination.id, cpu, kind == SURGE)

    def _azs_stay_balanced(
        self, service: ServiceState, source: Instance, options: list[Instance]
    ) -> bool:
        """Wherever the replacement lands, are the service's AZs no further apart than before
        (or than one task)? ECS rebalances AZ-spread services beyond that, and would move a
        task back."""
        counts = Counter({az: 0 for az in self.azs})
        counts.update(t.az for t in service.tasks.values() if t.state != STOPPED)
        allowed = max(1, max(counts.values()) - min(counts.values()))
        counts[source.az] -= 1
        for dest in options:
            counts[dest.az] += 1
            spread = max(counts.values()) - min(counts.values())
            counts[dest.az] -= 1
            if spread > allowed:
                return False
        return True

    def _gain(self, source: Instance, options: list[Instance], cpu: float) -> float:
        """How much heat (:meth:`_heat`, summed over instances) the move removes,
        on average over the places ECS may put the replacement (back on the source: none)."""
        before = self.loads[source.id]
        gain = self._heat(before) - self._heat(before - cpu / source.cpu)
        total = sum(
            gain - self._heat(self.loads[d.id] + cpu / d.cpu) + self._heat(self.loads[d.id])
            for d in options
            if d is not source
        )
        return total / len(options)

    def _heat(self, load: float) -> float:
        """The square of the load above the hot limit: convex, so moving load from a hotter
        instance to a less hot one always removes heat (the peak comes down), and a move that
        raises the peak never does."""
        return max(0.0, load - self.limit) ** 2

    def _predict(
        self, task: Task, source: Instance, service: ServiceState, surge: bool
    ) -> list[Instance]:
        """Where ECS may start the replacement (the placement model on the predicted free room;
        every instance tied for first place): once ``task`` stopped, with its room back on the
        source; for a surge, beside it."""
        if surge:
            return self._place(service, lambda: None)
        spec = task.service

        def stopped() -> None:
            source.free_cpu += spec.cpu
            source.free_mem += spec.memory

        stopped_state = task.state
        task.state = "STOPPED"  # not counted by spread or distinctInstance
        try:
            return self._place(service, stopped)
        finally:
            task.state = stopped_state

    def _place(self, service: ServiceState, adjust: Callable[[], None]) -> list[Instance]:
        with what_if(self.active, self.free):
            adjust()
            return likely(self.active, service, Spread(service, spread_fields(service.spec)))

    def _apply(self, move: Move, task: Task) -> None:
        self.rejected.clear()
        self.surge_options.clear()
        self.moves.append(move)
        self.moved_services.add(move.service)
        src = next(i for i in self.active if i.id == move.source)
        dst = next(i for i in self.active if i.id == move.destination)
        self.loads[src.id] -= move.cpu / src.cpu
        self.loads[dst.id] += move.cpu / dst.cpu
        fc, fm = self.free[dst.id]
        self.free[dst.id] = (fc - task.service.cpu, fm - task.service.memory)
        how = "surge-move" if move.surge else "move"
        self.reasons.append(
            f"{how} {move.service} task off {move.source} ({self._pct(src, move)}) to "
            f"{move.destination}"
        )

    def _pct(self, src: Instance, move: Move) -> str:
        return f"{100 * (self.loads[src.id] + move.cpu / src.cpu):.0f}% CPU"
