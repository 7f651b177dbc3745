"""The benchmarks still run and still show what they exist to show (call counts, not wall time)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_drain_burst_benchmark_runs_and_batches() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.drain_burst", "--instances", "100", "--json-only"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    report = json.loads(proc.stdout)
    runs = report["runs"]
    assert runs["scaler"]["all_draining"] and runs["naive"]["all_draining"]
    assert runs["scaler"]["update_container_instances_state_calls"] <= 10 + 3
    assert report["comparison"]["ecs_call_ratio"] >= 5


@pytest.mark.slow
def test_sim_speed_benchmark_runs() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.benchmarks.sim_speed",
            "--instances",
            "60",
            "--tasks",
            "600",
            "--services",
            "30",
            "--days",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    report = json.loads(proc.stdout)
    assert len(report["runs"]) == 6  # per scenario: a quiet run, then each baseline
    assert {r["policy"] for r in report["runs"]} == {"ecs-native", "ecs-scaler"}
    assert all(r["events"] > 0 for r in report["runs"])


@pytest.mark.slow
def test_rebalance_plan_benchmark_runs() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.benchmarks.rebalance_plan",
            "--instances",
            "200",
            "--tasks",
            "2000",
            "--services",
            "30",
            "--repeats",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    easy, costly = json.loads(proc.stdout)
    assert (easy["layout"], costly["layout"]) == ("easy", "costly")
    assert easy["default_budget"]["moves"] <= 10
    assert easy["unlimited_budget"]["lower_bound_moves"] >= 0
    assert costly["default_budget"]["hot"] > 0 and "target_ms_per_plan" in costly


@pytest.mark.slow
def test_shipped_world_benchmark_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.shipped_world", "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    report = json.loads(proc.stdout)
    assert report["burst"]["modelled_aws"]["drained"] == report["burst"]["instances"]
    assert report["week"]["aws_calls_per_hour"] > 0
    cycle = report["capacity_cycle"]["by_operation_per_hour"]
    assert cycle["ecs:DescribeContainerInstances"] > 0  # the pools' cycle ran
