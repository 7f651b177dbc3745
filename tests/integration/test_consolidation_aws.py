"""Scale-in by consolidation in `scaler run`, against moto over HTTP.

Four instances of a spot group each run one task of a service that ECS drains replacement first
(minimumHealthyPercent 100, maximumPercent 200). Two instances can carry all four tasks with the
free room consolidation keeps, so with ``SCALER_CONSOLIDATE=true`` the scaler gives two back:
one at a time (the disruption budget), each tagged, drained, and terminated once empty with the
group's desired capacity decremented, never while a moved task still drains its connections.
moto has no ECS scheduler: the test plays ECS (:mod:`tests.integration.ecs_harness`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from scaler import testbed
from scaler.demo import aws_calls, run_until
from tests.integration.ecs_harness import Ecs
from tests.integration.helpers import scaler_for, settings_for

AZ = "us-east-1a"


def _members(aws: testbed.LocalAws) -> list[str]:
    group = aws.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=["spot-asg"]
    )["AutoScalingGroups"][0]
    return [i["InstanceId"] for i in group["Instances"]]


def _cluster(aws: testbed.LocalAws, size: int = 4, min_size: int = 0) -> list[testbed.Node]:
    """A spot group of ``size`` instances in cluster ``prod``, one ``web`` task on each."""
    testbed.manual_task_states(aws)
    ec2, asg, ecs = aws.client("ec2"), aws.client("autoscaling"), aws.client("ecs")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    ec2.create_launch_template(
        LaunchTemplateName="spot-lt",
        LaunchTemplateData={"ImageId": image, "InstanceType": "m5.large"},
    )
    asg.create_auto_scaling_group(
        AutoScalingGroupName="spot-asg",
        LaunchTemplate={"LaunchTemplateName": "spot-lt", "Version": "$Default"},
        MinSize=min_size,
        MaxSize=10,
        DesiredCapacity=size,
        AvailabilityZones=[AZ],
    )
    ecs.create_cluster(clusterName="prod")
    nodes = testbed.register_instances(aws, "prod", _members(aws), AZ)
    ecs.register_task_definition(
        family="web",
        containerDefinitions=[{"name": "app", "image": "x", "cpu": 1024, "memory": 512}],
    )
    ecs.create_service(cluster="prod", serviceName="web", taskDefinition="web", desiredCount=size)
    ecs.update_service(
        cluster="prod",
        service="web",
        deploymentConfiguration={"minimumHealthyPercent": 100, "maximumPercent": 200},
        placementStrategy=[{"type": "spread", "field": "instanceId"}],
    )
    for node in nodes:
        _start(aws, "service:web", str(node.container_instance_arn))
    return nodes


def _start(aws: testbed.LocalAws, group: str, arn: str) -> None:
    aws.client("ecs").start_task(
        cluster="prod", taskDefinition="web", group=group, containerInstances=[arn]
    )


def _fewer_than(aws: testbed.LocalAws, ecs: Ecs, n: int) -> Callable[[], bool]:
    """Whether the group holds fewer than ``n`` instances, ECS played first."""

    def fewer() -> bool:
        ecs.tick()
        return len(_members(aws)) < n

    return fewer


def _settings(queue_url: str, **extra: Any) -> Any:
    values: dict[str, Any] = dict(
        spot_pools="spot-asg",
        capacity_interval=0.3,
        consolidate=True,
        consolidate_interval=0.3,
        consolidate_min_age=0.01,
        consolidate_after_start=0.5,  # the quiet period after the start
        disruption_budget=0.1,  # one instance at a time
    )
    return settings_for(queue_url, **{**values, **extra})


async def test_half_the_cluster_is_given_back_one_instance_at_a_time(
    local_aws: testbed.LocalAws,
) -> None:
    _cluster(local_aws)
    queues = testbed.create_queues(local_aws, "events")
    scaler = scaler_for(local_aws, _settings(queues.url))
    ecs = Ecs(local_aws, deregistration_delay=1.0)  # moved tasks drain connections a while
    draining_at_once = 0

    def two_left() -> bool:
        nonlocal draining_at_once
        ecs.tick()
        states = testbed.container_instance_states(local_aws, "prod")
        draining_at_once = max(draining_at_once, list(states.values()).count("DRAINING"))
        return len(_members(local_aws)) == 2

    assert await run_until(scaler, two_left, limit=60)
    assert not await run_until(scaler, lambda: len(_members(local_aws)) < 2, limit=3), (
        "the last two keep the free room consolidation leaves"
    )
    assert draining_at_once == 1
    assert ecs.cut_short == [], "terminated only once no task, stopping or not, was left"
    group = local_aws.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=["spot-asg"]
    )["AutoScalingGroups"][0]
    assert group["DesiredCapacity"] == 2, "terminated with the desired capacity decremented"
    calls = aws_calls(scaler.metrics)
    assert calls["ec2:CreateTags"] == 2
    assert calls["autoscaling:TerminateInstanceInAutoScalingGroup"] == 2
    assert "autoscaling:SetDesiredCapacity" not in calls, "nothing launched back"
    text = scaler.metrics.render().decode()
    assert 'scaler_capacity_changes_total{change="remove",reason="consolidation"} 2.0' in text
    assert 'scaler_drained_instances_total{reason="consolidation"} 2.0' in text


async def test_nothing_is_given_back_within_the_quiet_period_after_the_start(
    local_aws: testbed.LocalAws,
) -> None:
    _cluster(local_aws)
    queues = testbed.create_queues(local_aws, "events")
    scaler = scaler_for(local_aws, _settings(queues.url, consolidate_after_start=3600.0))
    fewer = _fewer_than(local_aws, Ecs(local_aws), 4)
    assert not await run_until(scaler, fewer, limit=3)
    calls = aws_calls(scaler.metrics)
    assert "ec2:CreateTags" not in calls
    assert "ecs:UpdateContainerInstancesState" not in calls


async def test_standalone_tasks_and_dry_run_keep_every_instance(
    local_aws: testbed.LocalAws,
) -> None:
    nodes = _cluster(local_aws, size=2)
    queues = testbed.create_queues(local_aws, "events")
    for extra in ({"dry_run": True}, {}):
        if not extra:  # a standalone task on each: nothing may be removed
            for node in nodes:
                _start(local_aws, "family:batch", str(node.container_instance_arn))
        scaler = scaler_for(local_aws, _settings(queues.url, **extra))
        assert not await run_until(scaler, lambda: len(_members(local_aws)) < 2, limit=3)
        calls = aws_calls(scaler.metrics)
        assert "ec2:CreateTags" not in calls
        assert "ecs:UpdateContainerInstancesState" not in calls
        assert calls["ecs:ListTasks"], "the live cluster was read and planned on"


async def test_the_headroom_keeps_what_the_capacity_planner_would_launch_back(
    local_aws: testbed.LocalAws,
) -> None:
    _cluster(local_aws, size=2)  # one of the two could carry both tasks
    queues = testbed.create_queues(local_aws, "events")
    scaler = scaler_for(local_aws, _settings(queues.url, headroom=0.6))
    assert not await run_until(scaler, lambda: len(_members(local_aws)) < 2, limit=3)
    calls = aws_calls(scaler.metrics)
    assert "ec2:CreateTags" not in calls
    assert "autoscaling:SetDesiredCapacity" not in calls


async def test_consolidation_never_asks_a_group_below_its_min_size(
    local_aws: testbed.LocalAws,
) -> None:
    """Two of the four could go, but MinSize is 3: one is given back, and no terminate is
    refused (AWS refuses to decrement the desired capacity below MinSize)."""
    _cluster(local_aws, min_size=3)
    queues = testbed.create_queues(local_aws, "events")
    scaler = scaler_for(local_aws, _settings(queues.url))
    fewer = _fewer_than(local_aws, Ecs(local_aws), 3)
    assert not await run_until(scaler, fewer, limit=8)
    assert len(_members(local_aws)) == 3
    calls = aws_calls(scaler.metrics)
    assert calls["autoscaling:TerminateInstanceInAutoScalingGroup"] == 1, "none refused"
    assert calls["ec2:CreateTags"] == 1, "only what the group can spare is drained"


def _reads(scaler: Any) -> int:
    """How many consolidation plans read the live cluster."""
    assert scaler.capacity is not None and scaler.capacity.consolidator is not None
    return int(scaler.capacity.consolidator.reads)


async def test_a_plan_that_chose_nothing_stands_until_a_task_moves(
    local_aws: testbed.LocalAws,
) -> None:
    """Planned every 0.3 s, but the cluster is read again only once a task started."""
    nodes = _cluster(local_aws, size=2)
    queues = testbed.create_queues(local_aws, "events")
    scaler = scaler_for(local_aws, _settings(queues.url, headroom=0.6))
    first_read: list[float] = []
    standing = 0

    def read_again_after_a_task_started() -> bool:
        nonlocal standing
        reads = _reads(scaler) if scaler.capacity is not None else 0
        if reads and not first_read:
            first_read.append(time.monotonic())
        if first_read and standing == 0 and time.monotonic() - first_read[0] > 2.0:
            standing = reads  # what 2 s of plans every 0.3 s read: the first only
            _start(local_aws, "family:batch", str(nodes[0].container_instance_arn))
            # what ECS sends then (moto sends nothing): the quiet capacity cycles end on it
            arn = str(nodes[0].container_instance_arn)
            event = testbed.container_instance_change("prod", arn, nodes[0].instance_id)
            testbed.send_raw(local_aws, queues.url, [json.dumps(event)])
        return standing > 0 and reads > standing

    assert await run_until(scaler, read_again_after_a_task_started, limit=10)
    assert standing == 1, "nothing changed: the plan that chose nothing stood"
    assert len(_members(local_aws)) == 2


async def test_an_instance_growing_old_enough_is_planned_on_at_once(
    local_aws: testbed.LocalAws,
) -> None:
    """Too young at the first plans, which stand only until the instances are old enough."""
    _cluster(local_aws)
    queues = testbed.create_queues(local_aws, "events")
    scaler = scaler_for(local_aws, _settings(queues.url, consolidate_min_age=4.0))
    fewer = _fewer_than(local_aws, Ecs(local_aws), 4)
    assert await run_until(scaler, fewer, limit=20)
    assert _reads(scaler) >= 2
