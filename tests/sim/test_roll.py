"""Rolling a new image through the cluster, in the simulator with the shipped scaler
(``SCALER_ROLL=true``): the ami-roll scenario's done-when figures, the pause during a spot storm,
and the baseline's instance refresh."""

from __future__ import annotations

from dataclasses import replace

import pytest

from scaler.plan.roll import RollPolicy
from scaler.sim.builtin import builtin
from scaler.sim.engine import Sim
from scaler.sim.policies import EcsNative
from scaler.sim.scenario import Event
from tests.sim.shipped_helpers import run_scaler


@pytest.mark.slow
@pytest.mark.parametrize("seed", [7, 11, 23])
def test_ami_roll_replaces_every_instance_within_budget_and_available(seed: int) -> None:
    scenario = builtin("ami-roll", seed=seed)
    figures = run_scaler(scenario, seed, {"roll": True}).figures
    assert figures["out_of_date_instances"] == 0
    assert figures["availability"] >= 0.9995
    assert figures["peak_disrupted_share"] <= RollPolicy().max_disrupted
    assert figures["interrupted_tasks"] == 0


def test_without_a_roll_out_of_date_instances_stay() -> None:
    scenario = builtin("ami-roll", seed=7).with_hours(1.0)
    keep = {"consolidate": False, "scale_in_after": 0}  # nothing given back: none replaced
    figures = run_scaler(scenario, 7, keep).figures
    assert figures["out_of_date_instances"] == 48, "the scaler without a roll leaves images alone"


def test_the_baseline_instance_refresh_replaces_every_instance() -> None:
    scenario = builtin("ami-roll", seed=7)
    figures = Sim(scenario, EcsNative(), 7).run()
    assert figures["out_of_date_instances"] == 0
    assert figures["availability"] < 0.9995, "terminate-first refresh dips min-50% services"


@pytest.mark.slow
def test_the_roll_pauses_while_a_spot_storm_is_under_way() -> None:
    storm = Event(2400, "storm", {"share": 0.3, "over": 300, "unavailable_for": 1800})
    base = builtin("ami-roll", seed=7)
    scenario = replace(base, events=(*base.events, storm))
    # idle instances kept: every drain not on a warning is then the roll's
    run = run_scaler(scenario, 7, {"roll": True, "scale_in_after": 0})
    warned, gone = run.times("warning"), run.times("terminated")
    drained = [
        (r["t"], r["instance"])
        for r in run.trace
        if r["what"] == "drain" and r["instance"] not in warned
    ]

    def under_notice(t: float) -> bool:
        return any(w <= t < gone.get(i, float("inf")) for i, w in warned.items())

    assert not [d for d in drained if under_notice(d[0])], "no roll drain under a spot notice"
    heard = [
        r["t"]
        for r in run.trace
        if r["what"] == "signal" and r["kind"] in ("SpotInterruption", "RebalanceRecommendation")
    ]
    trouble = max(heard)
    assert trouble >= 2400
    pause = RollPolicy().pause_after
    times = [t for t, _ in drained]
    assert not [t for t in times if trouble < t < trouble + pause], "quiet period kept"
    assert [t for t in times if t < 2400], "the roll was under way before the storm"
    assert [t for t in times if t > trouble + pause], "and went on after it"
    assert run.figures["out_of_date_instances"] == 0
