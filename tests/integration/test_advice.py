"""Reservation advice against moto over HTTP: ECS's service metrics in CloudWatch, read back as
use per task; ``scaler plan`` prints the advice and ``scaler run``'s advisor sets the gauges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from scaler import testbed
from scaler.aws.advice import Advisor, measured_use
from scaler.aws.clients import AwsClients, AwsTarget
from scaler.demo import aws_calls
from scaler.metrics import Metrics
from scaler.planview import plan_now, render
from tests.integration.faults import FailFirst
from tests.integration.helpers import settings_for

ADVICE: dict[str, Any] = {"advice": True, "advice_min_samples": 6, "advice_min_window": 1800}


def _target(aws: testbed.LocalAws) -> AwsTarget:
    return AwsTarget(region=testbed.REGION, endpoint_url=aws.endpoint, max_attempts=1)


def _service_metrics(aws: testbed.LocalAws, service: str, cpu: float, memory: float) -> None:
    """Six 5-minute averages of ``service``'s CPU and memory use (% of its reservation)."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    data = [
        {
            "MetricName": name,
            "Dimensions": [
                {"Name": "ClusterName", "Value": "prod"},
                {"Name": "ServiceName", "Value": service},
            ],
            "Timestamp": now - timedelta(minutes=5 * m + 2),
            "Value": value,
        }
        for m in range(6)
        for name, value in (("CPUUtilization", cpu), ("MemoryUtilization", memory))
    ]
    aws.client("cloudwatch").put_metric_data(Namespace="AWS/ECS", MetricData=data)


def _cluster(aws: testbed.LocalAws) -> list[testbed.Node]:
    """Two instances; web's four 1024-CPU tasks binpacked on the first (100% reserved)."""
    testbed.manual_task_states(aws)
    nodes = testbed.create_cluster(aws, "prod", size=2)
    ecs = aws.client("ecs")
    ecs.register_task_definition(
        family="web",
        containerDefinitions=[{"name": "app", "image": "x", "cpu": 1024, "memory": 2048}],
    )
    ecs.create_service(
        cluster="prod",
        serviceName="web",
        taskDefinition="web",
        desiredCount=4,
        placementStrategy=[{"type": "binpack", "field": "memory"}],
    )
    ecs.start_task(
        cluster="prod",
        taskDefinition="web",
        group="service:web",
        containerInstances=[nodes[0].container_instance_arn] * 4,
    )
    return nodes


async def test_service_metrics_are_read_as_use_per_task(local_aws: testbed.LocalAws) -> None:
    _cluster(local_aws)
    _service_metrics(local_aws, "web", cpu=130.0, memory=25.0)
    async with AwsClients(_target(local_aws), Metrics()) as aws:
        found = await measured_use(
            aws.cloudwatch,
            "prod",
            {"web": (1024, 2048), "idle": (256, 512)},
            datetime.now(UTC),
            86400,
        )
    by_resource = {m.resource: m for m in found}
    assert set(by_resource) == {"cpu", "memory"}  # no datapoints for idle: left out
    cpu, memory = by_resource["cpu"], by_resource["memory"]
    assert cpu.samples == (1024 * 1.3,) * 6 and cpu.window == 1800.0
    assert memory.samples == (512.0,) * 6 and memory.reserved == 2048


async def test_plan_prints_the_advice_with_the_hot_spots_it_relieves(
    local_aws: testbed.LocalAws,
) -> None:
    nodes = _cluster(local_aws)
    _service_metrics(local_aws, "web", cpu=130.0, memory=25.0)
    metrics = Metrics()
    async with AwsClients(_target(local_aws), metrics) as aws:
        report: dict[str, Any] = await plan_now(aws, settings_for("http://q", **ADVICE))
    assert all(k.split(":")[1].startswith(("List", "Describe", "Get")) for k in aws_calls(metrics))
    advice = {(a["service"], a["resource"]): a for a in report["advice"]["advice"]}
    assert advice["web", "cpu"]["advised"] == 1664  # 1331 x 1.25, rounded up to 64
    assert advice["web", "memory"]["advised"] == 640  # 512 x 1.25
    assert report["rebalance"]["hot"] == {nodes[0].instance_id: 1.0}
    # four tasks of 1664 CPU units do not fit on a 4096-unit instance
    assert advice["web", "cpu"]["hot_spots_removed"] == 1
    assert report["advice"]["hot_spots_removed"] == 1
    text = render(report)
    assert "reservation advice\n  web cpu: reserve 1664 CPU units, not 1024" in text


async def test_too_few_samples_wait(local_aws: testbed.LocalAws) -> None:
    _cluster(local_aws)
    _service_metrics(local_aws, "web", cpu=130.0, memory=25.0)
    async with AwsClients(_target(local_aws), Metrics()) as aws:
        report = await plan_now(aws, settings_for("http://q"))  # 30 samples over an hour
    assert report["advice"]["advice"] == []
    assert "web cpu: 6 samples over 1800 s" in report["advice"]["waiting"][0]
    assert "(SCALER_ADVICE is off: no metrics)\n" in render(report)


async def test_the_advisor_sets_the_gauges(local_aws: testbed.LocalAws) -> None:
    _cluster(local_aws)
    _service_metrics(local_aws, "web", cpu=130.0, memory=25.0)
    metrics = Metrics()
    async with AwsClients(_target(local_aws), metrics) as aws:
        await Advisor(aws, settings_for("http://q", **ADVICE), metrics).cycle()
    text = metrics.render().decode()
    assert 'scaler_reservation_advice{resource="cpu",service="web"} 1664.0' in text
    assert 'scaler_reservation_current{resource="memory",service="web"} 2048.0' in text


async def test_plan_without_cloudwatch_says_so_and_plans_the_rest(
    local_aws: testbed.LocalAws,
) -> None:
    _cluster(local_aws)
    denied = FailFirst("cloudwatch", "GetMetricData", 9, "AccessDenied", "not allowed", 403)
    async with AwsClients(_target(local_aws), Metrics(), denied) as aws:
        report = await plan_now(aws, settings_for("http://q"))
    assert report["advice"]["off"] == "CloudWatch not read (AccessDenied)"
    assert "reservation advice (SCALER_ADVICE is off: no metrics)\n  off: CloudWatch" in render(
        report
    )
    assert report["rebalance"]["hot"]
