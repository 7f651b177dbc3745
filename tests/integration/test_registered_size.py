"""A pool is sized by what its instances register in ECS, not by the instance type's memory: the
ECS agent and the OS keep part of it, so a task that needs nearly all of the type's memory fits
no instance of it, and none is launched for it (against moto over HTTP, which registers 7482 MiB
for every instance; an m5.large has 8192)."""

from __future__ import annotations

import json

from scaler import testbed
from scaler.demo import run_until
from tests.integration.helpers import outcomes, scaler_for, settings_for

AZ = "us-east-1a"


def _group_with_one_instance(aws: testbed.LocalAws) -> str:
    ec2, asg = aws.client("ec2"), aws.client("autoscaling")
    ec2.create_launch_template(
        LaunchTemplateName="spot-lt",
        LaunchTemplateData={"ImageId": testbed._ecs_ami(ec2), "InstanceType": "m5.large"},
    )
    asg.create_auto_scaling_group(
        AutoScalingGroupName="spot-asg",
        LaunchTemplate={"LaunchTemplateName": "spot-lt"},
        MinSize=0,
        MaxSize=10,
        DesiredCapacity=1,
        AvailabilityZones=[AZ],
    )
    group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["spot-asg"])
    return str(group["AutoScalingGroups"][0]["Instances"][0]["InstanceId"])


async def test_a_task_larger_than_the_registered_memory_launches_nothing(
    local_aws: testbed.LocalAws,
) -> None:
    local_aws.client("ecs").create_cluster(clusterName="prod")
    member = _group_with_one_instance(local_aws)
    testbed.register_instances(local_aws, "prod", [member], AZ)
    doomed = testbed.register_instances(
        local_aws, "prod", testbed.launch_instances(local_aws, 1), AZ
    )[0]
    testbed.manual_task_states(local_aws)
    ecs = local_aws.client("ecs")
    ecs.register_task_definition(
        family="big",
        containerDefinitions=[{"name": "app", "image": "x", "cpu": 512, "memory": 7800}],
    )
    ecs.create_service(cluster="prod", serviceName="big", taskDefinition="big", desiredCount=1)
    ecs.start_task(
        cluster="prod",
        taskDefinition="big",
        group="service:big",
        containerInstances=[str(doomed.container_instance_arn)],
    )
    queues = testbed.create_queues(local_aws, "events")
    testbed.send_raw(local_aws, queues.url, [json.dumps(testbed.spot_warning(doomed.instance_id))])
    settings = settings_for(queues.url, spot_pools="spot-asg", capacity_interval=0.3, headroom=0.0)
    scaler = scaler_for(local_aws, settings)

    def planned() -> bool:
        plan = scaler.capacity.last_plan if scaler.capacity else None
        return (
            outcomes(scaler.metrics).get("handled") == 1
            and plan is not None
            and any("fit no instance type" in r for r in plan.reasons)
        )

    ok = await run_until(scaler, planned, limit=20)
    plan = scaler.capacity.last_plan if scaler.capacity else None
    assert ok, plan
    group = local_aws.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=["spot-asg"]
    )
    assert group["AutoScalingGroups"][0]["DesiredCapacity"] == 1
