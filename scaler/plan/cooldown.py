"""Cooldowns: the rebalancer's memory of its own moves, and the capacity planner's storms.

**Storms.** Spot trouble is correlated: EC2 reclaims an instance type in several AZs at once,
or one AZ for several types. A pool interrupted (or refusing to launch) is cooled down on its
own; :func:`correlated` cools down what is correlated with it: an instance type ``together``
pools of which (or more) were in trouble within ``window`` seconds of one another is cooled in
every AZ, and an AZ ``together`` pools of which were is cooled for every type, for ``cooldown``
seconds after the latest of those troubles. Pools of unknown type (``""``) or of
every AZ (``"*"``, an Auto Scaling group picks the AZ) correlate on what is known of them.

**Moves.** The rebalancer's hourly budget and the per-task cooldown.

A move's *replacement* (the task ECS started for it: the extra task of a surge, or the task
started after a stop) must not be moved again for ``task_cooldown`` seconds, or tasks would
ping-pong between instances. The replacement is identified by comparing the service's tasks
before and after the move (:meth:`MoveHistory.replaced`); until then, every task of the service
started since the move is treated as the replacement. Tasks a later deployment starts are not
replacements, and may be moved as soon as they are old enough.

Keys are whatever the caller names tasks by (model task ids in the simulator, task ARNs in
production); :class:`Cooling` is what the planner reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

HOUR = 3600.0
EVERY_AZ, UNKNOWN = "*", ""


@dataclass(frozen=True)
class Storms:
    """Instance types and AZs cooled down as a whole."""

    types: frozenset[str] = frozenset()
    azs: frozenset[str] = frozenset()

    def holds(self, instance_type: str, az: str) -> bool:
        """Whether a pool of ``instance_type`` in ``az`` is cooled down by a storm."""
        return instance_type in self.types or az in self.azs


def correlated(
    troubles: Mapping[str, float],
    kinds: Mapping[str, tuple[str, str]],
    now: float,
    window: float,
    cooldown: float,
    together: int = 2,
) -> Storms:
    """The types and AZs in a storm now, from each pool's latest trouble (``troubles``: pool ->
    time) and what each pool is (``kinds``: pool -> (instance type, AZ))."""
    by_type: dict[str, list[tuple[float, str]]] = {}
    by_az: dict[str, list[tuple[float, str]]] = {}
    for pool, at in troubles.items():
        if pool not in kinds or now - at >= cooldown:
            continue
        kind, az = kinds[pool]
        if kind != UNKNOWN:
            by_type.setdefault(kind, []).append((at, pool))
        if az != EVERY_AZ:
            by_az.setdefault(az, []).append((at, pool))
    return Storms(
        frozenset(k for k, seen in by_type.items() if _together(seen, window, together)),
        frozenset(z for z, seen in by_az.items() if _together(seen, window, together)),
    )


def _together(seen: Iterable[tuple[float, str]], window: float, together: int) -> bool:
    """Whether ``together`` of the pools ``seen`` (time, pool) were in trouble within ``window``
    seconds of one another."""
    ordered = sorted(seen)
    for i, (start, _) in enumerate(ordered):
        pools = {pool for at, pool in ordered[i:] if at - start <= window}
        if len(pools) >= together:
            return True
    return False


@dataclass(frozen=True)
class Cooling:
    """What the cooldown keeps in place now."""

    tasks: frozenset[str] = frozenset()  # replacements of recent moves, by task key
    since: Mapping[str, float] = field(default_factory=dict)  # service -> its unmatched move

    def holds(self, service: str, task: str, created_at: float) -> bool:
        """Is this task a recent move's replacement (or possibly one, while not identified)?"""
        if task in self.tasks:
            return True
        moved = self.since.get(service)
        return moved is not None and created_at >= moved

    def renamed(self, ids: Mapping[str, str]) -> Cooling:
        """The same cooldown with the replacements named by model task id (``ids``: the
        caller's key -> the model's id; replacements no longer running drop out)."""
        return Cooling(frozenset(ids[k] for k in self.tasks if k in ids), self.since)


@dataclass
class MoveHistory:
    """The scaler's recent moves: (time, service) for the budget, and each move's replacement."""

    moves: list[tuple[float, str]] = field(default_factory=list)
    unmatched: dict[str, float] = field(default_factory=dict)  # service -> move time
    replacements: dict[str, float] = field(default_factory=dict)  # task key -> move time

    def record(self, service: str, now: float) -> None:
        self.moves.append((now, service))
        self.unmatched[service] = now

    def replaced(self, service: str, task: str) -> None:
        """The move of ``service`` was replaced by ``task`` (its key)."""
        moved = self.unmatched.pop(service, None)
        if moved is not None:
            self.replacements[task] = moved

    def forget(self, now: float, keep: float) -> None:
        self.moves = [(t, s) for t, s in self.moves if now - t < max(keep, HOUR)]
        self.unmatched = {s: t for s, t in self.unmatched.items() if now - t < keep}
        self.replacements = {k: t for k, t in self.replacements.items() if now - t < keep}

    def last_hour(self, now: float) -> int:
        return sum(1 for t, _ in self.moves if now - t < HOUR)

    def cooling(self, now: float, cooldown: float) -> Cooling:
        return Cooling(
            frozenset(k for k, t in self.replacements.items() if now - t < cooldown),
            {s: t for s, t in self.unmatched.items() if now - t < cooldown},
        )
