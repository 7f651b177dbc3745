"""Carrying out a roll plan: replacements first, then drains, through the actuator port.

:func:`scaler.plan.roll.plan_roll` decides; :class:`RollMemory` keeps what it needs between
cycles (replacements not yet matched by a drain, this hour's launches) and :func:`carry_out`
launches and drains through an :class:`~scaler.capacity.ports.Actuator`. The roll of a new
launch template version (:mod:`scaler.aws.roll`) and the move off Spot Fleets
(:mod:`scaler.aws.migration`) both carry out their plans here.

With a :class:`~scaler.capacity.ports.ServiceSurges` port the roll surges first: an instance it
drains waits (in :attr:`RollMemory.waiting`) while the services that would dip get their counts
raised, and drains once they are steady or after ``RollPolicy.surge_wait``
(:func:`scaler.plan.roll.plan_surges`); the counts are set back here too, in later cycles.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping

from scaler.capacity import LOGGER
from scaler.capacity.observed import Drift, Observed
from scaler.capacity.ports import Actuator, ServiceSurges
from scaler.plan.capacity import CapacityMemory, CapacitySnapshot
from scaler.plan.roll import (
    Deployment,
    Machine,
    RollPlan,
    RollPolicy,
    RollState,
    SurgeMark,
    SurgePlan,
    plan_roll,
    plan_surges,
)

log = logging.getLogger(LOGGER)

SURGE_RECHECK = 300.0  # seconds between reads of the services' surge marks when none is known


async def carry_out(
    plan: RollPlan,
    observed: Observed,
    actuator: Actuator,
    reason: str,
    launched_at: list[float],
    surge: PreDrainSurge | None = None,
) -> RollState:
    """Launch a roll plan's replacements (their times added to ``launched_at``), tag and drain
    the instances it drains that their groups can spare and keep balanced across AZs (with
    ``surge``, once their services surged); the state to plan with next (launches that failed
    taken out)."""
    now = observed.snapshot.now
    state = plan.state
    for pool, count in sorted(plan.launch.items()):
        added = await actuator.grow(pool, count, observed, now, reason)
        launched_at += [now] * added
        if added < count:
            state = state.failed(pool, count - added)
    drains = actuator.removable(observed, plan.drain)
    if surge is not None:
        drains = await surge.step(drains, observed, hold=plan.paused)
    for node in drains:
        ci = observed.instances.get(node)
        if ci is not None and await actuator.mark_retiring(node, reason):
            await actuator.drain(ci, reason)
    return state


def roll_machines(snap: CapacitySnapshot) -> dict[str, Machine]:
    """The scaler's groups' instances as the roll sees them: placed by group."""
    managed = {p.name for p in snap.pools if p.managed}
    return {n.id: Machine(n.id, n.pool, n.status, n.tasks) for n in snap.nodes if n.pool in managed}


class RollMemory:
    """What the roll keeps between cycles: replacements not yet matched, drains this hour."""

    def __init__(self) -> None:
        self.state = RollState()
        self.launched_at: list[float] = []  # the hourly budget counts launches
        self.waiting: dict[str, float] = {}  # instance to drain -> since, its surges under way
        self._marked = True  # services may carry surge marks (not read yet, or read so)
        self._read_at: float | None = None  # when the services' marks were last read

    def surge_read_due(self, now: float, busy: bool) -> bool:
        """Whether to read the services' marks now: with instances to surge for, marks known,
        or none read for ``SURGE_RECHECK`` (a surge another replica started)."""
        stale = self._read_at is None or now - self._read_at >= SURGE_RECHECK
        return busy or self._marked or stale

    def surges_read(self, now: float, marked: bool) -> None:
        self._read_at, self._marked = now, marked

    def plan(
        self,
        snap: CapacitySnapshot,
        drift: Drift,
        memory: CapacityMemory,
        policy: RollPolicy,
        blocked: frozenset[str] = frozenset(),
    ) -> RollPlan:
        """``blocked``: groups not to ask for replacements now."""
        now = snap.now
        self.launched_at = [t for t in self.launched_at if now - t < 3600.0]
        noticed = {n.id for n in snap.nodes if n.notice_ends is not None}
        ours = {n.id for n in snap.nodes if n.id in drift.retiring and n.status == "DRAINING"}
        ours |= set(self.waiting)  # drained once their services surged
        return plan_roll(
            roll_machines(snap),
            drift.outdated,
            now,
            policy,
            self.state,
            ours=ours,
            unplaced=sum(s.unplaced for s in snap.services),
            doomed=noticed,
            # launches whose drain is done (or never comes): the budget caps launches
            replaced_last_hour=max(0, len(self.launched_at) - self.state.in_flight),
            last_trouble=memory.last_spot_trouble(),
            blocked=blocked,
        )


class PreDrainSurge:
    """The roll's surge before each drain, through a :class:`ServiceSurges` port; what waits
    lives in ``memory.waiting``, what was raised in the services' marks. Off (``policy.surge``
    false), instances drain at once and only marks left from before are settled."""

    def __init__(self, port: ServiceSurges, memory: RollMemory, policy: RollPolicy) -> None:
        self._port = port
        self._memory = memory
        self._policy = policy

    async def step(
        self, candidates: list[str], observed: Observed, hold: bool = False
    ) -> list[str]:
        """Raise, wait, set back; the instances to drain now. ``hold``: the roll is paused,
        nothing is raised or drained (counts are still set back)."""
        snap, memory, on = observed.snapshot, self._memory, self._policy.surge
        if not on:
            memory.waiting.clear()
        queue = bool(candidates or memory.waiting)
        if not memory.surge_read_due(snap.now, queue and on):
            return candidates
        services = await self._port.read([s.name for s in snap.services])
        if services is None:  # not drained unsurged for a failed read, unless waited enough
            for node in candidates:
                memory.waiting.setdefault(node, snap.now)
            waited = snap.now - self._policy.surge_wait
            due = [] if hold else [n for n, t in memory.waiting.items() if t <= waited]
            memory.waiting = {n: t for n, t in memory.waiting.items() if n not in due}
            return due if on else candidates
        memory.surges_read(snap.now, any(d.mark for d in services.values()))
        plan = plan_surges(
            candidates if on else [],
            memory.waiting,
            _tasks_on(snap),
            services,
            {n.id for n in snap.nodes if n.status == "ACTIVE"} if on else (),
            {n.id for n in snap.nodes if n.status == "DRAINING"},
            snap.now,
            self._policy.surge_wait,
            hold and on,
        )
        await self._carry_out(plan, services)
        memory.waiting = dict(plan.waiting)
        if plan.raises:
            memory.surges_read(snap.now, True)
        return list(plan.drain) if on else candidates

    async def _carry_out(self, plan: SurgePlan, services: dict[str, Deployment]) -> None:
        for why in plan.reasons:
            log.info("roll surge decision", extra={"reason": why})
        await apply_surges(self._port, plan.raises, plan.set_back, services, "a roll surge")


async def apply_surges(
    port: ServiceSurges,
    raises: Mapping[str, SurgeMark],
    set_back: Mapping[str, int | None],
    services: Mapping[str, Deployment],
    kind: str,
) -> None:
    """Raise the counts ``raises`` marks (each mark written first), then set the counts back (or
    only unmark those someone else changed during ``kind``, warned)."""
    for name, mark in sorted(raises.items()):
        why = (
            f"raise {name} {services[name].desired} -> {mark.raised} before {mark.instance} drains"
        )
        await port.raise_count(name, mark, why)
    for name, to in sorted(set_back.items()):
        if to is None:
            log.warning(
                f"desired count changed during {kind}: left as it is",
                extra={"service": name, "desired": services[name].desired},
            )
        why = f"set {name} back to {to}" if to is not None else f"unmark {name}"
        await port.set_back(name, to, why)


def _tasks_on(snap: CapacitySnapshot) -> dict[str, dict[str, int]]:
    """Instance -> service -> its tasks there."""
    tasks_on: dict[str, dict[str, int]] = defaultdict(dict)
    for svc in snap.services:
        for node, count in svc.tasks_on.items():
            tasks_on[node][svc.name] = count
    return tasks_on
