"""Move running tasks off CPU-hot instances, fewest moves first, never below minimum health.

ECS never moves a running task. A *move* here is one of two things:

- a **stop**: stop one task; the service scheduler starts its replacement wherever the service's
  own placement strategy puts it. Allowed when the service stays at or above
  ``minimumHealthyPercent`` without that task.
- a **surge** (the replacement first, as ECS itself replaces tasks on a draining instance): raise
  the service's desired count by one, wait until the extra task is healthy, then stop the hot task
  and set the desired count back. For services that may not lose a task even briefly
  (``minimumHealthyPercent`` 100, the ECS default), within ``maximumPercent``.

A move is only worth making when the replacement will land somewhere cooler, and
:func:`plan_moves` predicts that with the project's ECS placement model
(:mod:`scaler.ecs.placement`) on a copy of the cluster's state: for a stop, with the task's room
given back to its instance; for a surge, with the task still in place.

**Detection** (as the Kubernetes descheduler's LowNodeUtilization does): an instance is *hot*
when its CPU load is above ``hot_threshold``, or above the cluster mean by more than
``deviation``.

**Planning**, hottest instance first: take its tasks, heaviest first; keep a move only if the
predicted destination ends up cooler than the source was (the peak goes down) and not hot itself;
stop when the instance is no longer hot or the budget is spent. Greedy, so the number of moves is
small: each move takes the most CPU it can off the hottest instance.

**Safety**, every rule a hard filter: at most ``max_moves`` per plan and ``max_moves_per_hour``;
at most one move per service at a time (none while a previous move's replacement is not yet
healthy); never a service mid-deployment (two revisions, or tasks leaving DRAINING instances);
never a task that would take its service below ``minimumHealthyPercent`` (a surge never does);
never a task younger than ``min_task_age`` (let new tasks settle); after a move, none of the
service's tasks started since (its replacement) for ``task_cooldown`` seconds (no ping-pong).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from scaler.ecs.cluster import ACTIVE, RUNNING, Instance, ServiceState, Task
from scaler.ecs.placement import Spread, likely, spread_fields


@dataclass(frozen=True)
class RebalancePolicy:
    hot_threshold: float = 0.8
    deviation: float = 0.3
    max_moves: int = 10
    max_moves_per_hour: int = 60
    task_cooldown: float = 1800.0  # after a move, the service's newer tasks stay put this long
    min_task_age: float = 300.0
    surge: bool = True  # replacement first when a stop would break minimumHealthyPercent


@dataclass(frozen=True)
class Move:
    task: str
    service: str
    source: str
    destination: str  # where ECS is predicted to start the replacement
    cpu: float  # modelled CPU the move takes off the source
    surge: bool = False  # start the replacement first (desired + 1), then stop the task


@dataclass(frozen=True)
class RebalancePlan:
    moves: tuple[Move, ...] = ()
    hot: tuple[str, ...] = ()
    imbalance: float = 0.0  # max load - mean load, before the moves
    reasons: tuple[str, ...] = ()


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
    last_moved: float | None = None,
) -> str | None:
    """How this task may be moved now without breaking a safety rule: ``"stop"``, ``"surge"``
    or None. ``last_moved`` is when the scaler last moved one of the service's tasks."""
    spec = service.spec
    tasks = list(service.tasks.values())
    if not task.healthy(now) or now - task.created_at < policy.min_task_age:
        return None
    recent = last_moved is not None and now - last_moved < policy.task_cooldown
    if recent and task.created_at >= (last_moved or 0.0):
        return None  # the replacement of a recent move (or newer): no ping-pong
    if any(t.revision != service.revision for t in tasks):
        return None  # mid-deployment
    if any(t.instance is not None and t.instance.status != ACTIVE for t in tasks):
        return None  # ECS is moving its tasks off a draining instance already
    if any(not t.healthy(now) for t in tasks) or len(tasks) != spec.desired:
        return None  # a previous move (or a replacement) is still under way
    if len(tasks) - 1 >= math.ceil(spec.desired * spec.min_healthy_percent / 100):
        return STOP
    if policy.surge and len(tasks) + 1 <= spec.desired * spec.max_percent // 100:
        return SURGE
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
    last_moved: Mapping[str, float] | None = None,
) -> RebalancePlan:
    """The moves that cool the hot instances, as plain values; ``instances`` is not changed.
    ``last_moved``: when the scaler last moved a task of each service (for the cooldown)."""
    rng = random.Random(seed)
    active = [i for i in instances.values() if i.status == ACTIVE]
    if not active:
        return RebalancePlan()
    loads = {i.id: load(i) for i in active}
    mean = sum(loads.values()) / len(loads)
    hot = hot_instances(active, policy)
    budget = min(policy.max_moves, policy.max_moves_per_hour - moves_last_hour)
    limit = min(policy.hot_threshold, mean + policy.deviation)  # what counts as hot
    plan = _Planning(active, loads, services, now, policy, rng, limit)
    plan.last_moved = dict(last_moved or {})
    for inst in hot:
        if budget <= 0:
            break
        budget -= plan.cool(inst, budget)
    imbalance = max(loads.values()) - mean
    return RebalancePlan(
        tuple(plan.moves), tuple(i.id for i in hot), round(imbalance, 4), tuple(plan.reasons)
    )


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
        self.last_moved: dict[str, float] = {}

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
        kind = move_kind(
            task, service, self.now, self.policy, self.last_moved.get(task.service.name)
        )
        if kind is None:
            return None
        options = self._predict(task, source, service, surge=kind == SURGE)
        if not options or source in options:
            return None  # nowhere to go, or the replacement may land back
        cpu = task.service.cpu * task.service.cpu_use
        after = [self.loads[d.id] + cpu / d.cpu for d in options]
        if max(after) >= self.loads[source.id] or sum(after) / len(after) > self.limit:
            return None  # the peak would not go down wherever ECS puts it
        destination = self.rng.choice(options)
        return Move(task.id, task.service.name, source.id, destination.id, cpu, kind == SURGE)

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
        saved = {i.id: (i.free_cpu, i.free_mem) for i in self.active}
        try:
            for i in self.active:
                i.free_cpu, i.free_mem = self.free[i.id]
            adjust()
            spread = Spread(service, spread_fields(service.spec))
            return likely(self.active, service, spread)
        finally:
            for i in self.active:
                i.free_cpu, i.free_mem = saved[i.id]

    def _apply(self, move: Move, task: Task) -> None:
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
