"""`scaler simulate --policy scaler` runs the controllers `scaler run` builds, in the simulated
AWS, configured by the scenario's ``[settings]`` and the ``SCALER_*`` variables given; the
oracle is the same scaler told of interruptions early; both meet the baselines' market."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

from scaler.sim.builtin import builtin
from scaler.sim.cloud.shipped import run_shipped
from scaler.sim.run import scaler_settings, simulate
from scaler.sim.settings_file import field_values

STORM = builtin("storm", instances=24, tasks=120, services=6).with_hours(1.0)


def test_the_scaler_is_the_shipped_scaler_on_the_same_market() -> None:
    report = simulate(STORM, ["scaler", "oracle", "ecs-native"], seed=0)
    results = report["results"]
    assert len({r["market_digest"] for r in results.values()}) == 1
    shipped = run_shipped(STORM, 0, field_values(scaler_settings(STORM)), capacity=True)
    assert results["scaler"] == {k: shipped.figures[k] for k in results["scaler"]}
    assert results["scaler"]["api_calls"] > 0
    assert results["oracle"] != results["scaler"]  # it heard of the interruptions early


def test_the_environment_wins_over_the_scenario_settings() -> None:
    scenario = replace(STORM, settings={"SCALER_CONSOLIDATE": True, "SCALER_HEADROOM": 0.1})
    table = scaler_settings(scenario, {"SCALER_CONSOLIDATE": "false"})
    assert table == {"SCALER_CONSOLIDATE": "false", "SCALER_HEADROOM": 0.1}
    assert scaler_settings(scenario, oracle=True)["SCALER_REBALANCE_POLICY"] == (
        "replace-then-drain"
    )


def test_an_ami_roll_is_rolled_only_when_the_roll_is_switched_on() -> None:
    scenario = builtin("ami-roll", instances=12, tasks=60, services=4).with_hours(3.0)
    keep = {"SCALER_CONSOLIDATE": "false", "SCALER_SCALE_IN_AFTER": "0"}  # none given back
    off = simulate(scenario, ["scaler"], 3, environment=keep)["results"]["scaler"]
    on = simulate(scenario, ["scaler"], 3, environment={"SCALER_ROLL": "true"})
    assert off["out_of_date_instances"] == 12
    assert on["results"]["scaler"]["out_of_date_instances"] == 0


def _cli(*args: str, **environment: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SCALER_")}
    return subprocess.run(
        [sys.executable, "-m", "scaler", "simulate", *args],
        env={**env, **environment},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_simulate_says_which_settings_it_took_from_the_environment() -> None:
    done = _cli(
        "--scenario", "storm", "--policy", "scaler", "--hours", "0.25", "--json",
        SCALER_HEADROOM="0.2", SCALER_CLUSTER="prod",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "SCALER_CLUSTER: ignored by scaler simulate (the simulated world sets it)",
        "the simulated scaler runs with SCALER_HEADROOM=0.2",
    ]
    assert json.loads(done.stdout)["results"]["scaler"]["availability"] > 0.9


def test_simulate_refuses_a_bad_setting_in_one_line() -> None:
    done = _cli("--scenario", "storm", "--policy", "scaler", SCALER_HEADROM="0.2")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "scaler: SCALER_HEADROM: unknown setting; did you mean SCALER_HEADROOM?"
    ]
    assert "Traceback" not in done.stderr
