"""DRAINING instances that have stopped meaning anything, kept out of the capacity plan.

The capacity planner counts a DRAINING instance as doomed: its tasks need a place, the return to
spot, consolidation and the roll wait for it. That is right while the drain has a live reason,
and wrong forever after: an instance drained by hand and left so, or one whose drain nobody will
finish, would freeze all of them. :class:`StaleDrains` remembers since when each instance has
been DRAINING (its scaler mark's time, else the first capacity read that saw it so; a restart
starts that clock again), asks :func:`scaler.plan.undrain.stale_draining` which are past
``SCALER_DRAIN_TIMEOUT`` without a live reason, logs each once with why it is DRAINING, and
takes them out of the snapshot (``Observed.stale`` keeps them for the metrics). Live reasons:
a spot notice on the notice board, a ``scaler:retiring`` tag (the retire paths terminate it
once empty), a reversible scaler mark whose drain is still to be undone (the reactivator will,
within the drain timeout of its time).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace

from scaler.aws.retiring import Ec2Facts
from scaler.capacity.observed import Observed
from scaler.model import ContainerInstance
from scaler.notices import NoticeBoard
from scaler.plan.undrain import Mark, parse_mark, stale_draining

log = logging.getLogger(__name__)


class StaleDrains:
    def __init__(self, board: NoticeBoard, timeout: float) -> None:
        self._board = board
        self._timeout = timeout
        self._since: dict[str, float] = {}  # instance id -> first seen DRAINING
        self._told: set[str] = set()

    def apply(self, observed: Observed, now: float) -> None:
        """Move the stale DRAINING nodes of ``observed.snapshot`` to ``observed.stale``."""
        draining = {i: ci for i, ci in observed.instances.items() if ci.draining}
        self._since = {i: self._since.get(i, now) for i in draining}
        self._told &= set(draining)
        marks = {i: parse_mark(ci.drain_mark or "") for i, ci in draining.items()}
        since = {i: m.at if m is not None else self._since[i] for i, m in marks.items()}
        live = self._live(draining, marks, observed.facts or {}, now)
        stale = stale_draining(since, marks, live, now, self._timeout)
        for iid, why in stale.items():
            if iid not in self._told:
                log.warning(
                    "instance DRAINING past the drain timeout with no live reason: no longer "
                    "counted as doomed",
                    extra={"instance_id": iid, "why": why, "draining_s": round(now - since[iid])},
                )
                self._told.add(iid)
        snap = observed.snapshot
        observed.stale = tuple(n for n in snap.nodes if n.id in stale)
        kept = tuple(n for n in snap.nodes if n.id not in stale)
        observed.snapshot = replace(snap, nodes=kept)

    def _live(
        self,
        draining: Mapping[str, ContainerInstance],
        marks: Mapping[str, Mark | None],
        facts: Mapping[str, Ec2Facts],
        now: float,
    ) -> dict[str, str]:
        live: dict[str, str] = {}
        for iid in draining:
            mark = marks[iid]
            if iid in self._board.ends:
                live[iid] = "spot notice"
            elif iid in facts and facts[iid].retiring is not None:
                live[iid] = f"retiring ({facts[iid].retiring})"
            elif (
                mark is not None
                and mark.reversible
                and iid not in self._board.final
                and now < mark.until + self._timeout  # not when reactivation keeps failing
            ):
                live[iid] = "to be set ACTIVE again"
        return live
