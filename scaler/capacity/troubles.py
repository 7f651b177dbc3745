"""Pools in trouble: what makes the capacity plan avoid a pool for a while.

A spot notice or a rebalance recommendation on an instance marks its spot pool; a pool EC2 Fleet
could not fill, a group whose scaling activities say a launch failed, and a group that has not
started what it was asked for within ``LAUNCH_GRACE`` are out of capacity. Each is remembered in
the planner's :class:`~scaler.plan.capacity.CapacityMemory` (cooled down), so the next plan turns
to other pools, and to on-demand, at once.
"""

from __future__ import annotations

import logging

from scaler.capacity import LOGGER
from scaler.capacity.observed import Observed
from scaler.notices import NoticeBoard
from scaler.plan.capacity import SPOT, CapacityMemory

log = logging.getLogger(LOGGER)

LAUNCH_GRACE = 240.0  # seconds a group may take to start what it was asked for


def noticed(memory: CapacityMemory, board: NoticeBoard, observed: Observed) -> CapacityMemory:
    """``memory`` with the notices and recommendations heard of marking their spot pools."""
    snap = observed.snapshot
    spot = {p.name for p in snap.pools if p.capacity == SPOT}
    pool_of = {n.id: n.pool for n in snap.nodes if n.pool in spot}
    for iid, at in board.noticed.items():
        if iid in pool_of:
            memory = memory.noting(pool_of[iid], at)
    return memory


def short(memory: CapacityMemory, shortfalls: dict[str, float], spot: set[str]) -> CapacityMemory:
    """``memory`` with the template pools EC2 Fleet could not fill out of capacity (cooled
    down); ``shortfalls`` emptied."""
    for name, at in sorted(shortfalls.items()):
        log.warning("pool out of capacity: avoiding it", extra={"group": name})
        memory = memory.failing(name, at, spot=name in spot)
    shortfalls.clear()
    return memory


def owing(asked: dict[str, tuple[int, float]], observed: Observed) -> dict[str, float]:
    """Group -> when it was asked, for the groups that have not yet started what they were
    asked for."""
    return {
        name: since
        for name, (target, since) in asked.items()
        if observed.live.get(name, 0) < target
    }


def unlaunched(
    memory: CapacityMemory,
    asked: dict[str, tuple[int, float]],
    observed: Observed,
    now: float,
    failed: dict[str, str],
    spot: set[str],
) -> CapacityMemory:
    """``memory`` with the groups that could not start what they were asked for (``failed``:
    their scaling activities say why), or have not started it within ``LAUNCH_GRACE``, out of
    capacity; ``asked`` forgets them, and those that started it."""
    for name, (target, since) in list(asked.items()):
        if observed.live.get(name, 0) >= target:
            del asked[name]
        elif name in failed:
            log.warning(
                "group could not launch what it was asked for: avoiding it",
                extra={"group": name, "asked": target, "why": failed[name]},
            )
            memory = memory.failing(name, now, spot=name in spot)
            del asked[name]
        elif now - since > LAUNCH_GRACE:
            log.warning(
                "group did not launch what it was asked for: avoiding it",
                extra={"group": name, "asked": target, "live": observed.live.get(name)},
            )
            memory = memory.failing(name, now, spot=name in spot)
            del asked[name]
    return memory
