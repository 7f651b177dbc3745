"""When a live task counts as healthy: the rule surge moves wait on before stopping a task."""

from __future__ import annotations

import math

import pytest

from scaler.ecs.health import SETTLE, TARGET_SETTLE, ServiceHealth, healthy_since, is_healthy

PLAIN = ServiceHealth()
CHECKED = ServiceHealth(checked=True)
GRACE = ServiceHealth(grace=90.0)
BALANCED = ServiceHealth(load_balanced=True)
BALANCED_CHECKED = ServiceHealth(checked=True, grace=300.0, load_balanced=True)


@pytest.mark.parametrize(
    ("status", "service", "expected"),
    [
        # container health checks: ECS's HEALTHY is the word, and nothing else is
        ("HEALTHY", CHECKED, 100.0),
        ("UNKNOWN", CHECKED, math.inf),  # still in its start period
        (None, CHECKED, math.inf),
        ("UNHEALTHY", CHECKED, math.inf),
        # no container health check (always UNKNOWN): RUNNING long enough
        ("UNKNOWN", PLAIN, 100.0 + SETTLE),
        (None, PLAIN, 100.0 + SETTLE),
        ("UNKNOWN", GRACE, 190.0),  # the operator's grace period, when longer
        ("HEALTHY", PLAIN, 100.0),  # ECS vouches for it all the same
        ("UNHEALTHY", PLAIN, math.inf),
        # behind a load balancer: target health is not ECS's to say, so wait for it
        ("HEALTHY", BALANCED, 100.0 + TARGET_SETTLE),
        ("UNKNOWN", BALANCED, 100.0 + TARGET_SETTLE),
        ("HEALTHY", BALANCED_CHECKED, 400.0),
        ("UNKNOWN", BALANCED_CHECKED, math.inf),
    ],
)
def test_a_task_is_healthy_only_once_ecs_can_vouch_for_it(
    status: str | None, service: ServiceHealth, expected: float
) -> None:
    assert healthy_since(status, 100.0, service) == expected


@pytest.mark.parametrize("service", [PLAIN, CHECKED, GRACE, BALANCED, BALANCED_CHECKED])
def test_a_task_not_running_is_never_healthy(service: ServiceHealth) -> None:
    assert healthy_since("HEALTHY", None, service) == math.inf
    assert not is_healthy("HEALTHY", None, service, now=1e12)


def test_running_is_not_healthy_until_the_wait_is_over() -> None:
    assert not is_healthy("UNKNOWN", 100.0, PLAIN, now=100.0)  # just RUNNING
    assert not is_healthy("UNKNOWN", 100.0, PLAIN, now=100.0 + SETTLE - 1)
    assert is_healthy("UNKNOWN", 100.0, PLAIN, now=100.0 + SETTLE)
    assert not is_healthy("UNKNOWN", 100.0, CHECKED, now=1e12)
    assert is_healthy("HEALTHY", 100.0, CHECKED, now=100.0)
