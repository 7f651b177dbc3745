"""The surge at spot interruption warnings in the simulated AWS: it keeps the storm's services
more available, and no count stays raised after the scaler dies mid-surge."""

from __future__ import annotations

from typing import Any

import pytest

from scaler.sim.builtin import builtin
from scaler.sim.cloud.shipped import Crash, Outcome, run_shipped
from scaler.sim.scenario import Scenario
from tests.sim.shipped_helpers import counts_as_scenario, lowerings_in, raises_in

SEED = 7


def _scenario() -> Scenario:
    return builtin("storm", seed=SEED)


def _run(surge: bool, **kw: Any) -> tuple[Outcome, list[dict[str, Any]]]:
    records: list[dict[str, Any]] = []
    # the crash times below are set in the surges of a 30 s stop time
    settings = {"warning_surge": surge, "warning_surge_stop_time": 30.0}
    outcome = run_shipped(_scenario(), SEED, settings, capacity=True, trace=records.append, **kw)
    return outcome, records


def _lost(outcome: Outcome) -> float:
    """Task-seconds desired and not running healthy."""
    assert outcome.engine is not None
    return outcome.engine.acct.want - outcome.engine.acct.avail


@pytest.mark.slow
def test_the_surge_loses_fewer_task_seconds_in_the_storm() -> None:
    plain, plain_records = _run(False)
    surged, records = _run(True)
    assert not raises_in(plain_records)
    assert raises_in(records), "no service was surged"
    assert _lost(surged) < 0.5 * _lost(plain)  # seed 7: about 800 against 5 000
    assert surged.figures["min_healthy_violations"] == 0
    counts_as_scenario(_scenario(), surged)


@pytest.mark.slow
def test_no_count_stays_raised_after_a_crash_mid_surge() -> None:
    # the storm's last warnings' surges raised, their instances not drained; back once they are
    # gone and no warning is left to redeliver: only the marks tell the new scaler
    at, back = 1195.0, 1400.0
    outcome, records = _run(True, crashes=[Crash(at, back)])
    raised = raises_in(records)
    lowered = lowerings_in(records)
    last = max(r["t"] for r in raised if r["t"] < at)
    assert not [r for r in lowered if last < r["t"] < back]  # left raised by the crash
    assert [r for r in lowered if r["t"] >= back]  # the restarted scaler set them back
    counts_as_scenario(_scenario(), outcome)


@pytest.mark.slow
def test_the_next_leader_sets_back_a_surge_its_leader_left() -> None:
    at = 1195.0  # the last warnings' surges raised; the leader does not come back (its
    # warnings redelivered to the other replica, or the marks, tell the next leader)
    outcome, records = _run(True, crashes=[Crash(at, 1e9, replica=0)], replicas=2)
    assert [r for r in raises_in(records) if r["t"] < at]
    lowered = lowerings_in(records)
    assert [r for r in lowered if r["t"] >= at]
    counts_as_scenario(_scenario(), outcome)
