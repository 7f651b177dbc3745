"""The shipped roll's pre-drain surge in the simulated AWS: services that would dip on a drain
get their counts raised first, which keeps them available; no count stays raised after the
scaler dies mid-surge or its leader goes."""

from __future__ import annotations

from typing import Any

import pytest

from scaler.sim.builtin import builtin
from scaler.sim.cloud.shipped import Crash, Outcome, run_shipped
from scaler.sim.scenario import Scenario
from tests.sim.shipped_helpers import counts_as_scenario, lowerings_in, raises_in

SEED = 3


def _scenario() -> Scenario:
    return builtin("ami-roll", instances=12, tasks=60, services=4).with_hours(3.0)


def _run(surge: bool, **kw: Any) -> tuple[Outcome, list[dict[str, Any]]]:
    records: list[dict[str, Any]] = []
    settings = {"roll": True, "roll_surge": surge, **kw.pop("settings", {})}
    outcome = run_shipped(_scenario(), SEED, settings, capacity=True, trace=records.append, **kw)
    return outcome, records


@pytest.mark.slow
def test_the_surge_keeps_the_roll_at_least_as_available_and_finishes_it() -> None:
    plain, plain_records = _run(False)
    surged, records = _run(True)
    assert not raises_in(plain_records)
    assert raises_in(records), "no service was surged"
    assert surged.calls.get("ecs:TagResource", 0) > 0  # each surge marked before it was made
    assert surged.figures["out_of_date_instances"] == 0
    assert surged.figures["availability"] >= plain.figures["availability"]
    assert surged.figures["min_healthy_violations"] == 0
    counts_as_scenario(_scenario(), surged)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("at", "back"),
    [(1350.0, 1500.0), (1400.0, 1550.0)],  # raised, not drained yet; drained, not set back
)
def test_no_count_stays_raised_after_a_crash_mid_surge(at: float, back: float) -> None:
    outcome, records = _run(True, crashes=[Crash(at, back)])
    raised = [r for r in raises_in(records) if r["t"] < at]
    lowered = lowerings_in(records)
    assert raised and not [r for r in lowered if raised[-1]["t"] < r["t"] < at]  # mid-surge
    assert [r for r in lowered if r["t"] >= back]  # the restarted scaler set it back
    assert outcome.figures["out_of_date_instances"] == 0
    counts_as_scenario(_scenario(), outcome)


@pytest.mark.slow
def test_the_next_leader_sets_back_a_surge_its_leader_left() -> None:
    at = 1400.0  # drained, not set back yet; the leader does not come back before the end
    outcome, records = _run(True, crashes=[Crash(at, 1e9, replica=0)], replicas=2)
    assert [r for r in raises_in(records) if r["t"] < at]
    lowered = lowerings_in(records)
    assert [r for r in lowered if r["t"] >= at]
    assert outcome.figures["out_of_date_instances"] == 0
    counts_as_scenario(_scenario(), outcome)
