"""Roll a new launch template version (or AMI) through the cluster, replacement first.

An instance is *out of date* when it runs an older launch template version or image than its
pool launches now; the caller decides which are (the planner gets their ids). Each is replaced
the way a careful operator would do it by hand:

1. launch a replacement in the instance's *place* (its AZ, or its Auto Scaling group, which picks
   the AZ itself): capacity first, nothing is lost if it never comes;
2. once the place has nothing left launching, drain as many out-of-date instances there as
   replacements arrived, the emptiest first (ECS moves their tasks within each service's
   deployment bounds);
3. terminate each drained instance once it runs no service task (the caller's release loop).

Draining makes ECS stop a service's tasks there before their replacements are healthy when its
``minimumHealthyPercent`` is under 100 (a dip its operator accepted for deployments, not for
maintenance). So before draining, :func:`plan_surges` raises such services' desired counts by
their tasks there (within ``maximumPercent``, :func:`surge_for`), each raise marked on its service
first (:class:`SurgeMark`, so a restarted or new leader finishes it); once those services are
steady with their tasks healthy, not only RUNNING (:mod:`scaler.ecs.health`), or after
``RollPolicy.surge_wait``, the instance drains without a dip, and each count is
set back when the instance holds none of the service's tasks, unless someone else (an operator,
Application Auto Scaling) changed it meanwhile: then it is left as they set it.

**Budgets**, shared with consolidation: at most ``max_disrupted`` of the instances (at least
one, :func:`disruption_budget`) disrupted at once (draining by the scaler's choice, or waiting
for a replacement), at most ``max_per_hour`` replacements an hour. **Pause**: nothing new starts
(no launch, no drain) while a spot storm is in progress: an instance under a spot notice or
drained for another reason, tasks ECS could not place, or spot trouble within ``pause_after``
seconds. Replacements already launched wait, and so do drains waiting for their surges
(:attr:`RollPlan.paused`).

The plan carries a :class:`RollState` (replacements launched and not yet matched by a drain,
per AZ) that the caller hands to the next plan.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from scaler.ecs.cluster import (
    ACTIVE,
    DRAINING,
    RUNNING,
    Instance,
)
from scaler.ecs.health import ServiceHealth, TaskHealth, healthy_count


@dataclass(frozen=True)
class RollPolicy:
    max_disrupted: float = 0.1  # share of instances disrupted at once (with consolidation's)
    max_per_hour: int = 24
    pause_after: float = 900.0  # seconds after spot trouble before the roll goes on
    surge: bool = True  # raise the counts of services that would dip before a drain
    surge_wait: float = 600.0  # seconds a drain waits at most for its services' surges


@dataclass(frozen=True)
class RollState:
    waiting: Mapping[str, int] = field(default_factory=dict)  # place -> replacements unmatched
    # place -> its up-to-date ACTIVE instances when the replacements were launched: only what
    # arrived since is matched by drains (a launch that never came drains nothing)
    baseline: Mapping[str, int] = field(default_factory=dict)

    @property
    def in_flight(self) -> int:
        return sum(self.waiting.values())

    def failed(self, az: str, count: int = 1) -> RollState:
        """``count`` replacement launches in ``az`` found no capacity."""
        left = max(0, self.waiting.get(az, 0) - count)
        return RollState({**self.waiting, az: left}, self.baseline)


@dataclass(frozen=True)
class Machine:
    """What the roll needs to know of an instance. ``place``: where its replacement comes from
    (its AZ when the caller launches per AZ; its Auto Scaling group when the group picks the
    AZ); ``status``: ACTIVE, DRAINING or anything else for not registered yet."""

    id: str
    place: str
    status: str
    tasks: int = 0  # service tasks running on it


def machines(instances: Mapping[str, Instance]) -> dict[str, Machine]:
    """The ECS model's instances as the roll sees them, placed by AZ."""
    return {
        i.id: Machine(i.id, i.az, i.status, sum(t.state == RUNNING for t in i.tasks.values()))
        for i in instances.values()
    }


@dataclass(frozen=True)
class RollPlan:
    launch: Mapping[str, int] = field(default_factory=dict)  # place -> replacements to launch
    drain: tuple[str, ...] = ()  # out-of-date instances whose replacement is up
    state: RollState = field(default_factory=RollState)
    reasons: tuple[str, ...] = ()
    paused: bool = False  # a storm: nothing starts, and drains waiting for surges wait on


