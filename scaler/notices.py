"""What the event handler has heard that the capacity planner needs: spot notices in progress.

A spot interruption warning gives an instance two minutes; the planner must count its tasks as
losing their place from that moment, even before ECS shows the instance DRAINING, and must avoid
its pool for a while. The handler writes here; the capacity controller reads. Entries expire a
while after their notice ends, so the board stays small.

``final`` records the signals after which an instance is not coming back (spot interruption
warning, lifecycle action, stopping or terminated, scheduled retirement): a drain the scaler made
on a mere recommendation is never undone once one of them was heard (:mod:`scaler.plan.undrain`).

With replicas, the replica that heard a notice may not be the one running the capacity
controller: every replica publishes what it hears as :class:`SharedNotice` records
(:mod:`scaler.aws.shared_notices`) and the leader merges them into its board each capacity cycle
(:meth:`NoticeBoard.merge`). A ``replacement`` record is a ``replace-then-drain`` request: the
instance counts as losing its place until its ``end``, as on the board of the replica that
asked. A ``changed`` record says an ECS event for the cluster (a container instance changing, a
task ECS could not place) reached some replica: the leader's quiet capacity cycles end on it
(:mod:`scaler.capacity.quiet`) whichever replica took the event. A record expires when the
board would prune what it says.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

NOTICE_SECONDS = 120.0
KEEP_AFTER = 600.0
KEEP_FINAL = 86400.0  # longer than any reversible drain waits to be undone

WARNING = "warning"
RECOMMENDATION = "recommendation"
FINAL = "final"
REPLACEMENT = "replacement"
CHANGED = "changed"


@dataclass(frozen=True)
class SharedNotice:
    """What one replica heard about an instance, for the others (epoch seconds throughout)."""

    instance_id: str
    kind: str  # WARNING, RECOMMENDATION, FINAL, REPLACEMENT or CHANGED
    at: float  # when it was raised (for a replacement: asked)
    end: float | None  # when the instance loses its place (warnings and replacements)
    expires: float  # after this it says nothing the board would keep
    ready: float | None = None  # a replacement's: when the leader found its capacity ready


def shared(instance_id: str, kind: str, at: float, end: float | None = None) -> SharedNotice:
    """The record of a notice raised at ``at``; a warning ends ``NOTICE_SECONDS`` later unless
    ``end`` says otherwise."""
    if kind in (WARNING, REPLACEMENT):
        end = at + NOTICE_SECONDS if end is None else end
        return SharedNotice(instance_id, kind, at, end, max(end, at) + KEEP_AFTER)
    keep = KEEP_FINAL if kind == FINAL else 2 * KEEP_AFTER
    return SharedNotice(instance_id, kind, at, None, at + keep)


@dataclass
class NoticeBoard:
    """EC2 instance id -> when its notice ends (epoch seconds); plus when it was noticed."""

    ends: dict[str, float] = field(default_factory=dict)
    noticed: dict[str, float] = field(default_factory=dict)
    final: dict[str, float] = field(default_factory=dict)  # instance id -> last final signal
    # instance id (or service ARN) -> when an ECS event last said it changed
    changed: dict[str, float] = field(default_factory=dict)

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

    def merge(self, notices: Iterable[SharedNotice], now: float) -> None:
        """Take in records shared by replicas: the newest of each instance and kind, unless
        expired at ``now``. Merging the same records again changes nothing."""
        newest: dict[tuple[str, str], SharedNotice] = {}
        for n in notices:
            key = (n.instance_id, n.kind)
            if n.expires > now and (key not in newest or n.at > newest[key].at):
                newest[key] = n
        for n in newest.values():
            if n.kind in (WARNING, REPLACEMENT) and n.end is not None:
                self.warned(n.instance_id, n.at, notice=n.end - n.at)
            elif n.kind == RECOMMENDATION:
                self.recommended(n.instance_id, n.at)
            elif n.kind == FINAL:
                self.finalised(n.instance_id, n.at)
            elif n.kind == CHANGED:
                self.changed[n.instance_id] = max(self.changed.get(n.instance_id, n.at), n.at)

    def prune(self, now: float) -> None:
        for iid in [i for i, end in self.ends.items() if end + KEEP_AFTER < now]:
            del self.ends[iid]
        for iid in [i for i, at in self.noticed.items() if at + 2 * KEEP_AFTER < now]:
            del self.noticed[iid]
        for iid in [i for i, at in self.final.items() if at + KEEP_FINAL < now]:
            del self.final[iid]
        for iid in [i for i, at in self.changed.items() if at + 2 * KEEP_AFTER < now]:
            del self.changed[iid]
