"""Guard rails against the local AWS: scan a real cluster's services over HTTP, then judge them.

moto 5.2's CreateService drops ``deploymentConfiguration`` and ``healthCheckGracePeriodSeconds``
(DescribeServices then omits both), but UpdateService stores them; so the services are created and
then updated, as an operator tuning a service would. A service never updated shows no
deploymentConfiguration, which the scan reads as ECS's REPLICA default of 100%/200%.
"""

from __future__ import annotations

from typing import Any

import pytest

from scaler import testbed
from scaler.aws.clients import AwsClients, AwsTarget
from scaler.demo import aws_calls
from scaler.guard import ServiceView, drain_risks, scan_services
from scaler.metrics import Metrics

CLUSTER = "prod"
TG = f"arn:aws:elasticloadbalancing:{testbed.REGION}:{testbed.ACCOUNT}:targetgroup/web/1"
RELAXED = {"minimumHealthyPercent": 50, "maximumPercent": 200}


def container(name: str, check: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "image": "nginx", "memory": 128, **fields}
    if check is not None:
        c["healthCheck"] = {"command": ["CMD-SHELL", "true"], **check}
    return c


def register_task_definitions(ecs: Any) -> None:
    families = {
        "plain": [container("app")],
        "slow": [container("app", {"startPeriod": 200})],
        "quick": [container("app", {"startPeriod": 20, "interval": 10})],
        "sidecar": [container("app"), container("log", {"startPeriod": 300}, essential=False)],
    }
    for family, containers in families.items():
        ecs.register_task_definition(family=family, containerDefinitions=containers)


def make_service(
    ecs: Any,
    name: str,
    task_definition: str = "plain",
    desired: int = 2,
    config: dict[str, int] | None = None,
    grace: int | None = None,
    cluster: str = CLUSTER,
    **create: Any,
) -> None:
    ecs.create_service(
        cluster=cluster,
        serviceName=name,
        taskDefinition=task_definition,
        desiredCount=desired,
        **create,
    )
    update: dict[str, Any] = {}
    if config is not None:
        update["deploymentConfiguration"] = config
    if grace is not None:
        update["healthCheckGracePeriodSeconds"] = grace
    if update:
        ecs.update_service(cluster=cluster, service=name, **update)


def build_cluster(aws: testbed.LocalAws, monkeypatch: pytest.MonkeyPatch) -> None:
    ecs = aws.client("ecs")
    for name in (CLUSTER, "other"):
        ecs.create_cluster(clusterName=name)
    register_task_definitions(ecs)
    make_service(ecs, "deploying", config=RELAXED)  # no task running yet: rollout IN_PROGRESS
    # moto reports this many tasks running for services created from now on: rollout COMPLETED
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "1000")
    make_service(ecs, "defaults")
    make_service(ecs, "strict", config={"minimumHealthyPercent": 100, "maximumPercent": 100})
    make_service(ecs, "careful", config={"minimumHealthyPercent": 100, "maximumPercent": 150})
    lb = [{"targetGroupArn": TG, "containerName": "app", "containerPort": 80}]
    make_service(ecs, "grace", config=RELAXED, grace=300, loadBalancers=lb)
    make_service(ecs, "slow-start", "slow", config=RELAXED)
    make_service(ecs, "quick-check", "quick", config=RELAXED)
    make_service(ecs, "sidecar", "sidecar", config=RELAXED)
    make_service(ecs, "agent", desired=0, schedulingStrategy="DAEMON")
    make_service(
        ecs, "idle", desired=0, config={"minimumHealthyPercent": 100, "maximumPercent": 100}
    )
    for i in range(1, 5):
        make_service(ecs, f"relaxed-{i}", config=RELAXED)
    make_service(ecs, "elsewhere", cluster="other", config={"maximumPercent": 100})


def expected_views() -> dict[str, ServiceView]:
    def v(name: str, low: int = 50, high: int = 200, **fields: Any) -> ServiceView:
        values: dict[str, Any] = dict(
            name=name,
            arn=f"arn:aws:ecs:{testbed.REGION}:{testbed.ACCOUNT}:service/{CLUSTER}/{name}",
            scheduling_strategy="REPLICA",
            desired_count=2,
            minimum_healthy_percent=low,
            maximum_percent=high,
        )
        values.update(fields)
        return ServiceView(**values)

    views = [
        v("deploying", deployment_in_progress=True),
        v("defaults", 100, 200),
        v("strict", 100, 100),
        v("careful", 100, 150),
        v("grace", health_check_grace_period_seconds=300, has_load_balancer=True),
        v("slow-start", container_health_check_seconds=230),
        v("quick-check", container_health_check_seconds=30),
        v("sidecar"),  # only a non-essential container has a health check
        v("agent", 0, 100, scheduling_strategy="DAEMON", desired_count=0),
        v("idle", 100, 100, desired_count=0),
        *(v(f"relaxed-{i}") for i in range(1, 5)),
    ]
    return {view.name: view for view in views}


async def scan(aws: testbed.LocalAws, metrics: Metrics) -> list[ServiceView]:
    target = AwsTarget(region=testbed.REGION, endpoint_url=aws.endpoint, max_attempts=1)
    async with AwsClients(target, metrics) as clients:
        return await scan_services(clients.ecs, CLUSTER)


async def test_scan_reads_every_service_of_the_cluster(
    local_aws: testbed.LocalAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_cluster(local_aws, monkeypatch)
    metrics = Metrics()
    views = await scan(local_aws, metrics)
    assert {view.name: view for view in views} == expected_views()
    assert len(views) == 14
    assert aws_calls(metrics) == {
        "ecs:ListServices": 1,
        "ecs:DescribeServices": 2,  # 10 + 4
        "ecs:DescribeTaskDefinition": 4,  # plain, slow, quick, sidecar: once each
    }


async def test_drain_risks_flag_the_right_services(
    local_aws: testbed.LocalAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_cluster(local_aws, monkeypatch)
    risks = drain_risks(await scan(local_aws, Metrics()))
    assert sorted((r.service, r.cause) for r in risks) == [
        ("careful", "min_healthy_100"),
        ("defaults", "min_healthy_100"),
        ("grace", "slow_health_check"),
        ("slow-start", "slow_health_check"),
        ("strict", "no_surge_room"),
    ]
    by_service = {r.service: r.detail for r in risks}
    assert "230 s" in by_service["slow-start"]
    assert "healthCheckGracePeriodSeconds=300" in by_service["grace"]


async def test_scan_of_a_cluster_without_services(local_aws: testbed.LocalAws) -> None:
    local_aws.client("ecs").create_cluster(clusterName=CLUSTER)
    metrics = Metrics()
    assert await scan(local_aws, metrics) == []
    assert aws_calls(metrics) == {"ecs:ListServices": 1}
