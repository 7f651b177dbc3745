"""A quiet capacity cycle (:mod:`scaler.capacity.quiet`) skips only what a full cycle would not
have acted on: at every quiet cycle of half a day of ``diurnal`` (services whose desired counts
rise and fall all day, so the probe must see them) a fresh reader reads the whole cluster through
the simulated AWS: it must show what the last full cycle read (every service's desired count and
placement, every instance's status and free room, every pool's size), and the capacity plan on it
must launch, give back and evacuate nothing, on a cluster still settled.

One lag is allowed, once: a desired count changed in the seconds before the probe, before ECS's
scheduler started or stopped a task for it, shows in the services alone (the probe reads them
every fourth cycle) and in the cluster's counts at the next probe; the fresh read, seconds of
calls long, may also find the tasks ECS started or stopped for it meanwhile. So a quiet cycle
whose fresh read finds a desired count changed passes if the next cycle is full. A probe that
missed a change for longer fails it (a probe that always answers "unchanged" fails it within
minutes)."""

from __future__ import annotations

from typing import Any

import pytest

from scaler.aws.capacity_reader import CapacityReader
from scaler.capacity.controller import CapacityController
from scaler.capacity.observed import Observed
from scaler.capacity.quiet import unsettled
from scaler.capacity.troubles import owing
from scaler.plan.capacity import CapacitySnapshot, plan_capacity
from scaler.sim.builtin import builtin
from scaler.sim.cloud.shipped import run_shipped


def _seen(snap: CapacitySnapshot) -> tuple[Any, ...]:
    """What a quiet cycle takes to be as the last full cycle read it."""
    services = sorted((s.name, s.desired, sorted(s.tasks_on.items())) for s in snap.services)
    nodes = sorted((n.id, n.status, n.free_cpu, n.free_memory, n.tasks) for n in snap.nodes)
    return services, nodes, sorted((p.name, p.size) for p in snap.pools)


def _desired_changed(seen: tuple[Any, ...], last: tuple[Any, ...]) -> bool:
    """Whether a service's desired count differs between the two readings."""
    return {n: d for n, d, _ in seen[0]} != {n: d for n, d, _ in last[0]}


@pytest.mark.slow
def test_a_quiet_cycle_skips_only_what_a_full_cycle_would_not_act_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    quiet_cycle = CapacityController.quiet_cycle
    checked: list[float] = []
    unsound: list[tuple[float, str]] = []
    full = [0]
    cycle = CapacityController.cycle
    settled = CapacityController._settled
    last: list[Any] = [None]
    lagging: list[tuple[float, str]] = []  # what the last quiet cycle missed, if only a lag

    async def counted(self: CapacityController) -> Any:
        full[0] += 1
        lagging.clear()  # a full cycle: whatever a quiet one missed is read now
        return await cycle(self)

    def noted(self: CapacityController, observed: Observed, *rest: Any) -> Any:
        last[0] = _seen(observed.snapshot)
        return settled(self, observed, *rest)

    async def checking(self: CapacityController) -> bool:
        if not await quiet_cycle(self):
            lagging.clear()  # a full cycle at once: the lag is over
            return False
        shipped = self._reader
        assert isinstance(shipped, CapacityReader)
        fresh = CapacityReader(shipped._aws, shipped._settings, shipped._directory, self._board)
        now = self._clock.now().timestamp()
        observed = await fresh.read(now)
        plan = plan_capacity(observed.snapshot, self.memory, self._policy)
        pools = {p.name: p for p in observed.snapshot.pools}
        checked.append(now)
        missed = []
        seen = _seen(observed.snapshot)
        if seen != last[0]:
            missed.append((now, "the cluster changed while quiet"))
        if plan.launches(pools) or plan.release or plan.evacuate:
            missed.append((now, "; ".join(plan.reasons)))
        why = unsettled(observed, plan, False, owing(self._actuator.asked, observed), False)
        if why is not None:
            missed.append((now, why))
        if missed and not lagging and _desired_changed(seen, last[0]):
            lagging.extend(missed)  # allowed once: the next cycle must be full
        else:
            unsound.extend(lagging + missed)
            lagging.clear()
        return True

    monkeypatch.setattr(CapacityController, "quiet_cycle", checking)
    monkeypatch.setattr(CapacityController, "cycle", counted)
    monkeypatch.setattr(CapacityController, "_settled", noted)
    outcome = run_shipped(builtin("diurnal", seed=1).with_hours(12), 1, capacity=True)
    assert outcome.figures["availability"] > 0.99
    assert len(checked) > full[0], "most cycles were quiet: the check checked"
    unsound += lagging  # a lag the run ended on
    assert not unsound, f"{len(unsound)} quiet cycles a full one would have acted on: {unsound[:5]}"
