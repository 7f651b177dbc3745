"""Where ECS puts a task: filter, constrain, rank by strategy, pick.

The pipeline, as ECS documents it: keep ACTIVE instances with enough CPU and memory; keep those
that satisfy every constraint (binding: none left means the task is not placed); rank them by the
service's strategies in order (best effort: each strategy breaks the previous one's ties); pick
the best, breaking the last ties at random.

- ``binpack`` on cpu or memory prefers the instance with the *least* of that resource left.
- ``spread`` on an attribute (AZ, instance id/host, instance type) prefers the value holding the
  *fewest* of this service's tasks; spread counts only the service's own tasks.
- ``random`` ranks by a random draw.

A service with a capacity provider strategy is bound to its providers' instances: the others are
filtered out with those that fail a constraint (:func:`provided`).

Services default to ``spread(attribute:ecs.availability-zone)``.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from scaler.ecs.cluster import (
    ACTIVE,
    PROVIDER_ATTRIBUTE,
    STOPPED,
    Constraint,
    Instance,
    ServiceSpec,
    ServiceState,
)

_EQUALITY = re.compile(r"^\s*([^\s=!]+)\s*(==|!=)\s*(.+?)\s*$")
_MEMBERSHIP = re.compile(r"^\s*(\S+)\s+(in|!in|not_in)\s+(.+?)\s*$")
SUBJECTS = frozenset(
    {
        "attribute:ecs.availability-zone",
        "attribute:ecs.instance-type",
        "ec2InstanceId",
        PROVIDER_ATTRIBUTE,
    }
)


def _values(text: str) -> set[str]:
    return {v.strip().strip("'\"") for v in text.strip().lstrip("[(").rstrip("])").split(",")}


def expression_problem(expression: str) -> str | None:
    """Why the model cannot evaluate a ``memberOf`` expression, or None if it can."""
    match = _EQUALITY.match(expression) or _MEMBERSHIP.match(expression)
    if not match or match.group(1) not in SUBJECTS:
        return (
            f"unsupported memberOf expression: {expression!r} (the model knows ==, !=, in, !in "
            f"on {', '.join(sorted(SUBJECTS))})"
        )
    return None


def member_of(inst: Instance, expression: str) -> bool:
    """Evaluate a small subset of the cluster query language against an instance."""
    problem = expression_problem(expression)
    match = _EQUALITY.match(expression) or _MEMBERSHIP.match(expression)
    if problem is not None or match is None:
        raise ValueError(problem)
    subject, op, value = match.groups()
    actual = inst.attribute(subject)
    if op == "==":
        return actual == value.strip("'\"")
    if op == "!=":
        return actual != value.strip("'\"")
    if op == "in":
        return actual in _values(value)
    return actual not in _values(value)


def provided(inst: Instance, spec: ServiceSpec) -> bool:
    """Whether ``inst`` belongs to a capacity provider of the service's strategy (any instance
    does for a service without one)."""
    return allows(spec.capacity_providers, inst.provider)


def allows(providers: Collection[str], provider: str) -> bool:
    """Whether capacity of ``provider`` may hold tasks restricted to ``providers`` (none: any)."""
    return not providers or provider in providers


def satisfies(inst: Instance, constraints: Sequence[Constraint], service: ServiceState) -> bool:
    if not provided(inst, service.spec):
        return False
    for c in constraints:
        if c.type == "distinctInstance" and any(
            t.service.name == service.spec.name and t.state != STOPPED for t in inst.tasks.values()
        ):
            return False
        if c.type == "memberOf" and not member_of(inst, c.expression):
            return False
    return True


def fits(inst: Instance, spec: ServiceSpec) -> bool:
    return inst.status == ACTIVE and inst.free_cpu >= spec.cpu and inst.free_mem >= spec.memory


class Spread:
    """Counts of a service's live tasks by attribute value, kept current as tasks are placed."""

    def __init__(self, service: ServiceState, fields: Iterable[str]) -> None:
        self.counts: dict[str, Counter[str]] = {f: Counter() for f in fields}
        for task in service.tasks.values():
            if task.state != STOPPED and task.instance is not None:
                self.add(task.instance)

    def add(self, inst: Instance) -> None:
        for f, counter in self.counts.items():
            counter[inst.attribute(f)] += 1


def candidates(instances: Iterable[Instance], service: ServiceState) -> list[Instance]:
    spec = service.spec
    return [i for i in instances if fits(i, spec) and satisfies(i, spec.constraints, service)]


def _key_parts(
    spec: ServiceSpec, spread: Spread, draw: Callable[[], float]
) -> list[Callable[[Instance], float]]:
    """One function of an instance per placement strategy, in order: binpack's room left after
    the task (least first), spread's count of the service's tasks on the instance's value of the
    field (fewest first), random's draw."""
    parts: list[Callable[[Instance], float]] = []
    for s in spec.strategies:
        if s.type == "binpack":
            parts.append(_memory_left(spec.memory) if s.field == "memory" else _cpu_left(spec.cpu))
        elif s.type == "spread":
            parts.append(_spread_count(s.field, spread.counts[s.field]))
        elif s.type == "random":
            parts.append(lambda _: draw())
    return parts


def _memory_left(need: int) -> Callable[[Instance], float]:
    return lambda inst: inst.free_mem - need


def _cpu_left(need: int) -> Callable[[Instance], float]:
    return lambda inst: inst.free_cpu - need


