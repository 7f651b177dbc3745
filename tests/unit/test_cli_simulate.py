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
        assert set(figures) == FIGURES | {"market_digest"}
        assert 0 < figures["availability"] <= 1
        assert figures["worst_5m_availability"] <= figures["availability"]
    assert len({f["market_digest"] for f in report["results"].values()}) == 1


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


def test_seeds_run_every_policy_on_each_market_and_compare_paired(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["simulate", "--scenario", "az-outage", "--hours", "0.5", "--seeds", "1-3", "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["seeds"] == [1, 2, 3]
    assert [run["seed"] for run in report["runs"]] == [1, 2, 3]
    for run in report["runs"]:
        assert len({f["market_digest"] for f in run["results"].values()}) == 1
    avail = report["summary"]["scaler"]["availability"]
    values = [run["results"]["scaler"]["availability"] for run in report["runs"]]
    assert avail["mean"] == pytest.approx(sum(values) / 3)
    assert avail["worst"] == min(values)
    assert report["runs"][report["seeds"].index(avail["worst_seed"])]["results"]["scaler"][
        "availability"
    ] == min(values)
    native = [run["results"]["ecs-native"]["availability"] for run in report["runs"]]
    diff = avail["vs"]["ecs-native"]
    assert diff["mean_difference"] == pytest.approx(sum(values) / 3 - sum(native) / 3)
    assert diff["low"] <= diff["mean_difference"] <= diff["high"]
    assert set(avail["vs"]) == {"ecs-native", "ecs-scaler"}
    assert set(report["summary"]["ecs-native"]["cost_usd"]["vs"]) == {"ecs-scaler"}


def test_seeds_table_names_mean_worst_and_differences(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--scenario", "az-outage", "--hours", "0.3", "--seeds", "2,5"]) == 0
    out = capsys.readouterr().out
    assert "2 seeds (2,5)" in out
    assert "- ecs-native" in out and "- ecs-scaler" in out and "(seed " in out


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("x", "--seeds: 'x' is not a list of seeds"),
        ("5-1", "--seeds: '5-1' is an empty range"),
        ("1,,2", "--seeds: '1,,2' is not a list of seeds"),
        ("1-100000", "--seeds: '1-100000' is more than 1000 seeds"),
    ],
)
def test_a_bad_seeds_spec_is_one_line_and_status_2(
    spec: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["simulate", "--scenario", "storm", "--seeds", spec])
    assert exited.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"scaler: {problem}")


def test_trace_writes_a_json_line_per_market_event_and_action(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "trace.jsonl"
    args = ["simulate", "--scenario", "storm", "--hours", "0.5", "--trace", str(trace)]
    assert main(args) == 0
    capsys.readouterr()
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    kinds = {r["what"] for r in records}
    assert {"scenario", "reclaim", "warning", "signal", "drain", "terminated"} <= kinds
    assert {r["policy"] for r in records} == {"scaler", "ecs-native", "ecs-scaler"}
    assert all({"seed", "t", "policy", "what"} <= r.keys() for r in records)
    drains = [r for r in records if r["what"] == "drain" and r["policy"] == "scaler"]
    assert drains and all(r["instance"].startswith("i-") for r in drains)


def test_an_unwritable_trace_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["simulate", "--scenario", "storm", "--trace", str(tmp_path / "no" / "t.jsonl")]
    assert main(args) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("scaler: --trace: cannot write")
