"""When a live task counts as healthy in the model (the rebalancer waits for it)."""

from __future__ import annotations

import math

import pytest

from scaler.aws.live import _healthy_at


@pytest.mark.parametrize(
    ("status", "expected"),
    [("HEALTHY", 100.0), ("UNHEALTHY", math.inf), ("UNKNOWN", 140.0), (None, 140.0)],
)
def test_a_task_counts_healthy_when_ecs_says_so_or_after_its_checks_worst_case(
    status: str | None, expected: float
) -> None:
    # UNKNOWN: no container health check, or one still in its start period: wait the delay
    assert _healthy_at(status, started=100.0, delay=40.0) == expected