def plan_roll(
    instances: Mapping[str, Machine],
    outdated: Collection[str],
    now: float,
    policy: RollPolicy,
    state: RollState,
    *,
    ours: Collection[str] = (),
    unplaced: int = 0,
    doomed: Collection[str] = (),
    replaced_last_hour: int = 0,
    last_trouble: float | None = None,
    blocked: Collection[str] = (),
) -> RollPlan:
    """What the roll does now, as plain values. ``ours``: instances the scaler is taking out by
    its own choice (draining for a roll or a consolidation, or about to); ``doomed``: instances
    under a spot notice; ``blocked``: places that may not launch now (out of capacity, or
    still owing instances they were asked for)."""
    taken = set(ours)
    stale = [
        i
        for i in instances.values()
        if i.id in outdated and i.status == ACTIVE and i.id not in taken
    ]
    pause = _storm(instances, now, policy, ours, unplaced, doomed, last_trouble)
    if not stale and not state.in_flight:
        return RollPlan(state=RollState(), paused=bool(pause))
    if pause:
        return RollPlan(state=state, reasons=(pause,), paused=True)
    fresh = _fresh(instances, outdated, taken)
    drain, waiting = _matched(instances, stale, state, fresh)
    live = sum(1 for i in instances.values() if i.status in (ACTIVE, DRAINING))
    disrupted = len(taken | set(drain)) + sum(waiting.values())
    budget = min(
        disruption_budget(policy.max_disrupted, live) - disrupted,
        policy.max_per_hour - replaced_last_hour - len(drain) - sum(waiting.values()),
    )
    launch = _launches([i for i in stale if i.place not in blocked], drain, waiting, budget)
    baseline = {p: n for p, n in state.baseline.items() if p in waiting}
    for az, n in launch.items():
        baseline.setdefault(az, fresh[az])
        waiting[az] = waiting.get(az, 0) + n
    reasons = [f"roll: drain {i} (out of date; its replacement is up)" for i in drain]
    reasons += [f"roll: launch {n} replacement(s) in {p}" for p, n in sorted(launch.items())]
    return RollPlan(launch, tuple(drain), RollState(waiting, baseline), tuple(reasons))


def disruption_budget(share: float, live: int) -> int:
    """Instances the scaler may disrupt at once by its own choice: ``share`` of the ``live``
    ones, and at least one (a small cluster is still rolled and consolidated, one at a time)."""
    return max(1, math.floor(share * live)) if live > 1 else 0


def _storm(
    instances: Mapping[str, Machine],
    now: float,
    policy: RollPolicy,
    ours: Collection[str],
    unplaced: int,
    doomed: Collection[str],
    last_trouble: float | None,
) -> str:
    if doomed:
        return f"paused: {len(doomed)} instance(s) under a spot notice"
    others = [i for i in instances.values() if i.status == DRAINING and i.id not in ours]
    if others:
        return f"paused: {len(others)} instance(s) draining for another reason"
    if unplaced:
        return f"paused: {unplaced} task(s) waiting for room"
    if last_trouble is not None and now - last_trouble < policy.pause_after:
        return "paused: spot trouble within the pause period"
    return ""


def _fresh(
    instances: Mapping[str, Machine], outdated: Collection[str], taken: set[str]
) -> Counter[str]:
    """Up-to-date ACTIVE instances per place."""
    return Counter(
        i.place
        for i in instances.values()
        if i.status == ACTIVE and i.id not in outdated and i.id not in taken
    )


def _matched(
    instances: Mapping[str, Machine], stale: list[Machine], state: RollState, fresh: Counter[str]
) -> tuple[list[str], dict[str, int]]:
    """Out-of-date instances to drain now: as many per place as replacements arrived there
    (once nothing is launching there; all that were waited for, when no baseline is known)."""
    launching = Counter(i.place for i in instances.values() if i.status not in (ACTIVE, DRAINING))
    waiting = dict(state.waiting)
    drain: list[str] = []
    for az, count in sorted(state.waiting.items()):
        if count <= 0 or launching[az]:
            continue  # still coming: capacity first
        arrived = fresh[az] - state.baseline.get(az, fresh[az] - count)
        here = sorted((i for i in stale if i.place == az), key=_emptiest)
        chosen = [i.id for i in here[: max(0, min(count, arrived))]]
        drain += chosen
        waiting[az] = 0  # any replacement beyond what is left out of date is plain capacity
    return drain, {az: n for az, n in waiting.items() if n > 0}


def _launches(
    stale: list[Machine], drain: list[str], waiting: Mapping[str, int], budget: int
) -> dict[str, int]:
    """Replacements to launch, round robin over the AZs with out-of-date instances left."""
    left = Counter(i.place for i in stale if i.id not in drain)
    for az, n in waiting.items():
        left[az] -= n
    launch: dict[str, int] = {}
    azs = sorted(az for az in left if left[az] > 0)
    while budget > 0 and azs:
        for az in list(azs):
            if budget <= 0:
                break
            launch[az] = launch.get(az, 0) + 1
            budget -= 1
            left[az] -= 1
            if left[az] <= 0:
                azs.remove(az)
    return launch


