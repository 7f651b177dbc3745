"""`scaler demo`, as the README runs it: interrupted instances drained, their tasks moved."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_drains_and_moves_tasks_and_loses_none() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "scaler", "demo"], capture_output=True, text=True, timeout=120
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr[-3000:]
    warned = set(re.findall(r"spot interruption warning for (i-\w+)", out))
    drained = set(re.findall(r"(i-\w+) DRAINING \(set by the scaler", out))
    assert len(warned) == 2 and drained == warned
    assert "replacement task RUNNING" in out
    assert "tasks lost with their instance: 0" in out
    assert re.search(r"services healthy/desired: web 6/6, api 4/4, worker 4/4", out)
    assert re.search(r"events: .*duplicate=1.*other_cluster=1", out)
    assert "dead-letter queue: 1 message(s)" in out
