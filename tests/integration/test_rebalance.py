"""Task rebalancing against moto over HTTP: the live model, moves and their check; `scaler plan`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

from scaler import testbed
from scaler.aws.clients import AwsClients, AwsTarget
from scaler.aws.live import live_cluster
from scaler.aws.rebalancer import RebalanceController
from scaler.demo import aws_calls
from scaler.metrics import Metrics
from scaler.planview import plan_now
from tests.integration.helpers import settings_for

READS = ("List", "Describe", "Get")


def _hot_cluster(
    aws: testbed.LocalAws, min_healthy: int = 50, max_percent: int = 100
) -> list[testbed.Node]:
    """Three instances; all four web tasks piled on the first one (100% CPU reserved)."""
    testbed.manual_task_states(aws)
    nodes = testbed.create_cluster(aws, "prod", size=3)
    ecs = aws.client("ecs")
    ecs.register_task_definition(
        family="web",
        containerDefinitions=[{"name": "app", "image": "x", "cpu": 1024, "memory": 512}],
    )
    ecs.create_service(cluster="prod", serviceName="web", taskDefinition="web", desiredCount=4)
    ecs.update_service(
        cluster="prod",
        service="web",
        deploymentConfiguration={
            "minimumHealthyPercent": min_healthy,
            "maximumPercent": max_percent,
        },
        placementStrategy=[{"type": "spread", "field": "instanceId"}],
    )
    ecs.start_task(
        cluster="prod",
        taskDefinition="web",
        group="service:web",
        containerInstances=[nodes[0].container_instance_arn] * 4,
    )
    return nodes


def _target(aws: testbed.LocalAws) -> AwsTarget:
    return AwsTarget(region=testbed.REGION, endpoint_url=aws.endpoint, max_attempts=1)


async def test_the_live_model_sees_where_tasks_run(local_aws: testbed.LocalAws) -> None:
    nodes = _hot_cluster(local_aws)
    async with AwsClients(_target(local_aws), Metrics()) as aws:
        live = await live_cluster(aws, "prod")
    first = live.model.instances[nodes[0].instance_id]
    assert len(first.tasks) == 4 and first.free_cpu == 0
    assert live.model.services["web"].spec.min_healthy_percent == 50
    assert len(live.task_arns) == 4


async def test_a_hot_instance_is_cooled_and_the_move_checked(local_aws: testbed.LocalAws) -> None:
    nodes = _hot_cluster(local_aws)
    settings = settings_for(
        "http://q", task_rebalance=True, scale_in_after=0, consolidate=False, task_min_age=0.01
    )
    metrics = Metrics()
    async with AwsClients(_target(local_aws), metrics) as aws:
        mover = RebalanceController(aws, settings, metrics)
        plan = await mover.cycle(now=time.time())
        assert plan.hot == (nodes[0].instance_id,)
        assert len(plan.moves) == 1  # one move per service at a time
        move = plan.moves[0]
        assert move.destination in {nodes[1].instance_id, nodes[2].instance_id}
        # ECS starts the replacement where the service's strategy puts it
        dest = next(n for n in nodes if n.instance_id == move.destination)
        local_aws.client("ecs").start_task(
            cluster="prod",
            taskDefinition="web",
            group="service:web",
            containerInstances=[dest.container_instance_arn],
        )
        await mover.cycle(now=time.time())
    text = metrics.render().decode()
    assert 'scaler_task_moves_total{outcome="as_predicted"} 1.0' in text
    # the instance is still hotter than the mean by more than the deviation: a second move
    stops = aws_calls(metrics)["ecs:StopTask"]
    assert stops == 2
    assert f'scaler_task_moves_total{{outcome="stopped"}} {stops:.1f}' in text


async def test_no_replacement_onto_an_instance_tagged_retiring(
    local_aws: testbed.LocalAws,
) -> None:
    nodes = _hot_cluster(local_aws)  # the replacement: on nodes[1] or nodes[2], ECS's choice
    ec2 = local_aws.client("ec2")
    ec2.create_tags(
        Resources=[nodes[1].instance_id], Tags=[{"Key": "scaler:retiring", "Value": "idle"}]
    )
    settings = settings_for(
        "http://q", task_rebalance=True, scale_in_after=0, consolidate=False, task_min_age=0.01
    )
    async with AwsClients(_target(local_aws), Metrics()) as aws:
        mover = RebalanceController(aws, settings, Metrics())
        plan = await mover.cycle(now=time.time())
        assert plan.hot == (nodes[0].instance_id,) and plan.moves == ()
        ec2.delete_tags(Resources=[nodes[1].instance_id], Tags=[{"Key": "scaler:retiring"}])
        plan = await mover.cycle(now=time.time())
    assert len(plan.moves) == 1


async def test_a_service_that_may_not_lose_a_task_is_surged_first(
    local_aws: testbed.LocalAws,
) -> None:
    nodes = _hot_cluster(local_aws, min_healthy=100, max_percent=200)
    ecs = local_aws.client("ecs")
    settings = settings_for(
        "http://q", task_rebalance=True, scale_in_after=0, consolidate=False, task_min_age=0.01
    )
    metrics = Metrics()
    async with AwsClients(_target(local_aws), metrics) as aws:
        mover = RebalanceController(aws, settings, metrics)
        plan = await mover.cycle(now=time.time())
        (move,) = plan.moves
        assert move.surge
        web = ecs.describe_services(cluster="prod", services=["web"])["services"][0]
        assert web["desiredCount"] == 5  # the replacement first
        assert "ecs:StopTask" not in aws_calls(metrics)
        await mover.finish_surges(time.time())  # not yet: the extra task is not running
        assert "ecs:StopTask" not in aws_calls(metrics)
        dest = next(n for n in nodes if n.instance_id == move.destination)
        ecs.start_task(  # ECS starts the extra task where the service's strategy puts it
            cluster="prod",
            taskDefinition="web",
            group="service:web",
            containerInstances=[dest.container_instance_arn],
        )
        await mover.finish_surges(time.time())
    assert aws_calls(metrics)["ecs:StopTask"] == 1
    web = ecs.describe_services(cluster="prod", services=["web"])["services"][0]
    assert web["desiredCount"] == 4
    text = metrics.render().decode()
    for outcome in ("surged", "stopped", "as_predicted"):
        assert f'scaler_task_moves_total{{outcome="{outcome}"}} 1.0' in text
    assert not mover.surges


async def test_a_surge_leaves_a_desired_count_someone_else_changed(
    local_aws: testbed.LocalAws,
) -> None:
    _hot_cluster(local_aws, min_healthy=100, max_percent=200)
    ecs = local_aws.client("ecs")
    settings = settings_for(
        "http://q", task_rebalance=True, scale_in_after=0, consolidate=False, task_min_age=0.01
    )
    metrics = Metrics()
    async with AwsClients(_target(local_aws), metrics) as aws:
        mover = RebalanceController(aws, settings, metrics)
        started = time.time()
        await mover.cycle(now=started)
        ecs.update_service(cluster="prod", service="web", desiredCount=8)  # an autoscaler
        await mover.finish_surges(started + 601)  # given up: the extra task never came
    web = ecs.describe_services(cluster="prod", services=["web"])["services"][0]
    assert web["desiredCount"] == 8
    assert "ecs:StopTask" not in aws_calls(metrics)
    assert 'scaler_task_moves_total{outcome="not_replaced"} 1.0' in metrics.render().decode()


async def test_dry_run_moves_nothing(local_aws: testbed.LocalAws) -> None:
    _hot_cluster(local_aws)
    settings = settings_for(
        "http://q", task_rebalance=True, scale_in_after=0, consolidate=False, dry_run=True
    )
    metrics = Metrics()
    async with AwsClients(_target(local_aws), metrics) as aws:
        plan = await RebalanceController(aws, settings, metrics).cycle(now=1e10)
    assert plan.moves
    assert "ecs:StopTask" not in aws_calls(metrics)
    assert 'scaler_task_moves_total{outcome="dry_run"} 1.0' in metrics.render().decode()


async def test_plan_reads_only_and_reports_every_planner(local_aws: testbed.LocalAws) -> None:
    nodes = _hot_cluster(local_aws)
    metrics = Metrics()
    async with AwsClients(_target(local_aws), metrics) as aws:
        report: dict[str, Any] = await plan_now(
            aws, settings_for("http://q", scale_in_after=0, consolidate=False)
        )
    assert all(k.split(":")[1].startswith(READS) for k in aws_calls(metrics)), aws_calls(metrics)
    assert report["rebalance"]["hot"] == {nodes[0].instance_id: 1.0}
    assert len(report["rebalance"]["moves"]) == 1
    assert report["top_up"]["off"].startswith("no SCALER_SPOT_POOLS")
    assert report["drain"]["draining"] == []


def test_plan_command_prints_json(local_aws: testbed.LocalAws) -> None:
    _hot_cluster(local_aws)
    env = {
        **os.environ,
        "SCALER_CLUSTER": "prod",
        "AWS_REGION": testbed.REGION,
        "AWS_ENDPOINT_URL": local_aws.endpoint,
    }
    out = subprocess.run(
        [sys.executable, "-m", "scaler", "plan", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    report = json.loads(out)
    assert set(report) == {
        "cluster",
        "drain",
        "top_up",
        "rebalance",
        "advice",
        "roll",
        "consolidation",
        "migration",
    }
    text = subprocess.run(
        [sys.executable, "-m", "scaler", "plan"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "rebalance (SCALER_TASK_REBALANCE is off)" in text and "hot:" in text


async def test_measured_cpu_drives_decisions_when_asked(local_aws: testbed.LocalAws) -> None:
    from datetime import UTC, datetime, timedelta

    nodes = _hot_cluster(local_aws)  # i-0: 100% reserved
    cloudwatch = local_aws.client("cloudwatch")
    now = datetime.now(UTC)
    for node, percent in ((nodes[0], 30.0), (nodes[1], 96.0), (nodes[2], 5.0)):
        cloudwatch.put_metric_data(
            Namespace="AWS/EC2",
            MetricData=[
                {
                    "MetricName": "CPUUtilization",
                    "Dimensions": [{"Name": "InstanceId", "Value": node.instance_id}],
                    "Timestamp": now - timedelta(minutes=m),
                    "Value": percent,
                }
                for m in (1, 3, 5)
            ],
        )
    async with AwsClients(_target(local_aws), Metrics()) as aws:
        reserved = await plan_now(aws, settings_for("http://q"))
        measured = await plan_now(aws, settings_for("http://q", load_source="measured"))
    assert reserved["rebalance"]["hot"] == {nodes[0].instance_id: 1.0}
    # by measurement the piled-up instance is cool and another one is hot
    assert measured["rebalance"]["hot"] == {nodes[1].instance_id: 0.96}
    assert "measured by CloudWatch for 3 of 3" in " ".join(measured["rebalance"]["notes"])


async def test_a_surge_survives_a_crash_of_the_scaler(local_aws: testbed.LocalAws) -> None:
    """The scaler dies after raising the desired count: its successor finds the mark on the
    service, finishes the move and sets the count back."""
    nodes = _hot_cluster(local_aws, min_healthy=100, max_percent=200)
    ecs = local_aws.client("ecs")
    settings = settings_for(
        "http://q", task_rebalance=True, scale_in_after=0, consolidate=False, task_min_age=0.01
    )
    async with AwsClients(_target(local_aws), Metrics()) as aws:
        crashed = RebalanceController(aws, settings, Metrics())
        (move,) = (await crashed.cycle(time.time())).moves
        marked = crashed.surges["web"].arn
    web = ecs.describe_services(cluster="prod", services=["web"], include=["TAGS"])["services"][0]
    assert web["desiredCount"] == 5
    assert [t["key"] for t in web["tags"]] == ["scaler:surge"]
    dest = next(n for n in nodes if n.instance_id == move.destination)
    ecs.start_task(  # ECS starts the extra task while no scaler runs
        cluster="prod",
        taskDefinition="web",
        group="service:web",
        containerInstances=[dest.container_instance_arn],
    )
    metrics = Metrics()
    async with AwsClients(_target(local_aws), metrics) as aws:
        successor = RebalanceController(aws, settings, metrics)
        await successor.cycle(time.time())
    assert aws_calls(metrics)["ecs:StopTask"] == 1
    web = ecs.describe_services(cluster="prod", services=["web"], include=["TAGS"])["services"][0]
    assert web["desiredCount"] == 4 and web["tags"] == []
    assert not successor.surges
    arns = ecs.list_tasks(cluster="prod")["taskArns"]
    stopped = [
        t["taskArn"]
        for t in ecs.describe_tasks(cluster="prod", tasks=arns)["tasks"]
        if t["lastStatus"] == "STOPPED" or t["desiredStatus"] == "STOPPED"
    ]
    assert stopped == [marked]  # the marked task, and only it


class _Follower:
    """A leadership that never holds, counting how often it is asked."""

    def __init__(self) -> None:
        self.asked = 0

    def holds(self) -> bool:
        self.asked += 1
        return False

    async def run_forever(self, stop: asyncio.Event) -> None:
        await stop.wait()

    async def give_up(self) -> None:
        return None


async def test_a_follower_waits_between_turns(local_aws: testbed.LocalAws) -> None:
    settings = settings_for("http://q", task_rebalance=True, scale_in_after=0, consolidate=False)
    async with AwsClients(_target(local_aws), Metrics()) as aws:
        mover = RebalanceController(aws, settings, Metrics())
        follower = _Follower()
        mover.leader = follower
        stop = asyncio.Event()
        runner = asyncio.create_task(mover.run_forever(stop))
        await asyncio.sleep(1.5)
        stop.set()
        await runner
    assert 1 <= follower.asked <= 3  # a turn a second at most, not a busy loop
