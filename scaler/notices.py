"""What the event handler has heard that the capacity planner needs: spot notices in progress.

A spot interruption warning gives an instance two minutes; the planner must count its tasks as
losing their place from that moment, even before ECS shows the instance DRAINING, and must avoid
its pool for a while. The handler writes here; the capacity controller reads. Entries expire a
while after their notice ends, so the board stays small.

``final`` records the signals after which an instance is not coming back (spot interruption
warning, lifecycle action, stopping or terminated, scheduled retirement): a drain the scaler made
on a mere recommendation is never undone once one of them was heard (:mod:`scaler.plan.undrain`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

NOTICE_SECONDS = 120.0
KEEP_AFTER = 600.0
KEEP_FINAL = 86400.0  # longer than any reversible drain waits to be undone


@dataclass
class NoticeBoard:
    """EC2 instance id -> when its notice ends (epoch seconds); plus when it was noticed."""

    ends: dict[str, float] = field(default_factory=dict)
    noticed: dict[str, float] = field(default_factory=dict)
    final: dict[str, float] = field(default_factory=dict)  # instance id -> last final signal

    def warned(self, instance_id: str, at: float, notice: float = NOTICE_SECONDS) -> None:
        """A spot interruption warning raised at ``at`` (epoch seconds)."""
        self.ends[instance_id] = min(self.ends.get(instance_id, at + notice), at + notice)
        self.noticed.setdefault(instance_id, at)

    def recommended(self, instance_id: str, at: float) -> None:
        """A rebalance recommendation: not doomed yet, but its pool is in trouble."""
        self.noticed.setdefault(instance_id, at)

    def finalised(self, instance_id: str, at: float) -> None:
        """A final signal raised at ``at`` (epoch seconds)."""
        self.final[instance_id] = max(self.final.get(instance_id, at), at)

    def prune(self, now: float) -> None:
        for iid in [i for i, end in self.ends.items() if end + KEEP_AFTER < now]:
            del self.ends[iid]
        for iid in [i for i, at in self.noticed.items() if at + 2 * KEEP_AFTER < now]:
            del self.noticed[iid]
        for iid in [i for i, at in self.final.items() if at + KEEP_FINAL < now]:
            del self.final[iid]