def _emptiest(inst: Machine) -> tuple[int, str]:
    return (inst.tasks, inst.id)


# -- the pre-drain surge, over what DescribeServices says ----------------------------------------


@dataclass(frozen=True)
class SurgeMark:
    """A surge, written on its service before its count is raised: the count before, the tasks
    added, the instance about to drain, and when.

    A surge raised in steps before several instances drain (a spot warning's,
    :mod:`scaler.plan.warning_surge`) names each step's instances and tasks added, oldest
    first: ``"i-a+i-b:3,i-c:1"``; each step is marked before it is made."""

    desired: int
    added: int
    instance: str
    started: float

    @property
    def raised(self) -> int:
        return self.desired + self.added

    @property
    def steps(self) -> tuple[tuple[tuple[str, ...], int], ...]:
        """(instances, tasks added for them) per step, oldest first."""
        if ":" not in self.instance:
            return (((self.instance,), self.added),)
        steps = []
        for entry in self.instance.split(","):
            names, _, count = entry.rpartition(":")
            steps.append((tuple(names.split("+")), int(count) if count.isdigit() else 0))
        return tuple(steps)

    @property
    def instances(self) -> tuple[str, ...]:
        return tuple(name for names, _ in self.steps for name in names)

    def surged(self, desired: int) -> bool:
        """Whether ``desired`` is a count this surge set: the raised count, or (a surge raised
        in steps) the count before its last step, when the scaler stopped between marking a
        step and making it."""
        steps = self.steps
        return desired == self.raised or (len(steps) > 1 and desired == self.raised - steps[-1][1])


def step_mark(
    mark: SurgeMark | None, desired: int, instances: Sequence[str], added: int, now: float
) -> SurgeMark:
    """``mark`` (None: a new surge from ``desired``) with one more step: ``added`` tasks for
    ``instances``."""
    entry = f"{'+'.join(instances)}:{added}"
    if mark is None:
        return SurgeMark(desired, added, entry, now)
    old = ",".join(f"{'+'.join(names)}:{count}" for names, count in mark.steps)
    return SurgeMark(mark.desired, mark.added + added, f"{old},{entry}", mark.started)


@dataclass(frozen=True)
class Deployment:
    """A service as DescribeServices says, as far as the surge needs it."""

    name: str
    desired: int
    running: int
    pending: int = 0
    min_healthy_percent: int = 100
    max_percent: int = 200
    daemon: bool = False
    mark: SurgeMark | None = None  # the roll's surge marked on it
    busy: bool = False  # another surge (a task move's) is marked on it
    # its tasks' health as DescribeTasks tells it, read while the roll's surge is marked on it
    # (None: not read)
    tasks: tuple[TaskHealth, ...] | None = None
    health: ServiceHealth = field(default_factory=ServiceHealth)  # what tells its tasks' health

    @property
    def steady(self) -> bool:
        return self.running == self.desired and self.pending == 0

    def settled(self, now: float) -> bool:
        """Steady, and as many of its tasks healthy at ``now`` as it should run
        (:mod:`scaler.ecs.health`): a RUNNING task may not serve yet, and a drain that started
        then would take the old tasks away first. Not read: not settled."""
        if not self.steady or self.tasks is None:
            return False
        return healthy_count(self.tasks, self.health, now) >= self.desired


def surge_for(tasks_here: int, svc: Deployment) -> int:
    """Tasks to add to ``svc`` before an instance holding ``tasks_here`` of its tasks drains: all
    of them, as far as ``maximumPercent`` allows; none if it does not dip on a drain
    (``minimumHealthyPercent`` 100 or more) or is a daemon."""
    if svc.daemon or svc.min_healthy_percent >= 100 or tasks_here <= 0:
        return 0
    room = svc.desired * svc.max_percent // 100 - max(svc.desired, svc.running + svc.pending)
    return max(0, min(tasks_here, room))


@dataclass(frozen=True)
class SurgePlan:
    raises: Mapping[str, SurgeMark] = field(default_factory=dict)  # service -> mark, then raise
    drain: tuple[str, ...] = ()  # instances to drain now
    waiting: Mapping[str, float] = field(default_factory=dict)  # instance -> waiting since
    # service -> the count to set back to (None: changed by someone else, left), mark removed
    set_back: Mapping[str, int | None] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()


