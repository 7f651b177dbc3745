"""Guard rails: which services cannot be drained off a spot instance within its notice.

A spot interruption warning gives two minutes. The scaler sets the instance to ``DRAINING`` at
once, and ECS then replaces the instance's service tasks elsewhere, but only as fast as each
service's deployment configuration and health checks allow. For a ``REPLICA`` service:

- ``minimumHealthyPercent`` is the share of ``desiredCount`` that must stay ``RUNNING`` (and
  healthy) while an instance drains. At 100% or more ECS may not stop an old task until its
  replacement has started *and* passed its health checks, which rarely fits in two minutes: the
  instance is reclaimed with the old tasks still on it (``min_healthy_100``).
- ``maximumPercent`` caps the tasks ``RUNNING`` or ``PENDING``. At 100% or less ECS may not
  start a replacement before stopping an old task; together with a minimum of 100% or more it
  may do neither, so draining never finishes at all (``no_surge_room``, reported instead of
  ``min_healthy_100``).
- A replacement counts as healthy only after its health checks say so. If the load balancer
  grace period (``healthCheckGracePeriodSeconds``) or the essential containers' own health checks
  take longer than the notice, no replacement can count in time, whatever the percentages
  (``slow_health_check``).

``DAEMON`` services are never at risk: ECS stops daemon tasks last on a draining instance, after
the replica tasks, and does not replace them elsewhere. Services with ``desiredCount`` 0 have
nothing to move. The percentage rules above read the percentages as written; ECS rounds the
task counts (minimum up, maximum down), so a service of one task is stricter than its
percentages say.

:func:`drain_risks` is the pure decision; :func:`scan_services` reads the cluster's services
(paginated ``ListServices``, ``DescribeServices`` 10 at a time, ``DescribeTaskDefinition`` once
per task definition); :class:`GuardRails` runs both every few minutes, keeps the
``scaler_drain_risk_services{cause}`` gauge current and logs a warning per risk when the set of
risks changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client import Gauge

from scaler.aws.clients import error_code
from scaler.aws.concurrency import bounded
from scaler.clock import Clock

log = logging.getLogger(__name__)

RISK_CAUSES = ("no_surge_room", "min_healthy_100", "slow_health_check")
NOTICE_SECONDS = 120.0
DESCRIBE_SERVICES_BATCH = 10  # the DescribeServices limit
LIST_PAGE_SIZE = 100  # the ListServices limit
# ECS's (minimumHealthyPercent, maximumPercent) for a service without a deploymentConfiguration
DEFAULT_PERCENTS = {"REPLICA": (100, 200), "DAEMON": (0, 100)}
HEALTH_CHECK_INTERVAL = 30  # ECS's default container health check interval, seconds

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ServiceView:
    """What the guard rails need to know about one ECS service."""

    name: str
    arn: str
    scheduling_strategy: str  # REPLICA | DAEMON
    desired_count: int
    minimum_healthy_percent: int
    maximum_percent: int
    health_check_grace_period_seconds: int = 0
    has_load_balancer: bool = False
    # Worst case for the essential containers' health checks to first report HEALTHY (see
    # container_health_check_seconds()); None when no essential container has a health check.
    container_health_check_seconds: int | None = None
    deployment_in_progress: bool = False


@dataclass(frozen=True, slots=True)
class DrainRisk:
    """A service whose tasks cannot be replaced within the notice, and why."""

    service: str
    cause: str  # one of RISK_CAUSES
    detail: str


# -- the decision ------------------------------------------------------------------------------


def drain_risks(
    services: Iterable[ServiceView], notice_seconds: float = NOTICE_SECONDS
) -> list[DrainRisk]:
    """Every (service, cause) that keeps a draining instance's tasks from moving in time."""
    risks: list[DrainRisk] = []
    for service in services:
        if service.scheduling_strategy == "DAEMON" or service.desired_count <= 0:
            continue
        risks.extend(_risks_of(service, notice_seconds))
    return risks


def _risks_of(service: ServiceView, notice_seconds: float) -> list[DrainRisk]:
    found: list[DrainRisk] = []
    percent_risk = _percent_risk(service)
    if percent_risk is not None:
        found.append(percent_risk)
    slow = _slow_health_reasons(service, notice_seconds)
    if slow:
        found.append(DrainRisk(service.name, "slow_health_check", "; ".join(slow)))
    return found


