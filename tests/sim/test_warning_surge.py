"""The surge at spot interruption warnings in the simulated AWS: it keeps the storm's services
more available, and no count stays raised after the scaler dies mid-surge."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from scaler.aws.warning_surge import read_plan
from scaler.plan.warning_surge import drain_deadline
from scaler.sim.builtin import builtin
from scaler.sim.builtin_market import builtin as builtin_market
from scaler.sim.cloud.shipped import Crash, Outcome, run_shipped
from scaler.sim.scenario import Event, Scenario
from tests.sim.shipped_helpers import counts_as_scenario, lowerings_in, raises_in, run_scaler

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


def _after_the_last_raises() -> float:
    """A moment just after the storm's last surges were raised, before any is set back (read
    from a run without a crash: the same run up to the crash)."""
    _, records = _run(True)
    last = float(max(r["t"] for r in raises_in(records)))
    at = last + 1.0
    assert not [r for r in lowerings_in(records) if last < r["t"] <= at]
    return at


@pytest.mark.slow
def test_no_count_stays_raised_after_a_crash_mid_surge() -> None:
    # the storm's last warnings' surges raised, their instances not drained; back once they are
    # gone and no warning is left to redeliver: only the marks tell the new scaler
    at = _after_the_last_raises()
    back = at + 200.0
    outcome, records = _run(True, crashes=[Crash(at, back)])
    raised = raises_in(records)
    lowered = lowerings_in(records)
    last = max(r["t"] for r in raised if r["t"] < at)
    assert not [r for r in lowered if last < r["t"] < back]  # left raised by the crash
    assert [r for r in lowered if r["t"] >= back]  # the restarted scaler set them back
    counts_as_scenario(_scenario(), outcome)


@pytest.mark.slow
def test_the_next_leader_sets_back_a_surge_its_leader_left() -> None:
    at = _after_the_last_raises()  # the leader does not come back (its warnings redelivered
    # to the other replica, or the marks, tell the next leader)
    outcome, records = _run(True, crashes=[Crash(at, 1e9, replica=0)], replicas=2)
    assert [r for r in raises_in(records) if r["t"] < at]
    lowered = lowerings_in(records)
    assert [r for r in lowered if r["t"] >= at]
    counts_as_scenario(_scenario(), outcome)


def test_a_burst_of_warnings_drains_each_instance_by_its_deadline() -> None:
    # every instance of a 200-instance cluster warned within 10 s: no room for any surge, so
    # each waits for its deadline, and the reads of 200 waiting instances must not make it late
    base = builtin("steady", instances=200, tasks=2000, services=50)
    pools = tuple(replace(p, interruptions_per_hour=0.0) for p in base.pools)
    storm = Event(600, "storm", {"share": 1.0, "over": 10, "take": 1.0})
    burst = replace(base, name="burst", pools=pools, events=(storm,), hours=0.25)
    stop_time = 60.0
    settings = {"warning_surge": True, "warning_surge_stop_time": stop_time}
    outcome = run_shipped(burst, SEED, settings)
    waits = [outcome.drained[i] - at for i, at in outcome.warned.items() if i in outcome.drained]
    assert len(waits) == len(outcome.warned) == 200
    assert max(waits) <= drain_deadline(0.0, stop_time) + 1.0  # batching the drains: < 1 s


def test_reads_per_instance_while_that_takes_fewer_calls() -> None:
    assert read_plan(1, 5000) == "instances"
    assert read_plan(30, 5000) == "instances"  # 90 calls against 100
    assert read_plan(40, 5000) == "cluster"
    assert read_plan(2, 100) == "cluster"


@pytest.mark.slow
def test_a_recommendation_drain_waits_for_its_services_replacements() -> None:
    # long-lead: recommendations 10 to 30 minutes ahead of most interruptions. With the surge a
    # recommended instance's services are raised before it drains, well before its warning
    scenario = builtin_market("long-lead", seed=SEED)
    plain = run_scaler(scenario, SEED, {"warning_surge": False})
    run = run_scaler(scenario, SEED, {"warning_surge": True})
    recommended, warned = run.times("recommendation"), run.times("warning")
    drained = run.times("drain")
    early = [i for i, t in recommended.items() if t <= drained.get(i, -1) < warned.get(i, 1e9)]
    assert early, "no recommended instance drained before its warning"
    warnings = sorted(warned.values())
    ahead = [r for r in raises_in(run.trace) if not any(w <= r["t"] <= w + 120 for w in warnings)]
    assert ahead, "no surge raised but at a warning"
    assert not raises_in(plain.trace)
    assert run.figures["availability"] >= plain.figures["availability"]
    assert run.figures["min_healthy_violations"] == 0
    counts_as_scenario(scenario, run.outcome)
