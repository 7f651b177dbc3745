"""Measured CPU use per instance, from CloudWatch (``CPUUtilization``, ``AWS/EC2``).

One ``GetMetricData`` call reads up to 500 instances: one query per instance, the average over the
last ``window`` seconds. Instances without datapoints (too new, or detailed monitoring off and no
datapoint yet) are left out, and the caller falls back to their reservations.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

QUERIES_PER_CALL = 500


def _query(n: int, instance_id: str, period: int) -> dict[str, Any]:
    return {
        "Id": f"cpu{n}",
        "Label": instance_id,
        "MetricStat": {
            "Metric": {
                "Namespace": "AWS/EC2",
                "MetricName": "CPUUtilization",
                "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
            },
            "Period": period,
            "Stat": "Average",
        },
        "ReturnData": True,
    }


async def measured_cpu(
    cloudwatch: Any, instance_ids: list[str], now: datetime | None = None, window: int = 600
) -> dict[str, float]:
    """Instance id -> average CPU share (0..1) over the last ``window`` seconds."""
    end = now or datetime.now(UTC)
    start = end - timedelta(seconds=window)
    queries = [_query(n, iid, window) for n, iid in enumerate(instance_ids)]
    series = await metric_data(cloudwatch, queries, start, end)
    shares: dict[str, float] = {}
    for qid, points in series.items():
        if points:
            values = [v for _, v in points]
            shares[instance_ids[int(qid[3:])]] = sum(values) / len(values) / 100.0
    return shares


async def metric_data(
    cloudwatch: Any, queries: list[dict[str, Any]], start: datetime, end: datetime
) -> dict[str, list[tuple[datetime, float]]]:
    """Query id -> its (timestamp, value) points, oldest first: ``GetMetricData`` with
    ``QUERIES_PER_CALL`` queries a call, every page read."""
    series: dict[str, list[tuple[datetime, float]]] = {}
    paginator = cloudwatch.get_paginator("get_metric_data")
    for i in range(0, len(queries), QUERIES_PER_CALL):
        chunk = queries[i : i + QUERIES_PER_CALL]
        async for page in paginator.paginate(MetricDataQueries=chunk, StartTime=start, EndTime=end):
            for result in page.get("MetricDataResults", []):
                points = zip(result.get("Timestamps", []), result.get("Values", []), strict=False)
                series.setdefault(result["Id"], []).extend(points)
    return {qid: sorted(points) for qid, points in series.items()}
