"""The soak benchmark still runs and still reports what it exists to report (never wall time)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_soak_benchmark_runs_and_reports_memory() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.benchmarks.soak",
            "--seconds",
            "10",
            "--sample-every",
            "2",
            "--settle",
            "10",
            "--json-only",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(proc.stdout)
    assert len(report["samples"]) >= 4
    assert all(s["rss_mib"] > 0 for s in report["samples"])
    assert isinstance(report["memory_flat"], bool)
    assert report["outcomes"].get("handled", 0) > 0
    assert report["outcomes"].get("other_cluster", 0) > 0
    assert report["fresh_warnings"] > 0
    assert report["undrained_fresh"] == 0
    assert report["histogram_drains"] == report["drained"]
    assert report["exit_code"] == 0
