"""Simulated CloudWatch: ``GetMetricData`` for the ``AWS/EC2`` ``CPUUtilization`` of instances.

A query's datapoints are the periods from ``StartTime`` (every ``Period`` seconds, before
``EndTime``) in which the instance ran (none once it is shutting down), each the world's
``cpu(instance id, loop time)`` percent (default: a constant). An instance has no datapoint
until ``FIRST_DATAPOINT`` seconds after its launch (basic monitoring's five-minute period),
and the scaler then falls back to its reservations. Timestamps are newest first
(``TimestampDescending``, the API's default). More than 500 queries in one call is a
``ValidationError``, as CloudWatch answers it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from scaler.sim.cloud.transport import AwsError, NotSimulated, Operations
from scaler.sim.cloud.world import PENDING, RUNNING, World

MAX_QUERIES = 500
FIRST_DATAPOINT = 300.0

Cpu = Callable[[str, float], float]  # (instance id, loop time) -> percent


def constant(percent: float) -> Cpu:
    """Every instance at ``percent`` CPU, always."""
    return lambda _instance, _at: percent


class CloudWatch(Operations):
    """CloudWatch's metrics of one region: EC2's CPU use, as the world's ``cpu`` says."""

    def __init__(self, world: World, cpu: Cpu | None = None) -> None:
        self.world = world
        self.cpu = cpu or constant(25.0)

    async def get_metric_data(
        self,
        MetricDataQueries: list[dict[str, Any]],
        StartTime: datetime,
        EndTime: datetime,
        ScanBy: str = "TimestampDescending",
        **_: Any,
    ) -> dict[str, Any]:
        if len(MetricDataQueries) > MAX_QUERIES:
            raise AwsError(
                "ValidationError",
                "The collection MetricDataQueries must not have a size greater than"
                f" {MAX_QUERIES}.",
            )
        start, end = self._at(StartTime), self._at(EndTime)
        results = [self._result(q, start, end, ScanBy) for q in MetricDataQueries]
        return {"MetricDataResults": results, "Messages": []}

    def _at(self, when: datetime) -> float:
        """Loop time of ``when``."""
        return (when - self.world.start).total_seconds()

    def _result(self, query: dict[str, Any], start: float, end: float, scan: str) -> dict[str, Any]:
        if "MetricStat" not in query:
            raise NotSimulated("GetMetricData with a metric math expression")
        stat = query["MetricStat"]
        period = float(stat["Period"])
        points = [
            (at, self.cpu(iid, at))
            for iid in _instance(stat)
            for at in _periods(start, min(end, self.world.now()), period)
            if self._ran(iid, at, period)
        ]
        if scan == "TimestampDescending":
            points.reverse()
        return {
            "Id": query["Id"],
            "Label": query.get("Label", stat["Metric"]["MetricName"]),
            "Timestamps": [self.world.wall(at) for at, _ in points],
            "Values": [value for _, value in points],
            "StatusCode": "Complete",
        }

    def _ran(self, iid: str, at: float, period: float) -> bool:
        """Whether ``iid`` has a datapoint for the period from ``at``."""
        inst = self.world.instances.get(iid)
        if inst is None or inst.launched + FIRST_DATAPOINT > self.world.now():
            return False
        return inst.launched < at + period and inst.state in (PENDING, RUNNING)


def _instance(stat: dict[str, Any]) -> list[str]:
    """The instance an ``AWS/EC2`` ``CPUUtilization`` query names (none for another metric)."""
    metric = stat["Metric"]
    if metric.get("Namespace") != "AWS/EC2" or metric.get("MetricName") != "CPUUtilization":
        return []
    return [d["Value"] for d in metric.get("Dimensions", []) if d["Name"] == "InstanceId"]


def _periods(start: float, end: float, period: float) -> list[float]:
    count = max(0, int((end - start) // period)) if period > 0 else 0
    partial = 1 if start + count * period < end else 0
    return [start + k * period for k in range(count + partial)]
