"""Rolling a new image through the scaler's groups, against moto over HTTP.

A spot group of three instances runs an image; its launch template gets a new default version
with another image. With ``SCALER_ROLL=true`` the scaler raises the group first, drains an old
instance once the new one has registered, and terminates it (desired capacity decremented),
until every instance runs the new image. The test plays the ECS agent: instances the group
launches are registered in the cluster as they appear.
"""

from __future__ import annotations

from typing import Any

from scaler import testbed
from scaler.aws.clients import AwsClients, AwsTarget
from scaler.demo import aws_calls, run_until
from scaler.metrics import Metrics
from scaler.planview import plan_now, render
from tests.integration.helpers import scaler_for, settings_for

AZ = "us-east-1a"


def _images(ec2: Any) -> tuple[str, str]:
    found = [i["ImageId"] for i in ec2.describe_images(Owners=["amazon"])["Images"]]
    return found[0], next(i for i in found if i != found[0])


def _spot_group(aws: testbed.LocalAws, size: int) -> tuple[str, str]:
    """A spot group whose launch template launches the old image; (old image, new image)."""
    ec2, asg = aws.client("ec2"), aws.client("autoscaling")
    old, new = _images(ec2)
    ec2.create_launch_template(
        LaunchTemplateName="spot-lt",
        LaunchTemplateData={"ImageId": old, "InstanceType": "m5.large"},
    )
    asg.create_auto_scaling_group(
        AutoScalingGroupName="spot-asg",
        LaunchTemplate={"LaunchTemplateName": "spot-lt", "Version": "$Default"},
        MinSize=0,
        MaxSize=10,
        DesiredCapacity=size,
        AvailabilityZones=[AZ],
    )
    return old, new


def _release_image(aws: testbed.LocalAws, image: str) -> None:
    """A new default version of the group's launch template, launching ``image``."""
    ec2 = aws.client("ec2")
    ec2.create_launch_template_version(
        LaunchTemplateName="spot-lt",
        LaunchTemplateData={"ImageId": image, "InstanceType": "m5.large"},
    )
    ec2.modify_launch_template(LaunchTemplateName="spot-lt", DefaultVersion="2")


def _members(aws: testbed.LocalAws) -> list[str]:
    group = aws.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=["spot-asg"]
    )["AutoScalingGroups"][0]
    return [i["InstanceId"] for i in group["Instances"]]


def _image_of(aws: testbed.LocalAws, ids: list[str]) -> dict[str, str]:
    reply = aws.client("ec2").describe_instances(InstanceIds=ids)
    return {i["InstanceId"]: i["ImageId"] for r in reply["Reservations"] for i in r["Instances"]}


class Agent:
    """Registers the group's new instances in the cluster, as the ECS agent would."""

    def __init__(self, aws: testbed.LocalAws) -> None:
        self.aws = aws
        self.registered: set[str] = set()

    def tick(self) -> None:
        fresh = [i for i in _members(self.aws) if i not in self.registered]
        testbed.register_instances(self.aws, "prod", fresh, AZ)
        self.registered |= set(fresh)


async def test_a_new_image_is_rolled_replacement_first(local_aws: testbed.LocalAws) -> None:
    local_aws.client("ecs").create_cluster(clusterName="prod")
    queues = testbed.create_queues(local_aws, "events")
    old, new = _spot_group(local_aws, 3)
    agent = Agent(local_aws)
    agent.tick()
    first = set(_members(local_aws))
    assert set(_image_of(local_aws, sorted(first)).values()) == {old}
    _release_image(local_aws, new)
    settings = settings_for(
        queues.url,
        spot_pools="spot-asg",
        capacity_interval=0.3,
        headroom=0.0,
        roll=True,
        disruption_budget=0.34,  # one instance of three at a time
    )
    scaler = scaler_for(local_aws, settings)
    most = 0

    def rolled() -> bool:
        nonlocal most
        agent.tick()
        members = _members(local_aws)
        most = max(most, len(members))
        return not first & set(members) and len(members) == 3

    assert await run_until(scaler, rolled, limit=60)
    assert set(_image_of(local_aws, _members(local_aws)).values()) == {new}
    assert most == 4, "one replacement at a time, launched before an old instance goes"
    calls = aws_calls(scaler.metrics)
    assert calls["autoscaling:TerminateInstanceInAutoScalingGroup"] == 3
    assert calls["ec2:CreateTags"] == 3, "each retired instance tagged before its drain"
    text = scaler.metrics.render().decode()
    assert 'scaler_capacity_changes_total{change="remove",reason="drift"} 3.0' in text
    assert 'scaler_capacity_changes_total{change="add",reason="drift"} 3.0' in text
    assert 'scaler_drained_instances_total{reason="drift"} 3.0' in text