def _spread_count(field: str, counts: Counter[str]) -> Callable[[Instance], float]:
    return lambda inst: counts[inst.attribute(field)]


def choose(
    instances: Iterable[Instance], service: ServiceState, spread: Spread, rng: random.Random
) -> Instance | None:
    """The instance ECS would place the service's next task on, or None if none can take it:
    the least by the strategies' parts (:func:`_key_parts`, put together once per choice), then
    a random draw (ECS leaves the last tie-break undocumented)."""
    spec = service.spec
    # nothing to satisfy: no constraint, no capacity provider (the common case, checked once)
    free_to_go = not spec.constraints and not spec.capacity_providers
    parts, draw = _key_parts(spec, spread, rng.random), rng.random
    best: Instance | None = None
    best_key: tuple[float, ...] = ()
    for inst in instances:
        if not fits(inst, spec):
            continue
        if not free_to_go and not satisfies(inst, spec.constraints, service):
            continue
        key = (*[part(inst) for part in parts], draw())
        if best is None or key < best_key:
            best, best_key = inst, key
    return best


def likely(instances: Iterable[Instance], service: ServiceState, spread: Spread) -> list[Instance]:
    """Every instance ECS might pick for the service's next task: those tied on the strategies'
    ranking (a ``random`` strategy ties them all). Empty if none can take it."""
    spec = service.spec
    parts = _key_parts(spec, spread, lambda: 0.0)
    best: list[Instance] = []
    best_key: tuple[float, ...] = ()
    for inst in instances:
        if not fits(inst, spec) or not satisfies(inst, spec.constraints, service):
            continue
        key = tuple([part(inst) for part in parts])
        if not best or key < best_key:
            best, best_key = [inst], key
        elif key == best_key:
            best.append(inst)
    return best


@contextmanager
def what_if(instances: list[Instance], free: Mapping[str, tuple[int, int]]) -> Iterator[None]:
    """For the duration, ``instances`` have the free CPU and memory in ``free`` (room a planner
    predicts); afterwards, what they had. For placing on a predicted state without copying it."""
    saved = {i.id: (i.free_cpu, i.free_mem) for i in instances}
    try:
        for i in instances:
            i.free_cpu, i.free_mem = free[i.id]
        yield
    finally:
        for i in instances:
            i.free_cpu, i.free_mem = saved[i.id]


def spread_fields(spec: ServiceSpec) -> list[str]:
    return [s.field for s in spec.strategies if s.type == "spread"]


Shape = tuple[int, int]  # (CPU units, MiB): a task's reservation, or an instance's free room


def room_for(free: Shape, task: Shape) -> bool:
    """Whether ``task`` fits in ``free`` room: the filter ECS places by, on resources alone."""
    return free[0] >= task[0] and free[1] >= task[1]


def largest_first(tasks: Iterable[Shape]) -> list[Shape]:
    """Tasks in the order bin packing places them: the most memory first, then the most CPU."""
    return sorted(tasks, key=lambda t: (t[1], t[0]), reverse=True)


def fill(free: Shape, tasks: Sequence[Shape]) -> tuple[Shape, list[Shape]]:
    """One instance's room filled first-fit from ``tasks`` in their order: the room left, and
    the tasks that did not go in (in their order)."""
    left: list[Shape] = []
    for task in tasks:
        if room_for(free, task):
            free = (free[0] - task[0], free[1] - task[1])
        else:
            left.append(task)
    return free, left


def first_fit_decreasing(
    tasks: Iterable[Shape], bins: Sequence[Shape]
) -> tuple[list[Shape], list[Shape]]:
    """First-fit-decreasing bin packing: each task, largest first, into the first of ``bins``
    (free room) with room for it. The tasks left without room, and the bins' room left."""
    room = list(bins)
    left: list[Shape] = []
    for task in largest_first(tasks):
        at = next((i for i, free in enumerate(room) if room_for(free, task)), None)
        if at is None:
            left.append(task)
        else:
            room[at] = (room[at][0] - task[0], room[at][1] - task[1])
    return left, room


# a task, and the capacity providers it is bound to (none: any)
Bound = tuple[Shape, tuple[str, ...]]
Bin = tuple[Shape, str]  # an instance's free room, and the capacity provider it belongs to


def holds(room: Bin, task: Bound) -> bool:
    """Whether ``room`` takes ``task``: room for it, on a provider it may use."""
    return room_for(room[0], task[0]) and allows(task[1], room[1])


def bound_first(tasks: Iterable[Bound]) -> list[Bound]:
    """Tasks in the order bound packing places them: those bound to capacity providers first (they
    have fewer places to go), each kind largest first (:func:`largest_first`)."""
    return sorted(tasks, key=lambda t: (not t[1], -t[0][1], -t[0][0]))


def pack_bound(tasks: Iterable[Bound], bins: Sequence[Bin]) -> tuple[list[Bound], list[Bin]]:
    """:func:`first_fit_decreasing` where a task bound to capacity providers goes only into
    their instances' room: bound tasks first, each into the first bin that :func:`holds` it.
    The tasks left without room (in packing order), and the bins' room left."""
    room = list(bins)
    left: list[Bound] = []
    for task in bound_first(tasks):
        at = next((i for i, b in enumerate(room) if holds(b, task)), None)
        if at is None:
            left.append(task)
        else:
            (cpu, mem), provider = room[at]
            room[at] = ((cpu - task[0][0], mem - task[0][1]), provider)
    return left, room
