"""A consolidation plan that chose nothing stands (the cluster is not read again) only while a
fresh plan would choose nothing too: every plan that stood in half a day of ``diurnal`` (a
cluster that shrinks and grows, so consolidation plans often) is checked against a fresh one,
through the shipped scaler in the simulated AWS. A stand that missed the cluster's changes (the
reader's fingerprint and the capacity snapshot) fails it at once; the durations a plan depends
on are checked, more sharply, by the property test of :func:`scaler.plan.scale_in.next_turn`."""

from __future__ import annotations

from typing import Any

import pytest

from scaler.aws.consolidation import Consolidator
from scaler.aws.live import live_cluster
from scaler.plan.consolidate import ConsolidationPlan
from scaler.sim.builtin import builtin
from scaler.sim.cloud.shipped import run_shipped


@pytest.mark.slow
def test_a_plan_stands_only_while_a_fresh_one_would_choose_nothing_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    planned = Consolidator.plan
    stood: list[float] = []
    unsound: list[tuple[float, int]] = []
    reads: list[int] = []

    async def checked(self: Consolidator, snap: Any, facts: Any, memory: Any, *rest: Any) -> Any:
        before, standing = self.reads, self._stands
        plan: ConsolidationPlan = await planned(self, snap, facts, memory, *rest)
        reads.append(self.reads)
        if self.reads > before or standing is None or plan.reasons:
            return plan  # read and planned afresh, or paused: nothing stood
        stood.append(snap.now)
        live = await live_cluster(self._aws, self._settings.cluster)
        candidates = self._annotate(live, snap, facts)
        fresh = self._plan(live, snap, memory, rest[0], candidates)
        if fresh.remove:
            unsound.append((snap.now, len(fresh.remove)))
        return plan

    monkeypatch.setattr(Consolidator, "plan", checked)
    outcome = run_shipped(builtin("diurnal", seed=1).with_hours(12), 1, capacity=True)
    assert outcome.figures["availability"] > 0.99
    assert stood and max(reads) >= 3, "plans were made and some stood: the check checked"
    assert not unsound, (
        f"{len(unsound)} plans stood that a fresh plan would not have: {unsound[:5]}"
    )
