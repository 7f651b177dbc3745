"""Measured use per service from CloudWatch, and the reservation advice made from it.

ECS publishes ``CPUUtilization`` and ``MemoryUtilization`` per service (namespace ``AWS/ECS``,
dimensions ``ClusterName`` and ``ServiceName``) as a percentage of what the service's tasks
*reserve*: one task's use is that percentage times its reservation. One ``GetMetricData`` query
per service and metric reads the ``PERIOD`` averages of the last ``SCALER_ADVICE_WINDOW``
seconds (batched as :func:`scaler.aws.cpu.metric_data` batches); each average is one sample of
:class:`scaler.plan.advice.Measured`, and the samples span from the first period's start to the
last period's end. A service without datapoints (no Container Insights needed: these are ECS's
basic service metrics) is left out.

The advice is read-only: :class:`Advisor` sets the ``scaler_reservation_advice`` gauges and
``scaler plan`` prints it; nothing here changes a task definition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from scaler.aws.cpu import metric_data
from scaler.aws.lease import Always, Leadership
from scaler.aws.live import LiveCluster, live_cluster, with_measured_cpu
from scaler.aws.rebalancer import policy_from as rebalance_policy
from scaler.aws.services import Definitions
from scaler.clock import Clock, SystemClock
from scaler.metrics import Metrics
from scaler.plan.advice import CPU, MEMORY, AdvicePlan, AdvicePolicy, Measured, plan_advice
from scaler.plan.rebalance import hot_instances
from scaler.settings import LoadSource, Settings

log = logging.getLogger(__name__)

PERIOD = 300  # seconds per sample
METRICS = {CPU: "CPUUtilization", MEMORY: "MemoryUtilization"}


def policy_from(settings: Settings) -> AdvicePolicy:
    return AdvicePolicy(
        over=settings.advice_over,
        under=settings.advice_under,
        headroom=settings.advice_headroom,
        min_samples=settings.advice_min_samples,
        min_window=settings.advice_min_window,
    )


def _query(n: int, cluster: str, service: str, resource: str) -> dict[str, Any]:
    return {
        "Id": f"use{n}",
        "Label": f"{service} {resource}",
        "MetricStat": {
            "Metric": {
                "Namespace": "AWS/ECS",
                "MetricName": METRICS[resource],
                "Dimensions": [
                    {"Name": "ClusterName", "Value": cluster},
                    {"Name": "ServiceName", "Value": service},
                ],
            },
            "Period": PERIOD,
            "Stat": "Average",
        },
        "ReturnData": True,
    }


async def measured_use(
    cloudwatch: Any,
    cluster: str,
    reservations: Mapping[str, tuple[int, int]],
    now: datetime,
    window: float,
) -> list[Measured]:
    """Each service's measured use per task: ``reservations`` is service -> (CPU units, MiB)
    reserved by one task; ``cluster`` is the cluster's name."""
    keys = [(s, r) for s in sorted(reservations) for r in (CPU, MEMORY)]
    queries = [_query(n, cluster, s, r) for n, (s, r) in enumerate(keys)]
    series = await metric_data(cloudwatch, queries, now - timedelta(seconds=window), now)
    found = []
    for qid, points in series.items():
        if not points:
            continue
        service, resource = keys[int(qid[3:])]
        reserved = reservations[service][0 if resource == CPU else 1]
        span = (points[-1][0] - points[0][0]).total_seconds() + PERIOD
        samples = tuple(value / 100.0 * reserved for _, value in points)
        found.append(Measured(service, resource, reserved, samples, span))
    return found


async def advice_now(aws: Any, settings: Settings, live: LiveCluster, now: datetime) -> AdvicePlan:
    """The advice for ``live``'s services; hot instances as rebalancing sees them."""
    reservations = {
        name: (state.spec.cpu, state.spec.memory) for name, state in live.model.services.items()
    }
    measured = await measured_use(
        aws.cloudwatch, settings.cluster_name, reservations, now, settings.advice_window
    )
    hot = hot_instances(live.model.instances.values(), rebalance_policy(settings))
    return plan_advice(measured, policy_from(settings), hot)


class Advisor:
    """``scaler run`` with ``SCALER_ADVICE``: the advice every rebalancing interval, as gauges
    (by the leader only, when replicas share the cluster)."""

    def __init__(
        self, aws: Any, settings: Settings, metrics: Metrics, clock: Clock | None = None
    ) -> None:
        self._aws = aws
        self._settings = settings
        self._metrics = metrics
        self._clock = clock or SystemClock()
        self.leader: Leadership = Always()
        self._definitions = Definitions()

    async def cycle(self) -> AdvicePlan:
        live = await live_cluster(self._aws, self._settings.cluster, self._definitions)
        if self._settings.load_source is LoadSource.MEASURED:
            live = await with_measured_cpu(self._aws, live, self._clock.now())
        plan = await advice_now(self._aws, self._settings, live, self._clock.now())
        self._metrics.reservation_advice(plan)
        return plan

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if self.leader.holds():
                    await self.cycle()
            except Exception:
                log.exception("reservation advice failed")  # tried again at the next interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._settings.rebalance_interval)