def plan_surges(
    candidates: Collection[str],
    waiting: Mapping[str, float],
    tasks_on: Mapping[str, Mapping[str, int]],
    services: Mapping[str, Deployment],
    active: Collection[str],
    draining: Collection[str],
    now: float,
    wait: float,
    hold: bool = False,
) -> SurgePlan:
    """The surge step of a cycle, as plain values. ``candidates``: out-of-date instances the roll
    drains now; ``waiting``: those accepted earlier and waiting for their surges (instance ->
    since); ``tasks_on``: instance -> service -> its tasks there; ``active``: the out-of-date
    instances still ACTIVE (a marked one not waiting yet is taken on: a restart, a new leader);
    ``draining``: the instances DRAINING; ``hold``: the roll is paused (:attr:`RollPlan.paused`):
    nothing is raised or drained, not even after the wait, and the queue waits on."""
    queue = {n: t for n, t in waiting.items() if n in active}  # gone or drained: no longer
    marks = [s.mark for s in services.values() if s.mark is not None]
    for mark in marks:  # surges another replica (or an earlier life) started
        for node in mark.instances:
            if node in active and node not in queue:
                queue[node] = mark.started
    for node in candidates:
        queue.setdefault(node, now)
    raises: dict[str, SurgeMark] = {}
    drain: list[str] = []
    reasons: list[str] = []
    for node, since in sorted(queue.items()):
        if hold:
            continue
        step = _instance_step(node, tasks_on.get(node, {}), services, raises, now)
        raises.update(step)
        ready = not step and _ready(node, tasks_on.get(node, {}), services, now)
        if ready or now - since >= wait:
            drain.append(node)
            why = "its services are steady" if ready else f"waited {now - since:.0f}s"
            reasons.append(f"roll: drain {node} ({why})")
        for name, mark in sorted(step.items()):
            reasons.append(
                f"roll: raise {name} {mark.desired} -> {mark.raised} before {node} drains "
                f"(minimumHealthyPercent {services[name].min_healthy_percent})"
            )
    left = {n: t for n, t in queue.items() if n not in drain}
    back = _set_back(services, tasks_on, set(left) | set(drain), draining)
    reasons += [
        f"roll: set {name} back to {to}" if to is not None else f"roll: {name} left as set"
        for name, to in sorted(back.items())
    ]
    return SurgePlan(raises, tuple(drain), left, back, tuple(reasons))


def _instance_step(
    node: str,
    here: Mapping[str, int],
    services: Mapping[str, Deployment],
    taken: Mapping[str, SurgeMark],
    now: float,
) -> dict[str, SurgeMark]:
    """The services to raise before ``node`` drains: those that dip, not marked yet."""
    step: dict[str, SurgeMark] = {}
    for name, count in sorted(here.items()):
        svc = services.get(name)
        if svc is None or svc.mark is not None or svc.busy or name in taken:
            continue
        added = surge_for(count, svc)
        if added > 0:
            step[name] = SurgeMark(svc.desired, added, node, now)
    return step


def _ready(
    node: str, here: Mapping[str, int], services: Mapping[str, Deployment], now: float
) -> bool:
    """Whether ``node`` may drain: each service of it that dips has its surge done (its tasks
    running and healthy: :meth:`Deployment.settled`), and none is waiting on another instance's
    surge or a task move's."""
    for name, count in here.items():
        svc = services.get(name)
        if svc is None or svc.daemon or svc.min_healthy_percent >= 100 or count <= 0:
            continue
        if svc.busy or (svc.mark is not None and node not in svc.mark.instances):
            return False  # its tasks would dip: wait for the other surge (bounded)
        if svc.mark is not None and not svc.settled(now):
            return False
    return True


def _set_back(
    services: Mapping[str, Deployment],
    tasks_on: Mapping[str, Mapping[str, int]],
    queued: set[str],
    draining: Collection[str],
) -> dict[str, int | None]:
    """Marked services whose instance holds none of their tasks once drained (or went, or is no
    longer to drain): back to the count before, unless it is no longer the count the surge set
    (someone changed it). Not while a task move's surge is on top of it: once that one set the
    count back to the roll's, the roll's is set back."""
    back: dict[str, int | None] = {}
    for name, svc in sorted(services.items()):
        mark = svc.mark
        if mark is None or queued.intersection(mark.instances) or svc.busy:
            continue  # still to drain, or a task move's surge on top: it sets back first
        if not surge_done(mark, name, tasks_on, draining):
            continue  # its tasks there are still being replaced
        back[name] = mark.desired if mark.surged(svc.desired) else None
    return back


def surge_done(
    mark: SurgeMark,
    service: str,
    tasks_on: Mapping[str, Mapping[str, int]],
    draining: Collection[str],
) -> bool:
    """Whether no instance the surge was for still holds one of ``service``'s tasks while it
    drains (its tasks there are no longer being replaced)."""
    return not any(
        node in draining and tasks_on.get(node, {}).get(service, 0) > 0 for node in mark.instances
    )
