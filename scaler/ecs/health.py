"""When a live task counts as healthy, from what the ECS API says about it and its service.

A surge move (the rebalancer's, the roll's) adds a task and takes one away once the added task
is healthy. RUNNING is not healthy: the container may still be starting, and a task behind a
load balancer takes traffic only once its target passes the target group's health checks. ECS
itself counts a new task toward ``minimumHealthyPercent`` only once it is healthy, so the scaler
must not stop the old task sooner. What ECS's API shows (the scaler calls no other service):

- DescribeTasks ``healthStatus``: HEALTHY once every essential container's health check passes;
  UNHEALTHY when one fails; UNKNOWN while checks are in their start period, and always for a
  task whose containers have no health check. ``startedAt``: when it became RUNNING.
- DescribeServices ``healthCheckGracePeriodSeconds`` (the time its operator gives a new task to
  become healthy) and ``loadBalancers`` (target health itself is Elastic Load Balancing's, not
  ECS's, and not read).

The rule (:func:`healthy_since`), conservative in every case ECS cannot vouch for:

- not RUNNING, or UNHEALTHY: not healthy;
- HEALTHY: healthy (container health checks passed); with container health checks, only then;
- without (always UNKNOWN): once it has been RUNNING the service's grace period, and at least
  :data:`SETTLE` seconds. ECS counts such a task healthy as soon as it runs; an application
  usually needs a moment after its process starts, and the operator's grace period says how
  long, so the scaler waits that long, or one default check interval (30 s) with some slack;
- behind a load balancer, in both cases also RUNNING at least the grace period and at least
  :data:`TARGET_SETTLE` seconds: an Application Load Balancer target group's default health
  checks (5 passes, 30 s apart) need 150 s to call a new target healthy, and ECS does not say
  when it did (Elastic Load Balancing's DescribeTargetHealth would, at the cost of another
  service's calls and permissions).

A wait a little too long costs a surge its extra task for a little longer; too short, and the
old task stops while the new one cannot serve (below minimum health).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

HEALTHY, UNHEALTHY, UNKNOWN = "HEALTHY", "UNHEALTHY", "UNKNOWN"
SETTLE = 40.0  # seconds RUNNING before a task without health checks counts as healthy
TARGET_SETTLE = 150.0  # seconds RUNNING before a load-balanced task counts as healthy


@dataclass(frozen=True)
class ServiceHealth:
    """What DescribeServices and the task definition say about a service's health checks."""

    checked: bool = False  # an essential container of its task definition has a health check
    grace: float = 0.0  # healthCheckGracePeriodSeconds (0 when unset)
    load_balanced: bool = False  # it has loadBalancers


@dataclass(frozen=True)
class TaskHealth:
    """What DescribeTasks says about one task's health."""

    status: str | None  # healthStatus
    running_since: float | None  # startedAt; None while it is not RUNNING


def healthy_since(status: str | None, running_since: float | None, service: ServiceHealth) -> float:
    """The earliest time (in ``running_since``'s seconds) the task counts as healthy on what ECS
    says now; ``math.inf`` if not on this reading (not RUNNING: ``running_since`` None; UNHEALTHY;
    checked but not HEALTHY yet)."""
    if running_since is None or status == UNHEALTHY:
        return math.inf
    if service.load_balanced:
        if service.checked and status != HEALTHY:
            return math.inf
        return running_since + max(service.grace, TARGET_SETTLE)
    if status == HEALTHY:
        return running_since
    if service.checked:
        return math.inf  # its checks have not passed yet
    return running_since + max(service.grace, SETTLE)


def is_healthy(
    status: str | None, running_since: float | None, service: ServiceHealth, now: float
) -> bool:
    """Whether the task counts as healthy at ``now`` (see :func:`healthy_since`)."""
    return now >= healthy_since(status, running_since, service)


def healthy_count(tasks: Iterable[TaskHealth], service: ServiceHealth, now: float) -> int:
    """How many of a service's ``tasks`` count as healthy at ``now``."""
    return sum(is_healthy(t.status, t.running_since, service, now) for t in tasks)
