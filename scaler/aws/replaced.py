"""Instances an Auto Scaling group replaces by itself, that the scaler had replaced already.

The scaler replaces an instance ahead of its loss: while an instance under a spot notice (or
draining) is still in its group, the group's desired capacity is its live instances (those that
survive and those leaving) plus what the plan adds, so the replacement launches at once. But the
group counts the leaving instance in its desired capacity until it is gone, and when EC2 reclaims
it, Auto Scaling launches a replacement of its own to keep that desired capacity: one instance
too many for each interruption, for good.

:class:`Replacements` remembers, from one cycle to the next, each group's live instances, those
leaving and the desired capacity the cycle left it at. A leaving instance that is gone without
the scaler's own terminate (which decrements the desired capacity) is *lost*: the group may
replace it. A new instance the group launched beyond what it owed (its desired capacity less its
live instances) while a lost one is remembered is a *surplus*: the capacity cycle drains an empty
instance of the group for it (never one running a task) and terminates it with the desired
capacity decremented, unless the capacity plan would launch it back. A lost instance the group
has not replaced within ``REPLACE_GRACE`` (a group that does not replace, or cannot) is given back
by lowering the desired capacity, never below the live instances, so nothing is terminated by it.
What is not settled within ``LOST_MEMORY`` is forgotten (consolidation may still scale it in).
"""

from __future__ import annotations

from dataclasses import dataclass, field

REPLACE_GRACE = 120.0  # seconds a group takes to replace a lost instance by itself
LOST_MEMORY = 600.0  # seconds a lost instance, or a surplus, is remembered


@dataclass(frozen=True)
class GroupState:
    """An Auto Scaling group as a cycle read it, and the desired capacity it left it at."""

    members: frozenset[str]  # live instances (Pending or InService)
    leaving: frozenset[str]  # those of them doomed: under a spot notice, or draining
    desired: int


@dataclass
class Replacements:
    grace: float = REPLACE_GRACE
    last: dict[str, GroupState] = field(default_factory=dict)
    lost: dict[str, list[float]] = field(default_factory=dict)  # group -> when each was lost
    surplus: dict[str, list[float]] = field(default_factory=dict)  # group -> when each was seen
    let_go: set[str] = field(default_factory=set)  # terminated with the desired decremented

    def observe(self, group: str, members: frozenset[str], now: float) -> None:
        """Compare a group's live instances with the last cycle's: note those lost, and the
        surplus the group launched for them."""
        lost = [t for t in self.lost.get(group, []) if now - t < LOST_MEMORY]
        surplus = [t for t in self.surplus.get(group, []) if now - t < LOST_MEMORY]
        last = self.last.get(group)
        if last is not None:
            gone = last.leaving - members - self.let_go
            lost += [now] * len(gone)
            owed = max(0, last.desired - len(last.members))
            unasked = max(0, len(members - last.members) - owed)
            found = min(unasked, len(lost))
            surplus += [now] * found
            lost = lost[found:]
            self.let_go -= last.members - members  # this group's alone: the set is shared
        self.lost[group], self.surplus[group] = lost, surplus

    def record(self, group: str, state: GroupState) -> None:
        """What the cycle left the group at, for the next one to compare with."""
        self.last[group] = state

    def unreplaced(self, group: str, now: float) -> int:
        """Lost instances the group has not replaced within the grace."""
        return sum(1 for t in self.lost.get(group, []) if now - t >= self.grace)

    def turns(self) -> list[float]:
        """When what is remembered changes what a cycle does by time alone: a lost instance's
        grace ending, and a loss or a surplus forgotten."""
        lost = [t + s for ts in self.lost.values() for t in ts for s in (self.grace, LOST_MEMORY)]
        return lost + [t + LOST_MEMORY for ts in self.surplus.values() for t in ts]

    def given_back(self, group: str, count: int) -> None:
        """``count`` unreplaced lost instances no longer counted in the desired capacity."""
        self.lost[group] = self.lost.get(group, [])[count:]

    def excess(self, group: str) -> int:
        return len(self.surplus.get(group, []))

    def removed(self, group: str) -> None:
        """One surplus instance is being drained away."""
        self.surplus[group] = self.surplus.get(group, [])[1:]
