"""A surge move against moto over HTTP stops the hot task only once the extra one is healthy.

moto has no health checks: its tasks show no ``healthStatus`` or ``startedAt``. The tests set
both on moto's in-process record of a task (its API cannot), as ECS would report them.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from scaler import testbed
from scaler.aws.clients import AwsClients, AwsTarget
from scaler.aws.rebalancer import RebalanceController
from scaler.demo import aws_calls
from scaler.metrics import Metrics
from tests.integration.ecs_harness import _moto_task
from tests.integration.helpers import settings_for

CHECK = {"command": ["CMD-SHELL", "true"], "interval": 10, "startPeriod": 20}


def _hot_cluster(
    aws: testbed.LocalAws, check: dict[str, Any] | None, grace: int | None = None
) -> tuple[list[testbed.Node], list[str]]:
    """Three instances, the four tasks of ``web`` (minimumHealthyPercent 100) on the first one,
    healthy and RUNNING for an hour; the nodes and the tasks' ARNs."""
    testbed.manual_task_states(aws)
    nodes = testbed.create_cluster(aws, "prod", size=3)
    ecs = aws.client("ecs")
    app: dict[str, Any] = {"name": "app", "image": "x", "cpu": 1024, "memory": 512}
    if check is not None:
        app["healthCheck"] = check
    ecs.register_task_definition(family="web", containerDefinitions=[app])
    ecs.create_service(cluster="prod", serviceName="web", taskDefinition="web", desiredCount=4)
    update: dict[str, Any] = {}
    if grace is not None:
        update["healthCheckGracePeriodSeconds"] = grace
    ecs.update_service(  # moto's CreateService drops these; its UpdateService keeps them
        cluster="prod",
        service="web",
        deploymentConfiguration={"minimumHealthyPercent": 100, "maximumPercent": 200},
        placementStrategy=[{"type": "spread", "field": "instanceId"}],
        **update,
    )
    started = ecs.start_task(
        cluster="prod",
        taskDefinition="web",
        group="service:web",
        containerInstances=[nodes[0].container_instance_arn] * 4,
    )["tasks"]
    arns = [t["taskArn"] for t in started]
    for arn in arns:
        _report(arn, "HEALTHY" if check else "UNKNOWN", time.time() - 3600)
    return nodes, arns


def _report(arn: str, health: str, started_at: float) -> None:
    """Make DescribeTasks say what ECS would: the task's health and when it started running."""
    task = _moto_task("prod", arn)
    task.health_status = health
    task.started_at = datetime.fromtimestamp(started_at, UTC)


def _start_extra(aws: testbed.LocalAws, nodes: list[testbed.Node], destination: str) -> str:
    """ECS starts the surge's extra task where the service's strategy puts it."""
    dest = next(n for n in nodes if n.instance_id == destination)
    started = aws.client("ecs").start_task(
        cluster="prod",
        taskDefinition="web",
        group="service:web",
        containerInstances=[dest.container_instance_arn],
    )
    return str(started["tasks"][0]["taskArn"])


def _target(aws: testbed.LocalAws) -> AwsTarget:
    return AwsTarget(region=testbed.REGION, endpoint_url=aws.endpoint, max_attempts=1)


def _desired(aws: testbed.LocalAws) -> int:
    web = aws.client("ecs").describe_services(cluster="prod", services=["web"])["services"][0]
    return int(web["desiredCount"])


async def test_a_surge_waits_for_the_extra_task_to_report_healthy(
    local_aws: testbed.LocalAws,
) -> None:
    nodes, hot = _hot_cluster(local_aws, CHECK)
    settings = settings_for(
        "http://q", task_rebalance=True, scale_in_after=0, consolidate=False, task_min_age=0.01
    )
    metrics = Metrics()
    async with AwsClients(_target(local_aws), metrics) as aws:
        mover = RebalanceController(aws, settings, metrics)
        now = time.time()
        (move,) = (await mover.cycle(now)).moves
        assert move.surge and _desired(local_aws) == 5
        extra = _start_extra(local_aws, nodes, move.destination)
        _report(extra, "UNKNOWN", now)  # RUNNING, its health check in its start period
        # RUNNING far longer than its checks' worst case (startPeriod + interval), still UNKNOWN
        await mover.finish_surges(now + 120)
        assert "ecs:StopTask" not in aws_calls(metrics)
        _report(extra, "HEALTHY", now)
        await mover.finish_surges(now + 121)
    assert aws_calls(metrics)["ecs:StopTask"] == 1
    assert _desired(local_aws) == 4
    assert not mover.surges
    stopped = local_aws.client("ecs").describe_tasks(cluster="prod", tasks=hot)["tasks"]
    assert sum(t["desiredStatus"] == "STOPPED" for t in stopped) == 1


async def test_without_health_checks_a_surge_waits_out_the_grace_period(
    local_aws: testbed.LocalAws,
) -> None:
    nodes, _ = _hot_cluster(local_aws, None, grace=120)
    settings = settings_for(
        "http://q", task_rebalance=True, scale_in_after=0, consolidate=False, task_min_age=0.01
    )
    metrics = Metrics()
    async with AwsClients(_target(local_aws), metrics) as aws:
        mover = RebalanceController(aws, settings, metrics)
        now = time.time()
        (move,) = (await mover.cycle(now)).moves
        assert move.surge
        extra = _start_extra(local_aws, nodes, move.destination)
        _report(extra, "UNKNOWN", now + 10)  # no container health check: never more than that
        await mover.finish_surges(now + 100)  # RUNNING 90 s of the 120 s grace period
        assert "ecs:StopTask" not in aws_calls(metrics)
        await mover.finish_surges(now + 130)
    assert aws_calls(metrics)["ecs:StopTask"] == 1
    assert _desired(local_aws) == 4 and not mover.surges


async def test_a_surge_whose_extra_task_never_gets_healthy_is_given_up(
    local_aws: testbed.LocalAws,
) -> None:
    nodes, _ = _hot_cluster(local_aws, CHECK)
    settings = settings_for(
        "http://q", task_rebalance=True, scale_in_after=0, consolidate=False, task_min_age=0.01
    )
    metrics = Metrics()
    async with AwsClients(_target(local_aws), metrics) as aws:
        mover = RebalanceController(aws, settings, metrics)
        now = time.time()
        (move,) = (await mover.cycle(now)).moves
        extra = _start_extra(local_aws, nodes, move.destination)
        _report(extra, "UNHEALTHY", now)
        await mover.finish_surges(now + 601)
    assert "ecs:StopTask" not in aws_calls(metrics)
    assert _desired(local_aws) == 4 and not mover.surges
    assert 'scaler_task_moves_total{outcome="not_replaced"} 1.0' in metrics.render().decode()
