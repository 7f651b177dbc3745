"""Undoing the scaler's drains on warnings that did not come true, and stale DRAINING instances.

Two warnings drain an instance that may well keep running: a rebalance recommendation (most are
never followed by an interruption) and an AWS Health scheduled change that only reboots the
instance (it comes back when the event window ends). Before such a drain the scaler writes a
:class:`Mark` on the container instance (the ECS attribute ``scaler.drained``, value
``<reason>@<drained at>/<undo at>``, epoch seconds), so a restart, or another replica, reads back
which DRAINING instances are its own and when each may be set ACTIVE again.

:func:`reactivations` says which to set back to ACTIVE: DRAINING, marked for a reversible reason
whose time has come, and with no final signal (spot interruption warning, lifecycle action,
instance state change, a scheduled retirement) heard for the instance, whichever was raised first
(a warning raised before the recommendation but handled after it still counts). A final signal
also rewrites the mark with its own reason, so the answer survives a restart. An instance with no
mark was drained by someone else (by hand) and is never touched.

:func:`stale_draining` names the DRAINING instances that have drained for longer than the drain
timeout without a live reason (a spot notice, a retirement by the scaler, a reactivation still to
come): the capacity side logs them and stops counting them as doomed, so one forgotten DRAINING
instance cannot hold back the return to spot, consolidation or the roll forever.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

ATTRIBUTE = "scaler.drained"  # ECS attribute names allow letters, digits, - _ / \ and .
REVERSIBLE = ("rebalance_recommendation", "scheduled_reboot")


@dataclass(frozen=True)
class Mark:
    """Why and when the scaler drained an instance, and when it may undo that drain."""

    reason: str
    at: float  # epoch seconds of the drain
    until: float  # epoch seconds from which the drain may be undone (reversible reasons)

    @property
    def text(self) -> str:
        return f"{self.reason}@{int(self.at)}/{math.ceil(self.until)}"

    @property
    def reversible(self) -> bool:
        return self.reason in REVERSIBLE


def parse_mark(text: str) -> Mark | None:
    """The mark written as ``text``; None for anything else (not the scaler's)."""
    reason, _, times = text.partition("@")
    at, _, until = times.partition("/")
    if not reason or not at.isdigit() or not until.isdigit():
        return None
    return Mark(reason, float(at), float(until))


@dataclass(frozen=True)
class Drained:
    """A container instance as the undo decision sees it."""

    instance_id: str
    status: str  # ACTIVE | DRAINING
    mark: Mark | None


@dataclass(frozen=True)
class Undo:
    """Set ``instance_id`` ACTIVE again (``activate``) and remove its mark; or, for one already
    ACTIVE (set so by hand), only remove the mark."""

    instance_id: str
    reason: str
    activate: bool


def reactivations(
    drained: Iterable[Drained], final: Mapping[str, float], now: float
) -> tuple[Undo, ...]:
    """The scaler's own reversible drains whose time has come (``final``: the instances a final
    signal was heard for, and when it was raised, epoch seconds)."""
    undo: list[Undo] = []
    for d in sorted(drained, key=lambda d: d.instance_id):
        mark = d.mark
        if mark is None or not mark.reversible or now < mark.until:
            continue
        if d.status == "DRAINING":
            if d.instance_id in final:
                continue  # the warning came true after all
            undo.append(Undo(d.instance_id, mark.reason, activate=True))
        elif d.status == "ACTIVE":
            undo.append(Undo(d.instance_id, mark.reason, activate=False))
    return tuple(undo)


def stale_draining(
    since: Mapping[str, float],
    marks: Mapping[str, Mark | None],
    live: Mapping[str, str],
    now: float,
    timeout: float,
) -> dict[str, str]:
    """DRAINING instances (``since``: id -> when they were first seen or marked DRAINING) past
    ``timeout`` with no live reason (``live``: id -> the reason), with why they are DRAINING."""
    stale: dict[str, str] = {}
    for iid, start in sorted(since.items()):
        if iid in live or now - start <= timeout:
            continue
        mark = marks.get(iid)
        stale[iid] = (
            f"drained by the scaler for {mark.reason}"
            if mark is not None
            else "drained outside the scaler (no scaler mark)"
        )
    return stale
