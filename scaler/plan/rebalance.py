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

**Planning**, hottest instance first: take its tasks, heaviest first; predict every instance ECS
may put the replacement on (the strategies rank them equally; ECS picks one at random), and keep
the move only if, on average over them, it removes at least ``min_gain`` of the heat it could
remove (heat: the square of the load above the hot limit, summed over instances, so that
lowering the peak is what counts; landing back on the source removes
none). For AZ-spread services a move must not leave the AZs further apart than before: ECS's own
AZ rebalancing would move a task back. Stop when the instance is no longer hot or the budget is
spent. Greedy, so the number of moves is small: each move takes the most CPU it can off the
hottest instance. Each prediction reads every instance with room for the task, so a plan makes at
most ``max_predictions`` of them (the hottest instances come first).

**Cost**: a move must not raise it. Its replacement goes only where ECS finds room on an
instance already running (a move never needs new capacity), and never where the capacity side
is giving capacity back: no move is planned that ECS could place on an instance running no
service task (idle scale-in gives it back after ``SCALER_SCALE_IN_AFTER``) or on one ``leaving``
(tagged retiring); a service found so is not tried again in the plan. Among the hot instances,
those a single move leaves without a service task come first: once idle they can be given back.
``spare_idle`` off (nothing gives idle instances back), only ``leaving`` is kept: without it,
the planner decides as it did before these rules.

**Safety**, every rule a hard filter: at most ``max_moves`` per plan and ``max_moves_per_hour``;
at most one move per service at a time (none while a previous move's replacement is not yet
healthy); never a service mid-deployment (two revisions, or tasks leaving DRAINING instances);
never a task that would take its service below ``minimumHealthyPercent`` (a surge never does);
never a task younger than ``min_task_age`` (let new tasks settle); never a move's replacement
within ``task_cooldown`` seconds (no ping-pong; :mod:`scaler.plan.cooldown`);
no moves at all while an instance is draining or tasks wait for room (a disruption is under way).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from scaler.ecs.cluster import ACTIVE, DRAINING, RUNNING, STOPPED, Instance, ServiceState, Task
from scaler.ecs.scheduler import rebalances_azs
from scaler.plan.cooldown import Cooling
from scaler.plan.predicted_room import PredictedRoom

NO_COOLING = Cooling()


@dataclass(frozen=True)
class RebalancePolicy:
    hot_threshold: float = 0.8
    deviation: float = 0.3
    max_moves: int = 10
    max_moves_per_hour: int = 60
    task_cooldown: float = 1800.0  # after a move, the service's newer tasks stay put this long
    min_task_age: float = 300.0
    surge: bool = True  # replacement first when a stop would break minimumHealthyPercent
    min_gain: float = 0.5  # least share of the heat a move could remove that it must remove
    max_predictions: int = 40  # placement predictions per plan (each reads the instances with room)
    spare_idle: bool = True  # no replacement onto an idle instance; emptiable ones first


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
    cooling: Cooling = NO_COOLING,
) -> str | None:
    """How this task may be moved now without breaking a safety rule: ``"stop"``, ``"surge"``
    or None. ``cooling``: the replacements of the scaler's recent moves."""
    if not task.healthy(now) or now - task.created_at < policy.min_task_age:
        return None
    if cooling.holds(service.spec.name, task.id, task.created_at):
        return None  # the replacement of a recent move: no ping-pong
    return service_kind(service, now, policy)


def service_kind(service: ServiceState, now: float, policy: RebalancePolicy) -> str | None:
    """How the service's tasks may be moved now, as far as the service's state goes (the same
    for all its tasks): ``"stop"``, ``"surge"`` or None."""
    spec = service.spec
    tasks = list(service.tasks.values())
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
    leaving: Collection[str] = frozenset(),
) -> RebalancePlan:
    """The moves that cool the hot instances, as plain values; ``instances`` is not changed.
    ``cooling``: the replacements of recent moves (:meth:`MoveHistory.cooling`) stay put.
    ``leaving``: instances the capacity side is giving back (tagged retiring), never a
    destination."""
    rng = random.Random(seed)
    active = [i for i in instances.values() if i.status == ACTIVE]
    if not active:
        return RebalancePlan()
    loads = {i.id: load(i) for i in active}
    mean = sum(loads.values()) / len(loads)
    limit = min(policy.hot_threshold, mean + policy.deviation)  # what counts as hot
    hot = sorted((i for i in active if loads[i.id] > limit), key=lambda i: (-loads[i.id], i.id))
    imbalance = round(max(loads.values()) - mean, 4)
    pause = _disrupted(instances.values(), services.values())
    if pause:
        return RebalancePlan((), tuple(i.id for i in hot), imbalance, (pause,))
    budget = min(policy.max_moves, policy.max_moves_per_hour - moves_last_hour)
    plan = _Planning(active, loads, services, now, policy, rng, limit)
    plan.cooling = cooling
    plan.leaving = set(leaving)
    for inst in _emptiable_first(hot) if policy.spare_idle else hot:
        if budget <= 0 or plan.exhausted():
            break
        budget -= plan.cool(inst, budget)
    return RebalancePlan(
        tuple(plan.moves), tuple(i.id for i in hot), imbalance, tuple(plan.reasons)
    )


def _emptiable_first(hot: list[Instance]) -> list[Instance]:
    """The hot instances that one move would leave running no service task first (idle, they
    can be given back), each part hottest first."""
    return sorted(hot, key=lambda i: not _emptiable(i))