async def test_without_roll_or_in_dry_run_nothing_is_replaced(local_aws: testbed.LocalAws) -> None:
    local_aws.client("ecs").create_cluster(clusterName="prod")
    queues = testbed.create_queues(local_aws, "events")
    _, new = _spot_group(local_aws, 2)
    Agent(local_aws).tick()
    _release_image(local_aws, new)
    first = set(_members(local_aws))
    runs: list[dict[str, Any]] = [{}, {"roll": True, "dry_run": True}]
    for extra in runs:
        settings = settings_for(
            queues.url, spot_pools="spot-asg", capacity_interval=0.3, headroom=0.0, **extra
        )
        scaler = scaler_for(local_aws, settings)
        assert not await run_until(scaler, lambda: set(_members(local_aws)) != first, limit=3)
        calls = aws_calls(scaler.metrics)
        assert "autoscaling:SetDesiredCapacity" not in calls
        assert "autoscaling:TerminateInstanceInAutoScalingGroup" not in calls
    assert "ec2:DescribeInstances" in calls, "dry-run still reads which instances are stale"


async def test_an_instance_drained_by_hand_is_never_retired(local_aws: testbed.LocalAws) -> None:
    local_aws.client("ecs").create_cluster(clusterName="prod")
    queues = testbed.create_queues(local_aws, "events")
    _, new = _spot_group(local_aws, 2)
    agent = Agent(local_aws)
    agent.tick()
    ecs = local_aws.client("ecs")
    _release_image(local_aws, new)
    arns = ecs.list_container_instances(cluster="prod")["containerInstanceArns"]
    ecs.update_container_instances_state(
        cluster="prod", containerInstances=arns[:1], status="DRAINING"
    )
    by_hand = ecs.describe_container_instances(cluster="prod", containerInstances=arns[:1])[
        "containerInstances"
    ][0]["ec2InstanceId"]
    settings = settings_for(
        queues.url, spot_pools="spot-asg", capacity_interval=0.3, headroom=0.0, roll=True
    )
    scaler = scaler_for(local_aws, settings)

    def changed() -> bool:
        agent.tick()
        return by_hand not in _members(local_aws)

    assert not await run_until(scaler, changed, limit=4), "an operator's drain is left alone"
    calls = aws_calls(scaler.metrics)
    assert "autoscaling:TerminateInstanceInAutoScalingGroup" not in calls
    assert "ec2:CreateTags" not in calls, "the roll pauses while another drain is under way"


async def test_scaler_plan_shows_what_the_roll_would_do(local_aws: testbed.LocalAws) -> None:
    """`scaler plan` runs the roll's planner on the live cluster: the out-of-date instances
    and what a first cycle would launch; with the roll off, which setting turns it on."""
    local_aws.client("ecs").create_cluster(clusterName="prod")
    _, new = _spot_group(local_aws, 3)
    Agent(local_aws).tick()
    _release_image(local_aws, new)
    target = AwsTarget(testbed.REGION, local_aws.endpoint, max_attempts=2)
    async with AwsClients(target, Metrics()) as aws:
        on = await plan_now(aws, settings_for("http://q", spot_pools="spot-asg", roll=True))
        off = await plan_now(
            aws, settings_for("http://q", spot_pools="spot-asg", consolidate=False)
        )
    assert sorted(on["roll"]["out_of_date"]) == sorted(_members(local_aws))
    assert sum(on["roll"]["launch"].values()) >= 1, on["roll"]
    assert off["roll"] == {"off": "SCALER_ROLL is off"}
    assert off["consolidation"] == {"off": "SCALER_CONSOLIDATE is off"}
    assert off["migration"] == {"off": "SCALER_MIGRATE_SPOT_FLEETS is empty"}
    text = render(on)
    assert "roll\n  to replace: 3 instance(s)" in text
