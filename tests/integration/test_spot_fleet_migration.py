"""Moving a cluster off a Spot Fleet onto the scaler's group, against moto over HTTP.

A Spot Fleet of three instances (target capacity 3) runs the cluster, one ``web`` task on each;
the scaler's spot group is empty. With ``SCALER_MIGRATE_SPOT_FLEETS`` naming the fleet, the
scaler raises its group first, drains a fleet instance once the replacement has registered,
lowers the fleet's target and terminates the instance once it is empty, one at a time, until
the fleet holds nothing. The test plays ECS and its agent (:mod:`tests.integration.ecs_harness`).
"""

from __future__ import annotations

from typing import Any

import pytest

from scaler import testbed
from scaler.demo import aws_calls, run_until
from scaler.settings import ConfigError
from tests.integration.ecs_harness import Ecs
from tests.integration.helpers import scaler_for, settings_for

AZ = "us-east-1a"
GROUPS = ("spot-asg",)


def _setup(aws: testbed.LocalAws, fleet_size: int = 3) -> str:
    """The fleet (its instances registered, one web task each) and an empty group; the fleet id."""
    testbed.manual_task_states(aws)
    ec2, ecs = aws.client("ec2"), aws.client("ecs")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    ec2.create_launch_template(
        LaunchTemplateName="spot-lt",
        LaunchTemplateData={"ImageId": image, "InstanceType": "m5.large"},
    )
    aws.client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName="spot-asg",
        LaunchTemplate={"LaunchTemplateName": "spot-lt", "Version": "$Default"},
        MinSize=0,
        MaxSize=10,
        DesiredCapacity=0,
        AvailabilityZones=[AZ],
    )
    fleet = ec2.request_spot_fleet(
        SpotFleetRequestConfig={
            "TargetCapacity": fleet_size,
            "IamFleetRole": "arn:aws:iam::123456789012:role/fleet",
            "AllocationStrategy": "lowestPrice",
            "LaunchSpecifications": [{"ImageId": image, "InstanceType": "m5.large"}],
        }
    )["SpotFleetRequestId"]
    members = _fleet_members(aws, fleet)
    ecs.create_cluster(clusterName="prod")
    nodes = testbed.register_instances(aws, "prod", members, AZ)
    ecs.register_task_definition(
        family="web",
        containerDefinitions=[{"name": "app", "image": "x", "cpu": 1024, "memory": 512}],
    )
    ecs.create_service(
        cluster="prod", serviceName="web", taskDefinition="web", desiredCount=fleet_size
    )
    ecs.update_service(
        cluster="prod",
        service="web",
        deploymentConfiguration={"minimumHealthyPercent": 100, "maximumPercent": 200},
    )
    for node in nodes:
        ecs.start_task(
            cluster="prod",
            taskDefinition="web",
            group="service:web",
            containerInstances=[str(node.container_instance_arn)],
        )
    return str(fleet)


def _fleet_members(aws: testbed.LocalAws, fleet: str) -> list[str]:
    """The fleet's instances that are still running."""
    ec2 = aws.client("ec2")
    listed = ec2.describe_spot_fleet_instances(SpotFleetRequestId=fleet)["ActiveInstances"]
    ids = [i["InstanceId"] for i in listed]
    if not ids:
        return []
    reply = ec2.describe_instances(InstanceIds=ids)
    return [
        i["InstanceId"]
        for r in reply["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] == "running"
    ]


def _group_size(aws: testbed.LocalAws) -> int:
    reply = aws.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=["spot-asg"]
    )
    return len(reply["AutoScalingGroups"][0]["Instances"])


def _target(aws: testbed.LocalAws, fleet: str) -> int:
    reply = aws.client("ec2").describe_spot_fleet_requests(SpotFleetRequestIds=[fleet])
    return int(reply["SpotFleetRequestConfigs"][0]["SpotFleetRequestConfig"]["TargetCapacity"])


def _settings(queue_url: str, fleet: str, **extra: Any) -> Any:
    return settings_for(
        queue_url,
        spot_pools="spot-asg",
        migrate_spot_fleets=fleet,
        capacity_interval=0.3,
        headroom=0.0,
        disruption_budget=0.34,  # one instance at a time
        **extra,
    )


async def test_a_fleet_is_replaced_by_the_group_one_instance_at_a_time(
    local_aws: testbed.LocalAws,
) -> None:
    fleet = _setup(local_aws)
    queues = testbed.create_queues(local_aws, "events")
    scaler = scaler_for(local_aws, _settings(queues.url, fleet))
    ecs = Ecs(local_aws, deregistration_delay=1.0)  # moved tasks drain connections a while
    most = 0
    tasks_low = 3

    def migrated() -> bool:
        nonlocal most, tasks_low
        ecs.tick(GROUPS)
        fleet_left = len(_fleet_members(local_aws, fleet))
        most = max(most, fleet_left + _group_size(local_aws))
        running = local_aws.client("ecs").list_tasks(cluster="prod", desiredStatus="RUNNING")
        tasks_low = min(tasks_low, len(running["taskArns"]))
        return fleet_left == 0 and _group_size(local_aws) == 3

    assert await run_until(scaler, migrated, limit=60)
    assert most == 4, "one replacement at a time, launched before a fleet instance goes"
    assert tasks_low == 3, "the service never ran short"
    assert ecs.cut_short == [], "terminated only once no task, stopping or not, was left"
    assert _target(local_aws, fleet) == 0, "the fleet's target followed its instances down"
    calls = aws_calls(scaler.metrics)
    assert calls["ec2:ModifySpotFleetRequest"] == 3
    assert calls["ec2:TerminateInstances"] == 3
    assert calls["ec2:CreateTags"] == 3
    text = scaler.metrics.render().decode()
    assert 'scaler_capacity_changes_total{change="add",reason="migration"} 3.0' in text
    assert 'scaler_capacity_changes_total{change="remove",reason="migration"} 3.0' in text
    assert 'scaler_drained_instances_total{reason="migration"} 3.0' in text


async def test_in_dry_run_the_fleet_is_left_alone(local_aws: testbed.LocalAws) -> None:
    fleet = _setup(local_aws, fleet_size=2)
    queues = testbed.create_queues(local_aws, "events")
    scaler = scaler_for(local_aws, _settings(queues.url, fleet, dry_run=True))
    ecs = Ecs(local_aws)

    def changed() -> bool:
        ecs.tick(GROUPS)
        return _group_size(local_aws) > 0 or len(_fleet_members(local_aws, fleet)) < 2

    assert not await run_until(scaler, changed, limit=3)
    calls = aws_calls(scaler.metrics)
    assert calls["ec2:DescribeSpotFleetInstances"], "the fleet is read and planned on"
    for write in ("autoscaling:SetDesiredCapacity", "ec2:CreateTags", "ec2:TerminateInstances"):
        assert write not in calls
    assert _target(local_aws, fleet) == 2


async def test_an_unknown_fleet_is_refused_at_start(local_aws: testbed.LocalAws) -> None:
    _setup(local_aws, fleet_size=1)
    queues = testbed.create_queues(local_aws, "events")
    scaler = scaler_for(
        local_aws, _settings(queues.url, "sfr-00000000-0000-0000-0000-000000000000")
    )
    with pytest.raises(ConfigError) as raised:
        await run_until(scaler, lambda: False, limit=3)
    assert raised.value.problems == [
        "SCALER_MIGRATE_SPOT_FLEETS: Spot Fleet request "
        "'sfr-00000000-0000-0000-0000-000000000000' not found"
    ]