def _percent_risk(service: ServiceView) -> DrainRisk | None:
    low, high = service.minimum_healthy_percent, service.maximum_percent
    if low < 100:
        return None
    if high <= 100:
        detail = (
            f"minimumHealthyPercent={low} and maximumPercent={high}: ECS can neither stop an old"
            " task first nor start a replacement first, so draining never finishes"
        )
        return DrainRisk(service.name, "no_surge_room", detail)
    detail = f"minimumHealthyPercent={low}: old tasks stop only after replacements are healthy"
    return DrainRisk(service.name, "min_healthy_100", detail)


def _slow_health_reasons(service: ServiceView, notice_seconds: float) -> list[str]:
    reasons: list[str] = []
    grace = service.health_check_grace_period_seconds
    if grace > notice_seconds:
        reasons.append(
            f"healthCheckGracePeriodSeconds={grace} is longer than the {notice_seconds:g} s notice"
        )
    checks = service.container_health_check_seconds
    if checks is not None and checks > notice_seconds:
        reasons.append(
            f"container health checks need up to {checks} s to report HEALTHY, longer than the"
            f" {notice_seconds:g} s notice"
        )
    return reasons


# -- reading the cluster -----------------------------------------------------------------------


def container_health_check_seconds(task_definition: dict[str, Any]) -> int | None:
    """Worst case for a new task's essential containers to first report HEALTHY, in seconds.

    Per container with a health check: ``startPeriod + interval`` (``startPeriod`` 0 and
    ``interval`` 30 when absent, as in ECS), the first check after the start period, for a
    container that is ready by then. Retries are not counted: they delay UNHEALTHY, not HEALTHY.
    The task is healthy when all its essential containers are (non-essential containers do not
    count), so the answer is the maximum over essential containers, or None if none has a check.
    """
    times = [
        int(check.get("startPeriod", 0)) + int(check.get("interval", HEALTH_CHECK_INTERVAL))
        for container in task_definition.get("containerDefinitions", [])
        if container.get("essential", True) and (check := container.get("healthCheck"))
    ]
    return max(times, default=None)


def _deployment_in_progress(raw: dict[str, Any]) -> bool:
    deployments = raw.get("deployments", [])
    primary = [d for d in deployments if d.get("status") == "PRIMARY"]
    return len(deployments) > 1 or any(d.get("rolloutState") == "IN_PROGRESS" for d in primary)


def service_view(raw: dict[str, Any], health_check_seconds: int | None) -> ServiceView:
    """A DescribeServices entry as a :class:`ServiceView`, with ECS's defaults filled in."""
    strategy = str(raw.get("schedulingStrategy", "REPLICA"))
    low, high = DEFAULT_PERCENTS.get(strategy, DEFAULT_PERCENTS["REPLICA"])
    config = raw.get("deploymentConfiguration") or {}
    return ServiceView(
        name=str(raw["serviceName"]),
        arn=str(raw["serviceArn"]),
        scheduling_strategy=strategy,
        desired_count=int(raw.get("desiredCount", 0)),
        minimum_healthy_percent=int(config.get("minimumHealthyPercent", low)),
        maximum_percent=int(config.get("maximumPercent", high)),
        health_check_grace_period_seconds=int(raw.get("healthCheckGracePeriodSeconds") or 0),
        has_load_balancer=bool(raw.get("loadBalancers")),
        container_health_check_seconds=health_check_seconds,
        deployment_in_progress=_deployment_in_progress(raw),
    )


async def list_service_arns(ecs: Any, cluster: str) -> list[str]:
    arns: list[str] = []
    paginator = ecs.get_paginator("list_services")
    async for page in paginator.paginate(
        cluster=cluster, PaginationConfig={"PageSize": LIST_PAGE_SIZE}
    ):
        arns.extend(page.get("serviceArns", []))
    return arns


