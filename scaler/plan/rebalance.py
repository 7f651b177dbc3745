"""Move running tasks off CPU-hot instances, fewest moves first, never below minimum health.

ECS never moves a running task. A *move* here is: stop one task; the service scheduler starts its
replacement wherever the service's own placement strategy puts it. So a move is only worth making
when the replacement will land somewhere cooler, and :func:`plan_moves` predicts that with the
project's ECS placement model (:mod:`scaler.ecs.placement`) on a copy of the cluster's state.

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
never a task that would take its service below ``minimumHealthyPercent``; never a task younger
than ``task_cooldown`` (a replacement is not moved again: no ping-pong).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from scaler.ecs.cluster import ACTIVE, RUNNING, Instance, ServiceState, Task
from scaler.ecs.placement import Spread, choose, spread_fields


@dataclass(frozen=True)
class RebalancePolicy:
    hot_threshold: float = 0.8
    deviation: float = 0.3
    max_moves: int = 10
    max_moves_per_hour: int = 60
    task_cooldown: float = 1800.0


@dataclass(frozen=True)
class Move:
    task: str
    service: str
    source: str
    destination: str  # where ECS is predicted to start the replacement
    cpu: float  # modelled CPU the move takes off the source


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


def movable(task: Task, service: ServiceState, now: float, policy: RebalancePolicy) -> bool:
    """May this task be stopped now without breaking a safety rule?"""
    spec = service.spec
    tasks = list(service.tasks.values())
    if not task.healthy(now) or now - task.created_at < policy.task_cooldown:
        return False
    if any(t.revision != service.revision for t in tasks):
        return False  # mid-deployment
    if any(t.instance is not None and t.instance.status != ACTIVE for t in tasks):
        return False  # ECS is moving its tasks off a draining instance already
    if any(not t.healthy(now) for t in tasks) or len(tasks) < spec.desired:
        return False  # a previous move (or a replacement) is still under way
    healthy = sum(t.healthy(now) for t in tasks)
    return healthy - 1 >= math.ceil(spec.desired * spec.min_healthy_percent / 100)


def plan_moves(
    instances: Mapping[str, Instance],
    services: Mapping[str, ServiceState],
    now: float,
    policy: RebalancePolicy,
    moves_last_hour: int = 0,
    seed: int = 0,
) -> RebalancePlan:
    """The moves that cool the hot instances, as plain values; ``instances`` is not changed."""
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
        if not movable(task, service, self.now, self.policy):
            return None
        destination = self._predict(task, source, service)
        if destination is None or destination.id == source.id:
            return None
        cpu = task.service.cpu * task.service.cpu_use
        after = self.loads[destination.id] + cpu / destination.cpu
        if after >= self.loads[source.id] or after > self.limit:
            return None  # the peak would not go down
        return Move(task.id, task.service.name, source.id, destination.id, cpu)

    def _predict(self, task: Task, source: Instance, service: ServiceState) -> Instance | None:
        """Where ECS would start the replacement once ``task`` stopped (the placement model on
        the predicted free room; the source gets the task's room back)."""
        spec = task.service
        saved = {i.id: (i.free_cpu, i.free_mem) for i in self.active}
        try:
            for i in self.active:
                i.free_cpu, i.free_mem = self.free[i.id]
            source.free_cpu += spec.cpu
            source.free_mem += spec.memory
            stopped = task.state
            task.state = "STOPPED"  # not counted by spread or distinctInstance
            try:
                return choose(self.active, service, Spread(service, spread_fields(spec)), self.rng)
            finally:
                task.state = stopped
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
        self.reasons.append(
            f"move {move.service} task off {move.source} ({self._pct(src, move)}) to "
            f"{move.destination}"
        )

    def _pct(self, src: Instance, move: Move) -> str:
        return f"{100 * (self.loads[src.id] + move.cpu / src.cpu):.0f}% CPU"