def _emptiable(inst: Instance) -> bool:
    """Whether one move leaves ``inst`` running no service task (:meth:`Instance.replicas` at
    most 1), counting no further than two."""
    replicas = (t for t in inst.tasks.values() if not t.service.daemon)
    return next(replicas, None) is None or next(replicas, None) is None


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
    """Scratch state: predicted loads and free room as moves are chosen.

    Kept cheap for large clusters, where predictions are most of the cost: each service's
    movability is worked out once per plan (:func:`service_kind`); a prediction reads only the
    instances with room for the task (and the source), found once per task size between two
    moves, and ranks them a strategy at a time on plain numbers (:class:`PredictedRoom`, which
    answers as the placement model does); whether an instance is idle or leaving is worked out
    only when a prediction may place on it, once per plan; once the prediction budget is spent,
    only tasks whose placement is already known are tried."""

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
        self.by_id = {i.id: i for i in active}
        self.loads = dict(loads)
        self.services = services
        self.now = now
        self.policy = policy
        self.rng = rng
        self.moves: list[Move] = []
        self.reasons: list[str] = []
        self.moved_services: set[str] = set()
        self.room = PredictedRoom(active)
        self.cooling = NO_COOLING
        self.kinds: dict[str, str | None] = {}  # service -> service_kind, for this plan
        # memos, valid until the next move changes the predicted room
        self.rejected: set[tuple[str, str]] = set()
        self.predictions = 0
        self.surge_options: dict[str, list[Instance]] = {}
        self.azs = {i.az for i in active}
        self.leaving: Collection[str] = frozenset()  # never a destination
        self.avoided: dict[str, bool] = {}  # instance -> never a destination, when asked
        self.blocked: set[str] = set()  # services ECS may place on one of them

    def exhausted(self) -> bool:
        """No move is possible any more: predictions spent and no placement known."""
        return self.predictions >= self.policy.max_predictions and not self.surge_options

    def cool(self, inst: Instance, budget: int) -> int:
        made = 0
        running = (t for t in inst.tasks.values() if t.state == RUNNING)
        if self.predictions >= self.policy.max_predictions:  # only known placements are tried
            running = (t for t in running if t.service.name in self.surge_options)
        tasks = sorted(running, key=lambda t: (-t.service.cpu * t.service.cpu_use, t.id))
        for task in tasks:
            if made >= budget or self.loads[inst.id] <= self.limit:
                break
            move = self._try(task, inst)
            if move is not None:
                self._apply(move, task)
                made += 1
        return made

    def _kind(self, task: Task, service: ServiceState) -> str | None:
        if not task.healthy(self.now) or self.now - task.created_at < self.policy.min_task_age:
            return None
        if self.cooling.holds(service.spec.name, task.id, task.created_at):
            return None  # the replacement of a recent move: no ping-pong
        name = service.spec.name
        if name not in self.kinds:
            self.kinds[name] = service_kind(service, self.now, self.policy)
        return self.kinds[name]

    def _try(self, task: Task, source: Instance) -> Move | None:
        service = self.services.get(task.service.name)
        if service is None or task.service.name in self.moved_services | self.blocked:
            return None
        kind = self._kind(task, service)
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
            options = self.room.likely(task, source, service, surge=kind == SURGE)
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
        if any(self._avoided(d) for d in options if d is not source):
            self.blocked.add(service.spec.name)  # not tried again in this plan
            return None  # the replacement may keep an instance from being given back
        if rebalances_azs(service.spec) and not self._azs_stay_balanced(service, source, options):
            return None  # ECS's AZ rebalancing would move a task back
        cpu = task.service.cpu * task.service.cpu_use
        before = self.loads[source.id]
        most = self._heat(before) - self._heat(before - cpu / source.cpu)  # all it could remove
        if self._gain(source, options, cpu) <= self.policy.min_gain * most:
            return None  # no surer cooling wherever ECS puts the replacement
        destination = self.rng.choice([d for d in options if d is not source])
        return Move(task.id, task.service.name, source.id, destination.id, cpu, kind == SURGE)

    def _avoided(self, inst: Instance) -> bool:
        """Never a destination: leaving, or idle (when idle instances are spared); worked out
        for the instances a replacement may go to only, once per plan."""
        avoided = self.avoided.get(inst.id)
        if avoided is None:
            avoided = inst.id in self.leaving or (self.policy.spare_idle and not inst.busy())
            self.avoided[inst.id] = avoided
        return avoided

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
        for az in {d.az for d in options}:  # the AZ is all that counts of a destination
            counts[az] += 1
            spread = max(counts.values()) - min(counts.values())
            counts[az] -= 1
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

    def _apply(self, move: Move, task: Task) -> None:
        self.rejected.clear()
        self.surge_options.clear()
        self.moves.append(move)
        self.moved_services.add(move.service)
        src = self.by_id[move.source]
        dst = self.by_id[move.destination]
        self.loads[src.id] -= move.cpu / src.cpu
        self.loads[dst.id] += move.cpu / dst.cpu
        self.room.take(dst, task.service.cpu, task.service.memory)
        how = "surge-move" if move.surge else "move"
        self.reasons.append(
            f"{how} {move.service} task off {move.source} ({self._pct(src, move)}) to "
            f"{move.destination}"
        )

    def _pct(self, src: Instance, move: Move) -> str:
        return f"{100 * (self.loads[src.id] + move.cpu / src.cpu):.0f}% CPU"
