"""Reservation advice applied in the simulator (``SCALER_SIM_APPLY_ADVICE``): on deploy-skew
at seed 23, where task moves cannot cure the hot instances (the tasks use more CPU than they
reserve, and ECS puts every replacement back on the tightest fit), the advised reservations
deployed cut the hot instance time."""

from __future__ import annotations

from dataclasses import replace

import pytest

from scaler.cli import main
from scaler.sim.builtin import builtin
from scaler.sim.engine import Sim
from scaler.sim.policies import EcsNative
from scaler.sim.run import simulate
from scaler.sim.scenario import Scenario
from tests.sim.shipped_helpers import run_scaler

SEED = 23
# deploy-skew's tasks use up to 1.17 times their reservation, and it deploys 15 minutes in:
# advise on any sustained over-use, from the first ten minutes' measurements
APPLY = {
    "SCALER_SIM_APPLY_ADVICE": "true",
    "SCALER_ADVICE_OVER": "1.01",
    "SCALER_ADVICE_MIN_SAMPLES": "10",
    "SCALER_ADVICE_MIN_WINDOW": "600",
}


def _skew(settings: dict[str, str] | None = None) -> Scenario:
    scenario = builtin("deploy-skew", seed=SEED)
    return replace(scenario, settings=settings) if settings else scenario


def test_advice_applied_at_the_deploy_cuts_hot_time_under_ecs_alone() -> None:
    without = Sim(_skew(), EcsNative(), SEED)
    with_advice = Sim(_skew(APPLY), EcsNative(), SEED)
    before, after = without.run(), with_advice.run()
    print(
        "ecs-native hot_instance_share", before["hot_instance_share"], after["hot_instance_share"]
    )
    assert without.advising is None
    assert with_advice.advising is not None and with_advice.advising.applied
    assert all(at == 900.0 for at, _ in with_advice.advising.applied)  # at the deploy
    assert after["hot_instance_share"] < before["hot_instance_share"] / 3
    assert after["availability"] >= before["availability"]


def test_advice_is_not_applied_before_enough_measurements() -> None:
    sim = Sim(_skew({**APPLY, "SCALER_ADVICE_MIN_WINDOW": "3600"}), EcsNative(), SEED)
    figures = sim.run()
    assert sim.advising is not None and sim.advising.applied == []
    assert (
        figures["hot_instance_share"] == Sim(_skew(), EcsNative(), SEED).run()["hot_instance_share"]
    )


def test_the_environment_turns_it_on_for_the_world_too() -> None:
    on = simulate(_skew(), ["ecs-native"], SEED, environment=APPLY)
    off = simulate(_skew(), ["ecs-native"], SEED)
    assert (
        on["results"]["ecs-native"]["hot_instance_share"]
        < off["results"]["ecs-native"]["hot_instance_share"]
    )


def test_a_bad_value_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SCALER_SIM_APPLY_ADVICE", "maybe")
    assert main(["simulate", "--scenario", "deploy-skew", "--hours", "0.1"]) == 2
    err = capsys.readouterr().err
    assert "SCALER_SIM_APPLY_ADVICE" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_advice_cures_what_moves_cannot_for_the_shipped_scaler() -> None:
    rebalance = {"task_rebalance": True}
    before = run_scaler(_skew(), SEED, rebalance).figures
    run = run_scaler(_skew(APPLY), SEED, rebalance)
    after = run.figures
    print("scaler hot_instance_share", before["hot_instance_share"], after["hot_instance_share"])
    assert run.sim.advising is not None and run.sim.advising.applied
    assert after["hot_instance_share"] < before["hot_instance_share"] / 3
    assert after["availability"] >= before["availability"] - 0.0005
