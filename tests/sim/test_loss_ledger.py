"""The demo's loss ledger: its per-service causes add up to exactly what availability misses."""

from __future__ import annotations

import pytest

from scaler.demo_story import LossLedger
from scaler.ecs.cluster import Task
from scaler.sim.builtin import builtin
from scaler.sim.engine import Sim
from scaler.sim.policies import POLICIES


def _why(task: Task, reason: str) -> str:
    return reason


@pytest.mark.parametrize("policy", ["scaler", "ecs-scaler", "ecs-native"])
def test_lost_task_seconds_by_cause_sum_to_what_availability_misses(policy: str) -> None:
    scenario = builtin("storm", instances=24, tasks=200, services=8).with_hours(0.5)
    sim = Sim(scenario, POLICIES[policy](), seed=7)
    sim.acct = ledger = LossLedger(scenario.hot_threshold, _why)
    figures = sim.run()
    missed = ledger.want - ledger.avail
    assert figures["availability"] < 1  # the storm costs something, or this checks nothing
    assert ledger.missing_seconds == pytest.approx(missed, rel=1e-9)
    causes = {cause for by_cause in ledger.lost.values() for cause in by_cause}
    # every missing second is pinned on the stop that left its service short; ECS's AZ
    # rebalancing stops a task only once its replacement is healthy, so it never is one
    assert "drained" in causes
    assert causes <= {"drained", "instance-terminated"}
    lines = ledger.explain()
    assert len([line for line in lines if " lost " in line]) == sum(
        1 for by_cause in ledger.lost.values() if sum(by_cause.values()) > 0
    )
