"""Template pools (EC2 Fleet instant launches, no Auto Scaling group), against moto over HTTP.

Top-up launches through ``CreateFleet`` with the instances tagged with the cluster, the pool and
the template version; consolidation and the roll terminate template instances with
``TerminateInstances``; a template that does not exist is refused at start. The test plays ECS
and its agent (:mod:`tests.integration.ecs_harness`).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from scaler import testbed
from scaler.aws.retiring import RETIRING
from scaler.aws.templates import CLUSTER, POOL, TEMPLATE_ID, TEMPLATE_VERSION
from scaler.demo import aws_calls, run_until
from scaler.settings import ConfigError
from tests.integration.ecs_harness import Ecs
from tests.integration.faults import FailFirst, LaggingDescribe
from tests.integration.helpers import outcomes, scaler_for, settings_for

AZ = "us-east-1a"


def _template(aws: testbed.LocalAws) -> str:
    ec2 = aws.client("ec2")
    reply = ec2.create_launch_template(
        LaunchTemplateName="node-lt",
        LaunchTemplateData={"ImageId": testbed._ecs_ami(ec2), "InstanceType": "m5.large"},
    )
    return str(reply["LaunchTemplate"]["LaunchTemplateId"])


def _pool_instances(aws: testbed.LocalAws, template: str, count: int) -> list[testbed.Node]:
    """``count`` instances of pool ``spot-fleet`` as the scaler launches them, registered."""
    tags = {CLUSTER: "prod", POOL: "spot-fleet", TEMPLATE_ID: template, TEMPLATE_VERSION: "1"}
    reply = aws.client("ec2").run_instances(
        LaunchTemplate={"LaunchTemplateId": template, "Version": "1"},
        MinCount=count,
        MaxCount=count,
        Placement={"AvailabilityZone": AZ},
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ],
    )
    ids = [i["InstanceId"] for i in reply["Instances"]]
    return testbed.register_instances(aws, "prod", ids, AZ)


def _members(aws: testbed.LocalAws) -> dict[str, dict[str, str]]:
    """The pool's running instances and their tags."""
    reply = aws.client("ec2").describe_instances(
        Filters=[
            {"Name": f"tag:{POOL}", "Values": ["spot-fleet"]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
    )
    return {
        i["InstanceId"]: {t["Key"]: t["Value"] for t in i.get("Tags", [])}
        for r in reply["Reservations"]
        for i in r["Instances"]
    }


def _web(aws: testbed.LocalAws, nodes: list[testbed.Node], min_healthy: int = 100) -> None:
    testbed.manual_task_states(aws)
    ecs = aws.client("ecs")
    ecs.register_task_definition(
        family="web",
        containerDefinitions=[{"name": "app", "image": "x", "cpu": 1024, "memory": 512}],
    )
    ecs.create_service(cluster="prod", serviceName="web", taskDefinition="web", desiredCount=2)
    ecs.update_service(
        cluster="prod",
        service="web",
        deploymentConfiguration={"minimumHealthyPercent": min_healthy, "maximumPercent": 200},
    )
    for node in nodes:
        ecs.start_task(
            cluster="prod",
            taskDefinition="web",
            group="service:web",
            containerInstances=[str(node.container_instance_arn)],
        )


def _settings(queue_url: str, **extra: Any) -> Any:
    values: dict[str, Any] = {
        "spot_templates": "spot-fleet=node-lt",
        "fleet_instance_types": "m5.large,m6i.large",
        "capacity_interval": 0.3,
        "headroom": 0.0,
    }
    return settings_for(queue_url, **{**values, **extra})


async def test_top_up_launches_tagged_instances_with_ec2_fleet(local_aws: testbed.LocalAws) -> None:
    local_aws.client("ecs").create_cluster(clusterName="prod")
    template = _template(local_aws)
    # an instance of another pool is interrupted (the template pool itself is not cooling)
    other = testbed.register_instances(
        local_aws, "prod", testbed.launch_instances(local_aws, 1), AZ
    )
    nodes = [*other, *_pool_instances(local_aws, template, 1)]
    _web(local_aws, nodes)
    queues = testbed.create_queues(local_aws, "events")
    testbed.send_raw(
        local_aws, queues.url, [json.dumps(testbed.spot_warning(other[0].instance_id))]
    )
    scaler = scaler_for(local_aws, _settings(queues.url, headroom=0.8))

    def topped_up() -> bool:
        return outcomes(scaler.metrics).get("handled") == 1 and len(_members(local_aws)) > 1

    assert await run_until(scaler, topped_up, limit=30)
    new = {
        i: tags
        for i, tags in _members(local_aws).items()
        if i not in {n.instance_id for n in nodes}
    }
    assert new and all(
        tags == {CLUSTER: "prod", POOL: "spot-fleet", TEMPLATE_ID: template, TEMPLATE_VERSION: "1"}
        for tags in new.values()
    )
    calls = aws_calls(scaler.metrics)
    assert calls["ec2:CreateFleet"] >= 1
    assert "autoscaling:SetDesiredCapacity" not in calls
    text = scaler.metrics.render().decode()
    assert (
        f'scaler_capacity_changes_total{{change="add",reason="interruption"}} {len(new)}.0' in text
    )


async def test_consolidation_and_the_roll_terminate_template_instances(
    local_aws: testbed.LocalAws,
) -> None:
    local_aws.client("ecs").create_cluster(clusterName="prod")
    template = _template(local_aws)
    nodes = _pool_instances(local_aws, template, 2)
    _web(local_aws, nodes)
    ec2 = local_aws.client("ec2")
    ec2.create_launch_template_version(
        LaunchTemplateId=template,
        LaunchTemplateData={"ImageId": testbed._ecs_ami(ec2), "InstanceType": "m5.large"},
    )
    ec2.modify_launch_template(LaunchTemplateId=template, DefaultVersion="2")
    queues = testbed.create_queues(local_aws, "events")
    scaler = scaler_for(
        local_aws,
        _settings(
            queues.url,
            roll=True,
            consolidate=True,
            consolidate_interval=0.3,
            consolidate_min_age=0.01,
            consolidate_after_start=0.5,  # the quiet period after the start
        ),
    )
    ecs = Ecs(local_aws)

    def settled() -> bool:
        fresh = [i for i in _members(local_aws) if i not in {n.instance_id for n in nodes}]
        ecs.register_instances(fresh)
        ecs.tick()
        members = _members(local_aws)
        versions = {tags[TEMPLATE_VERSION] for tags in members.values()}
        return versions == {"2"} and len(members) == 1

    assert await run_until(scaler, settled, limit=60), _members(local_aws)
    calls = aws_calls(scaler.metrics)
    assert calls["ec2:TerminateInstances"] >= 2
    assert "autoscaling:TerminateInstanceInAutoScalingGroup" not in calls
    text = scaler.metrics.render().decode()
    assert 'scaler_capacity_changes_total{change="remove",reason="drift"}' in text
    assert 'scaler_capacity_changes_total{change="remove",reason="consolidation"}' in text


async def test_an_unknown_template_is_refused_at_start(local_aws: testbed.LocalAws) -> None:
    local_aws.client("ecs").create_cluster(clusterName="prod")
    queues = testbed.create_queues(local_aws, "events")
    scaler = scaler_for(local_aws, _settings(queues.url, spot_templates="spot-fleet=lt-0missing"))
    with pytest.raises(ConfigError) as raised:
        await run_until(scaler, lambda: False, limit=3)
    assert raised.value.problems == [
        "SCALER_SPOT_TEMPLATES: launch template 'lt-0missing' of 'spot-fleet' not found"
    ]


async def test_a_launch_counts_until_describe_instances_shows_it(
    local_aws: testbed.LocalAws,
) -> None:
    """DescribeInstances is eventually consistent after CreateFleet: the instances a fleet
    launched count as launching from its own answer, so the next cycles do not launch again."""
    local_aws.client("ecs").create_cluster(clusterName="prod")
    template = _template(local_aws)
    other = testbed.register_instances(
        local_aws, "prod", testbed.launch_instances(local_aws, 1), AZ
    )
    nodes = [*other, *_pool_instances(local_aws, template, 1)]
    _web(local_aws, nodes)
    queues = testbed.create_queues(local_aws, "events")
    testbed.send_raw(
        local_aws, queues.url, [json.dumps(testbed.spot_warning(other[0].instance_id))]
    )
    lag = LaggingDescribe(calls=4)
    scaler = scaler_for(local_aws, _settings(queues.url, headroom=0.8), instrument=lag)

    def shown_and_more() -> bool:
        return bool(lag.launched) and lag.describes >= 8

    assert await run_until(scaler, shown_and_more, limit=30)
    assert aws_calls(scaler.metrics)["ec2:CreateFleet"] == 1
    assert len(_members(local_aws)) == 1 + len(lag.launched)


async def test_a_refused_terminate_of_a_template_instance_is_not_retried_every_cycle(
    local_aws: testbed.LocalAws,
) -> None:
    """EC2 refuses to terminate a drained template instance (termination protection, say): the
    scaler asks again only after a cooldown, not at every cycle."""
    local_aws.client("ecs").create_cluster(clusterName="prod")
    template = _template(local_aws)
    nodes = _pool_instances(local_aws, template, 2)
    _web(local_aws, nodes[:1])
    local_aws.client("ec2").create_tags(
        Resources=[nodes[1].instance_id], Tags=[{"Key": RETIRING, "Value": "consolidation"}]
    )
    local_aws.client("ecs").update_container_instances_state(
        cluster="prod", containerInstances=[str(nodes[1].container_instance_arn)], status="DRAINING"
    )
    refuse = FailFirst("ec2", "TerminateInstances", times=1000, code="OperationNotPermitted")
    queues = testbed.create_queues(local_aws, "events")
    settings = _settings(
        queues.url, consolidate=True, consolidate_interval=3600, capacity_interval=0.2
    )
    scaler = scaler_for(local_aws, settings, instrument=refuse)
    assert not await run_until(scaler, lambda: refuse.failed > 1, limit=4)
    assert refuse.failed == 1
