"""What makes the simulated AWS slow and stingy as AWS is: call latency and API throttling.

- *Latency*: each call waits a time drawn from a log-normal distribution per service (median
  and spread below: tens of milliseconds, a long tail), from the world's seeded stream.
- *Throttling*: token buckets per account and region, with AWS's documented burst and refill
  (ECS cluster-resource writes share one bucket; reads another; EC2 mutating and describe calls
  theirs). A call that finds its bucket empty is answered ``ThrottlingException`` (EC2:
  ``RequestLimitExceeded``), and the client's own retry handler (botocore's, as configured by
  the scaler) decides whether and when to try again, as it does against AWS.

Both run on the loop's virtual time; :func:`no_limits` turns both off (unit tests of services).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

# (service, bucket) -> (burst, refill per second)
BUCKETS: dict[tuple[str, str], tuple[float, float]] = {
    ("ecs", "cluster-write"): (100, 40),
    ("ecs", "cluster-read"): (100, 20),
    ("ecs", "service-write"): (50, 5),
    ("ecs", "service-read"): (100, 20),
    ("ec2", "launch"): (5, 2),
    ("ec2", "describe"): (100, 20),
    ("ec2", "terminate"): (100, 5),
    ("ec2", "write"): (50, 5),
}
ECS_BUCKET = {
    "UpdateContainerInstancesState": "cluster-write",
    "RunTask": "cluster-write",
    "StartTask": "cluster-write",
    "StopTask": "cluster-write",
    "PutAttributes": "cluster-write",
    "DeleteAttributes": "cluster-write",
    "DeregisterContainerInstance": "cluster-write",
    "DescribeContainerInstances": "cluster-read",
    "DescribeTasks": "cluster-read",
    "ListTasks": "cluster-read",
    "ListContainerInstances": "cluster-read",
    "UpdateService": "service-write",
    "DescribeServices": "service-read",
    "ListServices": "service-read",
}
THROTTLED = {"ec2": "RequestLimitExceeded"}
MEDIAN = {"sqs": 0.015, "dynamodb": 0.008, "ecs": 0.040, "ec2": 0.080, "autoscaling": 0.060}
SPREAD = 0.6  # the log-normal's sigma: p99 about four times the median


def bucket_of(service: str, operation: str) -> str | None:
    """The token bucket a call draws from (None: not throttled in the model)."""
    if service == "ecs":
        return ECS_BUCKET.get(operation)
    if service == "ec2":
        if operation in ("RunInstances", "CreateFleet"):
            return "launch"
        if operation.startswith("Describe"):
            return "describe"
        return "terminate" if operation == "TerminateInstances" else "write"
    return None


@dataclass
class Bucket:
    burst: float
    refill: float
    tokens: float = math.nan
    at: float = 0.0

    def take(self, now: float) -> bool:
        if math.isnan(self.tokens):
            self.tokens = self.burst
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.refill)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass
class Limits:
    """Latency and throttling for one simulated account and region."""

    seed: int = 0
    latency: bool = True
    throttling: bool = True
    scale: float = 1.0  # multiplies every refill rate (below 1: a stingier account)
    _buckets: dict[tuple[str, str], Bucket] = field(default_factory=dict)
    _rng: random.Random = field(init=False)
    throttled: dict[str, int] = field(default_factory=dict)  # "service:Operation" -> answers

    def __post_init__(self) -> None:
        self._rng = random.Random(f"latency:{self.seed}")

    def delay(self, service: str, operation: str) -> float:
        if not self.latency:
            return 0.0
        median = MEDIAN.get(service, 0.03)
        return median * math.exp(self._rng.gauss(0.0, SPREAD))

    def admit(self, service: str, operation: str, now: float) -> str | None:
        """None if the call may proceed; else the error code it is throttled with."""
        name = bucket_of(service, operation) if self.throttling else None
        if name is None:
            return None
        key = (service, name)
        if key not in self._buckets:
            burst, refill = BUCKETS[key]
            self._buckets[key] = Bucket(burst, refill * self.scale, at=now)
        if self._buckets[key].take(now):
            return None
        label = f"{service}:{operation}"
        self.throttled[label] = self.throttled.get(label, 0) + 1
        return THROTTLED.get(service, "ThrottlingException")


def no_limits() -> Limits:
    """Neither latency nor throttling (unit tests of the services)."""
    return Limits(latency=False, throttling=False)
