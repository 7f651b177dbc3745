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
    shares: dict[str, float] = {}
    for i in range(0, len(instance_ids), QUERIES_PER_CALL):
        chunk = instance_ids[i : i + QUERIES_PER_CALL]
        queries = [_query(n, iid, window) for n, iid in enumerate(chunk)]
        paginator = cloudwatch.get_paginator("get_metric_data")
        async for page in paginator.paginate(
            MetricDataQueries=queries, StartTime=start, EndTime=end
        ):
            for result in page.get("MetricDataResults", []):
                values = result.get("Values", [])
                if values:
                    iid = chunk[int(result["Id"][3:])]
                    shares[iid] = sum(values) / len(values) / 100.0
    return shares
