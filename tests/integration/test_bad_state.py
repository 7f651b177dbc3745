"""Bad AWS state against moto over HTTP: clear errors or notes, never a crash loop.

Each test builds an awkward but real account state (a cluster without container instances, a
service whose task definition was deregistered or deleted, an instance type the price table
does not list or EC2 does not describe, a service deleted in the middle of a task move) and runs
the scaler's own paths on it: the drain path through the running service, ``scaler plan``, the
live model, the guard rails, the capacity reader and the rebalance controller. Where moto does not
answer as ECS would (it lets UpdateService change a deleted service), botocore's event hooks
answer for it (tests/integration/faults.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from scaler import testbed
from scaler.aws.clients import AwsClients, AwsTarget
from scaler.aws.live import live_cluster
from scaler.aws.rebalancer import RebalanceController
from scaler.clock import SystemClock
from scaler.demo import aws_calls, run_until
from scaler.guard import GuardRails
from scaler.metrics import Metrics
from scaler.planview import plan_now
from scaler.prices import ON_DEMAND_PRICES, PRICE_PER_VCPU_HOUR
from tests.integration.faults import FailFirst
from tests.integration.helpers import outcomes, scaler_for, settings_for, wait_for

CLUSTER = "prod"
UNLISTED = "c7g.xlarge"  # EC2 describes it; scaler/prices.py does not list it
UNKNOWN = "x9.mega"  # EC2's DescribeInstanceTypes refuses it
GONE_TD = "Unable to describe task definition"


def _target(aws: testbed.LocalAws) -> AwsTarget:
    return AwsTarget(region=testbed.REGION, endpoint_url=aws.endpoint, max_attempts=1)


def _moves(metrics: Metrics) -> dict[str, float]:
    found = {}
    for sample in next(iter(metrics.task_moves.collect())).samples:
        if sample.name.endswith("_total") and sample.value:
            found[sample.labels["outcome"]] = sample.value
    return found


def _messages(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= level]


def _group(aws: testbed.LocalAws, name: str, instance_type: str) -> None:
    """An empty Auto Scaling group whose launch template names ``instance_type``."""
    ec2, asg = aws.client("ec2"), aws.client("autoscaling")
    ec2.create_launch_template(
        LaunchTemplateName=f"{name}-lt",
        LaunchTemplateData={"ImageId": testbed._ecs_ami(ec2), "InstanceType": instance_type},
    )
    asg.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateName": f"{name}-lt"},
        MinSize=0,
        MaxSize=10,
        DesiredCapacity=0,
        AvailabilityZones=["us-east-1a"],
    )


def _node(aws: testbed.LocalAws, instance_type: str) -> testbed.Node:
    """An instance of ``instance_type`` registered in the cluster."""
    ec2 = aws.client("ec2")
    reply = ec2.run_instances(
        ImageId=testbed._ecs_ami(ec2),
        MinCount=1,
        MaxCount=1,
        InstanceType=instance_type,
        Placement={"AvailabilityZone": "us-east-1a"},
    )
    iid = reply["Instances"][0]["InstanceId"]
    return testbed.register_instances(aws, CLUSTER, [iid], "us-east-1a")[0]


def _service(
    aws: testbed.LocalAws,
    name: str,
    nodes: list[testbed.Node],
    min_healthy: int = 50,
    max_percent: int = 100,
    tasks: int = 4,
) -> str:
    """A service of ``tasks`` 1-vCPU tasks, all on the first node; its task definition ARN."""
    ecs = aws.client("ecs")
    arn = ecs.register_task_definition(
        family=name,
        containerDefinitions=[{"name": "app", "image": "x", "cpu": 1024, "memory": 512}],
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster=CLUSTER, serviceName=name, taskDefinition=name, desiredCount=tasks)
    ecs.update_service(
        cluster=CLUSTER,
        service=name,
        deploymentConfiguration={
            "minimumHealthyPercent": min_healthy,
            "maximumPercent": max_percent,
        },
        placementStrategy=[{"type": "spread", "field": "instanceId"}],
    )
    if tasks:
        ecs.start_task(
            cluster=CLUSTER,
            taskDefinition=name,
            group=f"service:{name}",
            containerInstances=[nodes[0].container_instance_arn] * tasks,
        )
    return str(arn)


def _lose_task_definition(aws: testbed.LocalAws, arn: str, how: str) -> None:
    ecs = aws.client("ecs")
    ecs.deregister_task_definition(taskDefinition=arn)
    if how == "deleted":
        ecs.delete_task_definitions(taskDefinitions=[arn])
        with pytest.raises(Exception, match=GONE_TD):
            ecs.describe_task_definition(taskDefinition=arn)


def _hot_cluster(aws: testbed.LocalAws, min_healthy: int, max_percent: int) -> None:
    testbed.manual_task_states(aws)
    nodes = testbed.create_cluster(aws, CLUSTER, size=3)
    _service(aws, "web", nodes, min_healthy, max_percent)


def _delete(aws: testbed.LocalAws, service: str = "web") -> None:
    aws.client("ecs").delete_service(cluster=CLUSTER, service=service, force=True)


@dataclass
class DeletedMeanwhile(FailFirst):
    """The service is deleted just before ``operation`` reaches ECS, which then answers as it
    does for a service that is not ACTIVE (moto would let UpdateService through)."""

    aws: testbed.LocalAws | None = None
    code: str = "ServiceNotActiveException"
    message: str = "Service was not ACTIVE."

    def _maybe_fail(self, **kwargs: Any) -> Any:
        if self.failed < self.times and self.aws is not None:
            _delete(self.aws)
        return super()._maybe_fail(**kwargs)


def _plan_command(aws: testbed.LocalAws, **env: str) -> subprocess.Popen[str]:
    variables = {
        **os.environ,
        "SCALER_CLUSTER": CLUSTER,
        "AWS_REGION": testbed.REGION,
        "AWS_ENDPOINT_URL": aws.endpoint,
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "scaler", "plan", "--json"],
        env=variables,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# --- a cluster without container instances -------------------------------------------------------


async def test_events_for_an_empty_cluster_are_other_cluster_and_deleted(
    local_aws: testbed.LocalAws, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    local_aws.client("ecs").create_cluster(clusterName=CLUSTER)
    queues = testbed.create_queues(local_aws, "events", visibility=1)
    strangers = testbed.launch_instances(local_aws, 3)  # EC2 instances, never registered
    events = [
        testbed.spot_warning(strangers[0]),
        testbed.rebalance_recommendation(strangers[1]),
        testbed.state_change(strangers[2], "terminated"),
        testbed.state_change(strangers[0], "shutting-down"),
        testbed.lifecycle_terminate(strangers[1], "spot-asg"),
        testbed.scheduled_change(strangers[2], start=datetime.now(UTC)),
    ]
    testbed.send_raw(local_aws, queues.url, [json.dumps(e) for e in events])
    settings = settings_for(
        queues.url, task_rebalance=True, scale_in_after=0, consolidate=False, rebalance_interval=0.2
    )
    scaler = scaler_for(local_aws, settings)

    def settled() -> bool:
        return outcomes(scaler.metrics) == {"other_cluster": len(events)}

    assert await run_until(scaler, settled, limit=20)
    assert testbed.queue_depth(local_aws, queues.url) == 0  # acknowledged, not retried
    calls = aws_calls(scaler.metrics)
    assert "ecs:UpdateContainerInstancesState" not in calls
    assert "ecs:DeregisterContainerInstance" not in calls
    assert calls["ecs:ListServices"] >= 1  # the guard rails and the rebalancer ran too
    assert not _messages(caplog, logging.ERROR), _messages(caplog, logging.ERROR)


async def test_live_model_and_plan_of_an_empty_cluster(local_aws: testbed.LocalAws) -> None:
    local_aws.client("ecs").create_cluster(clusterName=CLUSTER)
    _group(local_aws, "spot-asg", "m5.large")
    async with AwsClients(_target(local_aws), Metrics()) as aws:
        live = await live_cluster(aws, CLUSTER)
        report = await plan_now(aws, settings_for("http://q", spot_pools="spot-asg"))
        measured = await plan_now(aws, settings_for("http://q", load_source="measured"))
        mover = RebalanceController(
            aws,
            settings_for("http://q", task_rebalance=True, scale_in_after=0, consolidate=False),
            Metrics(),
        )
        plan = await mover.cycle(time.time())
    assert not live.model.instances and not live.model.services and not live.task_arns
    assert report["drain"] == {
        "draining": [],
        "services_at_risk": [],
        "note": report["drain"]["note"],
    }
    assert report["top_up"]["deficit"] == {"cpu": 0, "memory": 0}
    assert report["top_up"]["pools"] == {"spot-asg": {"size": 0, "target": 0}}
    assert report["rebalance"]["moves"] == [] and report["rebalance"]["hot"] == {}
    assert "measured by CloudWatch for 0 of 0 instances" in " ".join(measured["rebalance"]["notes"])
    assert plan.moves == () and plan.hot == ()


def test_plan_command_on_an_empty_cluster_and_a_lost_task_definition(
    local_aws: testbed.LocalAws,
) -> None:
    ecs = local_aws.client("ecs")
    ecs.create_cluster(clusterName="empty")
    testbed.manual_task_states(local_aws)
    nodes = testbed.create_cluster(local_aws, CLUSTER, size=2)
    _lose_task_definition(local_aws, _service(local_aws, "web", nodes), "deleted")
    empty = _plan_command(local_aws, SCALER_CLUSTER="empty")
    lost = _plan_command(local_aws)
    for proc in (empty, lost):
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
        report = json.loads(out)
        assert report["rebalance"]["moves"] == []
        assert report["top_up"]["off"].startswith("no SCALER_SPOT_POOLS")
    # the lost task definition is explained, not fatal
    assert "service web: task definition unreadable; left out" in report["rebalance"]["notes"]


def test_plan_command_names_a_cluster_that_does_not_exist(local_aws: testbed.LocalAws) -> None:
    proc = _plan_command(local_aws, SCALER_CLUSTER="nope")
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err, err[-300:]
    assert proc.returncode == 2
    assert err.startswith("scaler: SCALER_CLUSTER: ")


# --- a service whose task definition is gone --------------------------------------------------


@pytest.mark.parametrize("how", ["deregistered", "deleted"])
async def test_a_service_whose_task_definition_is_gone(
    local_aws: testbed.LocalAws, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    """Guard rails, live model, rebalancer and plan: the service is judged on what can be read
    (its deployment percentages) and left out of the model, with a note; nothing fails."""
    caplog.set_level(logging.INFO)
    testbed.manual_task_states(local_aws)
    nodes = testbed.create_cluster(local_aws, CLUSTER, size=3)
    _lose_task_definition(local_aws, _service(local_aws, "web", nodes), how)
    _service(local_aws, "strict", nodes[2:], min_healthy=100, max_percent=100, tasks=1)
    metrics = Metrics()
    async with AwsClients(_target(local_aws), metrics) as aws:
        guard = GuardRails(aws.ecs, CLUSTER, metrics.drain_risk_services, SystemClock())
        risks = await guard.check()
        live = await live_cluster(aws, CLUSTER)
        settings = settings_for(
            "http://q", task_rebalance=True, scale_in_after=0, consolidate=False, task_min_age=0.01
        )
        plan = await RebalanceController(aws, settings, metrics).cycle(time.time())
        report = await plan_now(aws, settings_for("http://q"))
    # the guard rails
    assert [(r.service, r.cause) for r in risks] == [("strict", "no_surge_room")]
    assert guard.checked_at is not None
    assert 'scaler_drain_risk_services{cause="no_surge_room"} 1.0' in metrics.render().decode()
    unreadable = [r for r in caplog.records if r.getMessage() == "task definition unreadable"]
    # the live model: ECS's accounting still counts the tasks the model cannot place
    assert live.model.instances[nodes[0].instance_id].free_cpu == 0
    if how == "deleted":
        assert unreadable and GONE_TD in vars(unreadable[0])["error"]
        assert set(live.model.services) == {"strict"}
        note = "service web: task definition unreadable; left out"
        assert note in live.notes and note in report["rebalance"]["notes"]
        assert plan.moves == () and "ecs:StopTask" not in aws_calls(metrics)
    else:  # a deregistered (INACTIVE) revision can still be described: nothing is lost
        assert not unreadable
        assert set(live.model.services) == {"strict", "web"}
        assert len(plan.moves) == 1 and aws_calls(metrics)["ecs:StopTask"] == 1
    assert report["drain"]["services_at_risk"][0]["service"] == "strict"


async def test_capacity_path_with_a_task_definition_gone(local_aws: testbed.LocalAws) -> None:
    testbed.manual_task_states(local_aws)
    nodes = testbed.create_cluster(local_aws, CLUSTER, size=2)
    _group(local_aws, "spot-asg", "m5.large")
    _lose_task_definition(local_aws, _service(local_aws, "web", nodes), "deleted")
    async with AwsClients(_target(local_aws), Metrics()) as aws:
        report = await plan_now(aws, settings_for("http://q", spot_pools="spot-asg"))
    assert "spot-asg" in report["top_up"]["pools"]


# --- instance types the price table or EC2 does not know ----------------------------------------


async def test_instance_types_the_price_table_does_not_list(local_aws: testbed.LocalAws) -> None:
    """Live model and capacity: prices estimated per vCPU, sizes from the instances or EC2."""
    assert UNLISTED not in ON_DEMAND_PRICES and UNKNOWN not in ON_DEMAND_PRICES
    local_aws.client("ecs").create_cluster(clusterName=CLUSTER)
    nodes = [_node(local_aws, UNLISTED), _node(local_aws, UNKNOWN)]
    _service(local_aws, "web", nodes, tasks=2)
    _group(local_aws, "spot-asg", UNLISTED)
    async with AwsClients(_target(local_aws), Metrics()) as aws:
        live = await live_cluster(aws, CLUSTER)
        report = await plan_now(aws, settings_for("http://q", spot_pools="spot-asg"))
    for node, name in zip(nodes, (UNLISTED, UNKNOWN), strict=True):
        itype = live.model.instances[node.instance_id].type
        assert itype.name == name
        assert itype.on_demand_price == round(itype.vcpu * PRICE_PER_VCPU_HOUR, 5) > 0
    first = live.model.instances[nodes[0].instance_id]
    assert first.cpu - first.free_cpu == 2048  # the two web tasks
    assert report["rebalance"]["moves"] == []
    assert report["top_up"]["pools"] == {"spot-asg": {"size": 0, "target": 0}}
    assert report["top_up"]["reasons"] == ["nothing to do"]


async def test_capacity_survives_a_type_ec2_does_not_describe(
    local_aws: testbed.LocalAws,
) -> None:
    testbed.create_cluster(local_aws, CLUSTER, size=1)
    _group(local_aws, "spot-asg", UNKNOWN)
    _group(local_aws, "od-asg", "m5.large")
    settings = settings_for("http://q", spot_pools="spot-asg", on_demand_pools="od-asg")
    async with AwsClients(_target(local_aws), Metrics()) as aws:
        report = await plan_now(aws, settings)
    assert set(report["top_up"]["pools"]) == {"spot-asg", "od-asg"}


# --- a service deleted in the middle of a task move --------------------------------------------


async def test_service_deleted_after_a_stop_move(
    local_aws: testbed.LocalAws, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    _hot_cluster(local_aws, min_healthy=50, max_percent=100)
    settings = settings_for(
        "http://q", task_rebalance=True, scale_in_after=0, consolidate=False, task_min_age=0.01
    )
    metrics = Metrics()
    now = time.time()
    async with AwsClients(_target(local_aws), metrics) as aws:
        mover = RebalanceController(aws, settings, metrics)
        (move,) = (await mover.cycle(now)).moves
        assert not move.surge and len(mover.pending) == 1
        _delete(local_aws)
        assert (await mover.cycle(now + 1)).moves == ()  # waiting for a replacement
        assert len(mover.pending) == 1
        assert (await mover.cycle(now + 700)).moves == ()
    assert mover.pending == []
    assert _moves(metrics) == {"stopped": 1, "not_replaced": 1}
    assert aws_calls(metrics)["ecs:StopTask"] == 1
    assert "rebalancing cycle failed" not in _messages(caplog)


async def test_service_deleted_during_a_surge_move(
    local_aws: testbed.LocalAws, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    _hot_cluster(local_aws, min_healthy=100, max_percent=200)
    settings = settings_for(
        "http://q", task_rebalance=True, scale_in_after=0, consolidate=False, task_min_age=0.01
    )
    metrics = Metrics()
    now = time.time()
    async with AwsClients(_target(local_aws), metrics) as aws:
        mover = RebalanceController(aws, settings, metrics)
        (move,) = (await mover.cycle(now)).moves
        assert move.surge and set(mover.surges) == {"web"}
        _delete(local_aws)
        await mover.cycle(now + 1)
        await mover.finish_surges(now + 2)
    assert mover.surges == {}
    assert _moves(metrics) == {"surged": 1, "not_replaced": 1}
    calls = aws_calls(metrics)
    assert calls["ecs:UpdateService"] == 1  # the surge; nothing to set back on a gone service
    assert "ecs:StopTask" not in calls
    assert "surge move given up" in _messages(caplog)


async def test_service_deleted_between_planning_and_the_move(
    local_aws: testbed.LocalAws, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    _hot_cluster(local_aws, min_healthy=100, max_percent=200)
    gone = DeletedMeanwhile("ecs", "UpdateService", times=1, aws=local_aws)
    settings = settings_for(
        "http://q", task_rebalance=True, scale_in_after=0, consolidate=False, task_min_age=0.01
    )
    metrics = Metrics()
    now = time.time()
    async with AwsClients(_target(local_aws), metrics, gone) as aws:
        mover = RebalanceController(aws, settings, metrics)
        plan = await mover.cycle(now)
        assert len(plan.moves) == 1 and gone.failed == 1
        assert (await mover.cycle(now + 1)).moves == ()
    assert mover.surges == {} and mover.pending == []
    assert _moves(metrics) == {"failed": 1}
    failed = [r for r in caplog.records if r.getMessage() == "task move failed"]
    assert len(failed) == 1 and "ServiceNotActiveException" in vars(failed[0])["error"]


async def test_service_deleted_while_a_surge_is_set_back(
    local_aws: testbed.LocalAws, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    _hot_cluster(local_aws, min_healthy=100, max_percent=200)
    gone = DeletedMeanwhile("ecs", "UpdateService", times=0, aws=local_aws)
    settings = settings_for(
        "http://q", task_rebalance=True, scale_in_after=0, consolidate=False, task_min_age=0.01
    )
    metrics = Metrics()
    now = time.time()
    async with AwsClients(_target(local_aws), metrics, gone) as aws:
        mover = RebalanceController(aws, settings, metrics)
        (move,) = (await mover.cycle(now)).moves
        assert move.surge
        gone.times = 1  # the next UpdateService (setting the count back) meets a gone service
        try:
            await mover.cycle(now + 700)  # the extra task never came: the surge is given up
            await mover.cycle(now + 701)
        finally:
            assert gone.failed == 1
    assert mover.surges == {}
    assert _moves(metrics) == {"surged": 1, "not_replaced": 1}


async def test_the_rebalance_loop_outlives_a_service_deleted_mid_surge(
    local_aws: testbed.LocalAws,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whatever one cycle does with a vanished service, the loop keeps cycling: no crash loop."""
    caplog.set_level(logging.INFO)
    monkeypatch.setattr("scaler.aws.rebalancer.GIVE_UP_AFTER", 0.0)  # give surges up at once
    _hot_cluster(local_aws, min_healthy=100, max_percent=200)
    gone = DeletedMeanwhile("ecs", "UpdateService", times=0, aws=local_aws)
    settings = settings_for(
        "http://q",
        task_rebalance=True,
        scale_in_after=0,
        consolidate=False,
        task_min_age=0.01,
        rebalance_interval=0.1,
    )
    metrics = Metrics()
    stop = asyncio.Event()
    async with AwsClients(_target(local_aws), metrics, gone) as aws:
        mover = RebalanceController(aws, settings, metrics)
        loop = asyncio.create_task(mover.run_forever(stop))
        await wait_for(lambda: bool(mover.surges), limit=10)
        gone.times = 1
        cycles = aws_calls(metrics)["ecs:ListContainerInstances"]
        await wait_for(lambda: aws_calls(metrics)["ecs:ListContainerInstances"] >= cycles + 4)
        stop.set()
        await loop
    assert gone.failed == 1
    assert mover.surges == {}
    assert _messages(caplog).count("rebalancing cycle failed") <= 1