async def describe_services(
    ecs: Any, cluster: str, arns: Sequence[str], tags: bool = False
) -> list[dict[str, Any]]:
    """The ACTIVE services among ``arns``, described 10 a call (services gone meanwhile drop),
    with their tags if ``tags``."""
    step = DESCRIBE_SERVICES_BATCH
    include = {"include": ["TAGS"]} if tags else {}
    answers = await bounded(
        [
            ecs.describe_services(cluster=cluster, services=list(arns[i : i + step]), **include)
            for i in range(0, len(arns), step)
        ]
    )
    described = (raw for answer in answers for raw in answer.get("services", []))
    return [raw for raw in described if raw.get("status", "ACTIVE") == "ACTIVE"]


async def _health_check_time(ecs: Any, arn: str) -> tuple[bool, int | None]:
    """(whether the definition could be read, its containers' health check time if any)."""
    try:
        answer = await ecs.describe_task_definition(taskDefinition=arn)
    except Exception as exc:
        if error_code(exc) is None:
            raise
        log.info("task definition unreadable", extra={"task_definition": arn, "error": str(exc)})
        return False, None
    return True, container_health_check_seconds(answer.get("taskDefinition", {}))


async def health_check_times(
    ecs: Any, arns: Iterable[str], known: dict[str, int | None] | None = None
) -> dict[str, int | None]:
    """Task definition ARN -> its health check time, one DescribeTaskDefinition per ARN not in
    ``known`` (a revision never changes: what was read is kept there, for the next scan)."""
    known = {} if known is None else known
    distinct = sorted(set(arns))
    missing = [arn for arn in distinct if arn not in known]
    answers = await bounded([_health_check_time(ecs, arn) for arn in missing])
    for arn, (read, seconds) in zip(missing, answers, strict=True):
        if read:  # an unreadable definition is asked again next time
            known[arn] = seconds
    return {arn: known.get(arn) for arn in distinct}


async def scan_services(
    ecs: Any, cluster: str, known: dict[str, int | None] | None = None
) -> list[ServiceView]:
    """Every ACTIVE service of ``cluster``, read with ``ecs`` (an aiobotocore ECS client); the
    health check times of task definitions in ``known`` are not read again."""
    raws = await describe_services(ecs, cluster, await list_service_arns(ecs, cluster))
    times = await health_check_times(
        ecs, (r["taskDefinition"] for r in raws if r.get("taskDefinition")), known
    )
    return [service_view(raw, times.get(raw.get("taskDefinition", ""))) for raw in raws]


# -- the background check ----------------------------------------------------------------------


class GuardRails:
    """Scans the cluster every ``interval`` seconds; keeps the gauge current; warns on change."""

    def __init__(
        self,
        ecs: Any,
        cluster: str,
        metrics_gauge: Gauge,
        clock: Clock,
        interval: float = 300.0,
        notice_seconds: float = NOTICE_SECONDS,
    ) -> None:
        self._ecs = ecs
        self._cluster = cluster
        self._gauge = metrics_gauge
        self._clock = clock
        self._interval = interval
        self._notice = notice_seconds
        self._reported: frozenset[DrainRisk] = frozenset()
        self._health: dict[str, int | None] = {}  # task definition ARN -> health check seconds
        self.checked_at: float | None = None  # monotonic time of the last successful check

    async def check(self) -> list[DrainRisk]:
        """Scan, update the gauge, warn if the risks changed; the risks found."""
        services = await scan_services(self._ecs, self._cluster, self._health)
        risks = drain_risks(services, self._notice)
        self._set_gauge(risks)
        self._report(risks)
        self.checked_at = self._clock.monotonic()
        return risks

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Check now and every ``interval`` seconds until ``stop`` is set; never raises."""
        while not stop.is_set():
            try:
                await self.check()
            except Exception:
                log.exception("drain guard rails check failed", extra={"cluster": self._cluster})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await stop.wait()

    def _set_gauge(self, risks: Sequence[DrainRisk]) -> None:
        counts = Counter(risk.cause for risk in risks)
        for cause in RISK_CAUSES:
            self._gauge.labels(cause).set(counts[cause])

    def _report(self, risks: Sequence[DrainRisk]) -> None:
        current = frozenset(risks)
        if current == self._reported:
            return
        self._reported = current
        for risk in risks:
            log.warning(
                "service cannot be drained within the spot notice",
                extra={"service": risk.service, "cause": risk.cause, "detail": risk.detail},
            )
        if not risks:
            log.info("no service is at drain risk any more", extra={"cluster": self._cluster})
