"""`scaler simulate`: the JSON object the issue promises, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scaler.cli import main

FIGURES = {
    "availability",
    "interrupted_tasks",
    "cost_usd",
    "on_demand_equivalent_cost_usd",
    "on_demand_share",
    "hot_instance_share",
    "task_moves",
    "min_healthy_violations",
    "peak_disrupted_share",
    "out_of_date_instances",
    "api_calls",
    "worst_5m_availability",
}
EXAMPLE = Path(__file__).resolve().parents[2] / "scenarios" / "example.toml"


def test_json_has_every_figure_for_every_policy(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["simulate", "--scenario", "storm", "--policy", "all", "--json", "--seed", "7"]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["scenario"] == "storm" and report["seed"] == 7
    assert set(report["results"]) == {"scaler", "ecs-native", "ecs-scaler"}
    for figures in report["results"].values():
        assert set(figures) == FIGURES
        assert 0 < figures["availability"] <= 1
        assert figures["worst_5m_availability"] <= figures["availability"]


def test_same_seed_same_answer(capsys: pytest.CaptureFixture[str]) -> None:
    outputs = []
    for _ in range(2):
        main(["simulate", "--scenario", "az-outage", "--json", "--seed", "3"])
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]


def test_the_example_scenario_file_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--scenario", str(EXAMPLE), "--policy", "scaler"]) == 0
    assert "availability" in capsys.readouterr().out


def test_unknown_policy_and_scenario_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--scenario", "storm", "--policy", "magic"]) == 2
    assert "--policy: unknown policy 'magic'" in capsys.readouterr().err
    assert main(["simulate", "--scenario", "nowhere.toml"]) == 2
    assert "--scenario: 'nowhere.toml' is neither a built-in" in capsys.readouterr().err


def test_a_broken_scenario_file_names_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"name": "x", "instance_types": [], "pools": []}))
    assert main(["simulate", "--scenario", str(broken)]) == 2
    assert "services" in capsys.readouterr().err
