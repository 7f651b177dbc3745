"""Carrying out a roll plan: replacements first, then drains, through the actuator port.

:func:`scaler.plan.roll.plan_roll` decides; :class:`RollMemory` keeps what it needs between
cycles (replacements not yet matched by a drain, this hour's launches) and :func:`carry_out`
launches and drains through an :class:`~scaler.capacity.ports.Actuator`. The roll of a new
launch template version (:mod:`scaler.aws.roll`) and the move off Spot Fleets
(:mod:`scaler.aws.migration`) both carry out their plans here.
"""

from __future__ import annotations

from scaler.capacity.observed import Drift, Observed
from scaler.capacity.ports import Actuator
from scaler.plan.capacity import CapacityMemory, CapacitySnapshot
from scaler.plan.roll import Machine, RollPlan, RollPolicy, RollState, plan_roll


async def carry_out(
    plan: RollPlan,
    observed: Observed,
    actuator: Actuator,
    reason: str,
    launched_at: list[float],
) -> RollState:
    """Launch a roll plan's replacements (their times added to ``launched_at``), tag and drain
    the instances it drains that their groups can spare and keep balanced across AZs; the state
    to plan with next (launches that failed taken out)."""
    now = observed.snapshot.now
    state = plan.state
    for pool, count in sorted(plan.launch.items()):
        added = await actuator.grow(pool, count, observed, now, reason)
        launched_at += [now] * added
        if added < count:
            state = state.failed(pool, count - added)
    for node in actuator.removable(observed, plan.drain):
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
