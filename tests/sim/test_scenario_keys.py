"""Scenario keys a file may set: ``boot_delay``, ``fargate_start_delay``, ``image`` and the
``[settings]`` table of ``SCALER_*`` settings for the shipped scaler the simulator runs."""

from __future__ import annotations

from typing import Any

import pytest

from scaler.settings import RebalancePolicy, Settings
from scaler.sim.engine import Sim
from scaler.sim.policies import EcsNative
from scaler.sim.run import simulate
from scaler.sim.scenario import ScenarioError, from_dict, to_dict
from tests.sim.shipped_helpers import settings_seen
from tests.sim.workload_scenarios import base


def _problems(**top: Any) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        from_dict(base(**top))
    return caught.value.problems


def test_boot_delay_fargate_delay_and_image_are_read() -> None:
    scenario = from_dict(base(boot_delay=[10, 20], fargate_start_delay=[5, 6], image="ami-1"))
    assert scenario.boot_delay == (10.0, 20.0)
    assert scenario.fargate_start_delay == (5.0, 6.0)
    assert scenario.image == "ami-1"
    again = from_dict(to_dict(scenario))
    assert again == scenario


def test_boot_delay_is_honoured() -> None:
    sim = Sim(from_dict(base(boot_delay=[300, 300])), EcsNative(), 1)
    sim.begin()
    inst = sim.launch_instances(["spot-m5.xlarge-us-east-1a"], 1)[0]
    sim.step_until(299)
    assert inst.registered_at is None
    sim.step_until(301)
    assert inst.registered_at == 300


def test_defaults_unchanged_and_not_written() -> None:
    scenario = from_dict(base())
    assert scenario.boot_delay == (60.0, 120.0)
    assert scenario.image == "image-1"
    assert "settings" not in to_dict(scenario)
    assert "boot_delay" in to_dict(scenario)


@pytest.mark.parametrize(
    ("top", "line"),
    [
        ({"boot_delay": [120, 60]}, "boot_delay: the least (120) is more than the most (60)"),
        ({"boot_delay": [60]}, "boot_delay: expected [least, most] seconds, got a list"),
        ({"boot_delay": [-1, 60]}, "boot_delay[0]: must be at least 0 seconds (got -1)"),
        ({"fargate_start_delay": "30"}, "fargate_start_delay: expected [least, most] seconds"),
        ({"image": 3}, "image: expected text, got 3 (an integer)"),
    ],
)
def test_delay_and_image_validation(top: dict[str, Any], line: str) -> None:
    problems = _problems(**top)
    assert len(problems) == 1 and problems[0].startswith(line), problems


def _scaler_settings(**top: Any) -> Settings:
    """The settings the shipped scaler ran with in ``scaler simulate`` of the base scenario."""
    with settings_seen() as seen:
        simulate(from_dict(base(hours=0.05, **top)), ["scaler"], 1)
    assert seen
    return seen[0]


def test_settings_reach_the_shipped_scaler() -> None:
    settings = {
        "SCALER_REBALANCE_POLICY": "replace-then-drain",
        "SCALER_HEADROOM": 0.2,
        "SCALER_POOL_COOLDOWN": 120,
        "SCALER_DISRUPTION_BUDGET": 0.3,
        "SCALER_REPLACEMENT_TIMEOUT": 200,
    }
    assert to_dict(from_dict(base(settings=settings)))["settings"] == settings
    ran = _scaler_settings(settings=settings)
    assert ran.rebalance_policy is RebalancePolicy.REPLACE_THEN_DRAIN
    assert ran.replacement_timeout == 200
    assert ran.headroom == 0.2
    assert ran.pool_cooldown == 120
    assert ran.disruption_budget == 0.3


def test_settings_can_turn_consolidation_on() -> None:
    assert _scaler_settings(settings={"SCALER_CONSOLIDATE": True}).consolidate
    ran = _scaler_settings(settings={"SCALER_CONSOLIDATE": True, "SCALER_CONSOLIDATE_PER_HOUR": 3})
    assert ran.consolidate and ran.consolidate_per_hour == 3


def test_without_settings_the_scaler_keeps_its_own_defaults() -> None:
    ran, default = _scaler_settings(), Settings(cluster="sim")
    assert ran.consolidate == default.consolidate and not ran.roll and not ran.task_rebalance
    assert ran.rebalance_policy is default.rebalance_policy
    assert ran.headroom == default.headroom
    assert ran.disruption_budget == default.disruption_budget


@pytest.mark.parametrize(
    ("settings", "line"),
    [
        (
            {"SCALER_HEADROM": 0.1},
            "settings.SCALER_HEADROM: unknown setting; did you mean SCALER_HEADROOM?",
        ),
        ({"SCALER_HEADROOM": 7}, "settings.SCALER_HEADROOM: "),
        ({"SCALER_REBALANCE_POLICY": "replace"}, "settings.SCALER_REBALANCE_POLICY: "),
        ({"HEADROOM": 0.1}, "settings.HEADROOM: not a SCALER_* setting"),
    ],
)
def test_settings_validation_is_one_line_naming_the_key(
    settings: dict[str, Any], line: str
) -> None:
    problems = _problems(settings=settings)
    assert len(problems) == 1 and problems[0].startswith(line), problems


def test_settings_must_be_a_table() -> None:
    assert _problems(settings=3) == ["settings: expected a table, got 3 (an integer)"]


@pytest.mark.parametrize("variable", ["SCALER_HEADROOM", "SCALER_NOT_A_SETTING"])
def test_environment_is_not_read(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "0.4")
    ran = _scaler_settings(settings={"SCALER_POOL_COOLDOWN": 60})
    assert ran.pool_cooldown == 60
    assert ran.headroom != 0.4
