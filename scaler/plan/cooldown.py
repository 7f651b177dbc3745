"""The rebalancer's memory of its own moves: the hourly budget and the per-task cooldown.

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

from collections.abc import Mapping
from dataclasses import dataclass, field

HOUR = 3600.0


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
