"""Building blocks for integration tests: a scaler wired to the local AWS, and waiting for it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from scaler import testbed
from scaler.aws.clients import AwsTarget, Instrument
from scaler.clock import Clock, SystemClock
from scaler.demo import event_outcomes
from scaler.loop import Scaler
from scaler.metrics import Metrics
from scaler.settings import Settings, load_settings
from tests.integration.faults import MinSizeRefusal, chain


def settings_for(queue_url: str, cluster: str = "prod", **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        cluster=cluster,
        queue_url=queue_url,
        metrics_port=0,
        metrics_host="127.0.0.1",
        wait_time=1,
        shutdown_grace=3,
        retry_delay=1,
    )
    values.update(overrides)
    return load_settings(**values)


def scaler_for(
    aws: testbed.LocalAws,
    settings: Settings,
    *,
    clock: Clock | None = None,
    instrument: Instrument | None = None,
) -> Scaler:
    """A scaler on the local AWS, with AWS's rules moto lacks (:class:`MinSizeRefusal`)."""
    target = AwsTarget(region=testbed.REGION, endpoint_url=aws.endpoint, max_attempts=2)
    return Scaler(settings, target, clock, instrument=chain(MinSizeRefusal(aws), instrument))


class SteppedClock:
    """The system clock, plus steps forward made by the test (a paused process, say)."""

    def __init__(self) -> None:
        self._system = SystemClock()
        self.offset = 0.0

    def now(self) -> datetime:
        return self._system.now() + timedelta(seconds=self.offset)

    def monotonic(self) -> float:
        return self._system.monotonic() + self.offset

    def step(self, seconds: float) -> None:
        self.offset += seconds


async def wait_for(condition: Callable[[], bool], limit: float = 20.0, poll: float = 0.05) -> None:
    """Wait until ``condition()`` holds; fail the test after ``limit`` seconds."""
    async with asyncio.timeout(limit):
        while not condition():  # noqa: ASYNC110 (polling outside state is the point)
            await asyncio.sleep(poll)


def outcomes(metrics: Metrics) -> dict[str, int]:
    return {k: v for k, v in event_outcomes(metrics).items() if v}


def web_service(
    aws: testbed.LocalAws, max_percent: int, cluster: str = "prod", check: bool = False
) -> str:
    """Service ``web`` of 4 tasks (minimumHealthyPercent 50, ``max_percent``; with ``check``, a
    container health check): its ARN."""
    ecs = aws.client("ecs")
    app: dict[str, Any] = {"name": "app", "image": "x", "cpu": 256, "memory": 256}
    if check:
        app["healthCheck"] = {"command": ["CMD-SHELL", "true"], "interval": 10}
    ecs.register_task_definition(family="web", containerDefinitions=[app])
    arn: str = ecs.create_service(
        cluster=cluster, serviceName="web", taskDefinition="web", desiredCount=4
    )["service"]["serviceArn"]
    ecs.update_service(
        cluster=cluster,
        service="web",
        deploymentConfiguration={"minimumHealthyPercent": 50, "maximumPercent": max_percent},
    )
    return arn


def service_state(
    aws: testbed.LocalAws, arn: str, cluster: str = "prod"
) -> tuple[int, dict[str, str]]:
    """Service ``web``'s desired count and tags."""
    ecs = aws.client("ecs")
    desired = ecs.describe_services(cluster=cluster, services=["web"])["services"][0]
    tags = ecs.list_tags_for_resource(resourceArn=arn).get("tags", [])
    return int(desired["desiredCount"]), {t["key"]: t["value"] for t in tags}


def lease_table(aws: testbed.LocalAws, name: str) -> None:
    """The lease table as the deployment creates it: one string partition key, ``name``."""
    aws.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "name", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "name", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
