"""Terminate lifecycle hooks for instances the cluster does not know, against moto over HTTP.

An instance that never registered (its agent failed) or was deregistered already still holds its
Auto Scaling hook: left alone, Auto Scaling waits out the hook's heartbeat timeout (an hour by
default) before terminating it. The scaler completes such a hook at once, with ``CONTINUE``,
when the group is the cluster's: named in its pools, or tagged ``scaler:cluster`` with the
cluster's name (the only groups whose hooks the task role may complete). A hook of another
group is left alone, even one with another instance registered in the cluster. moto does not
implement CompleteLifecycleAction: the requests are captured at botocore's hook, validated and
serialized as for AWS.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs

import pytest

from scaler import testbed
from scaler.demo import run_until
from tests.integration.faults import Capture, FailFirst, chain
from tests.integration.helpers import outcomes, scaler_for, settings_for

AZ = "us-east-1a"


def _group(aws: testbed.LocalAws, name: str, size: int, cluster_tag: str | None) -> list[str]:
    ec2, asg = aws.client("ec2"), aws.client("autoscaling")
    ec2.create_launch_template(
        LaunchTemplateName=f"{name}-lt",
        LaunchTemplateData={"ImageId": testbed._ecs_ami(ec2), "InstanceType": "m5.large"},
    )
    tags = [] if cluster_tag is None else [{"Key": "scaler:cluster", "Value": cluster_tag}]
    asg.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateName": f"{name}-lt"},
        MinSize=0,
        MaxSize=10,
        DesiredCapacity=size,
        AvailabilityZones=[AZ],
        Tags=[
            {
                **t,
                "ResourceId": name,
                "ResourceType": "auto-scaling-group",
                "PropagateAtLaunch": True,
            }
            for t in tags
        ],
    )
    reply = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])
    return [i["InstanceId"] for i in reply["AutoScalingGroups"][0]["Instances"]]


def _completed(capture: Capture) -> dict[str, str]:
    """Instance id -> result of each CompleteLifecycleAction sent (query-protocol form)."""
    done = {}
    for request in capture.requests:
        body = request["body"]
        if isinstance(body, dict):
            form = {str(k): str(v) for k, v in body.items()}
        else:
            text = body.decode() if isinstance(body, bytes) else str(body)
            form = {k: v[0] for k, v in parse_qs(text).items()}
        done[form["InstanceId"]] = form["LifecycleActionResult"]
    return done


def _world(aws: testbed.LocalAws) -> tuple[testbed.Queues, dict[str, str]]:
    """Instances whose hooks fire, by what they are."""
    registered = testbed.create_cluster(aws, "prod", size=1)[0].instance_id
    queues = testbed.create_queues(aws, "events")
    tagged = _group(aws, "prod-asg", 1, "prod")  # never registered
    mixed = _group(aws, "web-asg", 2, None)
    testbed.register_instances(aws, "prod", mixed[:1], AZ)
    foreign = _group(aws, "other-asg", 1, "other")
    untagged = _group(aws, "lone-asg", 1, None)
    events = {
        registered: "prod-asg",  # drained (it holds nothing), then completed
        tagged[0]: "prod-asg",
        mixed[1]: "web-asg",  # untagged: not the scaler's to complete
        foreign[0]: "other-asg",
        untagged[0]: "lone-asg",
    }
    testbed.send_raw(
        aws,
        queues.url,
        [json.dumps(testbed.lifecycle_terminate(iid, group)) for iid, group in events.items()],
    )
    return queues, {"registered": registered, "tagged": tagged[0]}


async def test_hooks_of_unregistered_instances_of_the_clusters_groups_complete_at_once(
    local_aws: testbed.LocalAws,
) -> None:
    queues, ids = _world(local_aws)
    complete = Capture("autoscaling", "CompleteLifecycleAction")
    settings = settings_for(queues.url, drain_poll=60.0)  # nothing waits for a drain poll
    scaler = scaler_for(local_aws, settings, instrument=complete)

    def settled() -> bool:
        return sum(outcomes(scaler.metrics).values()) == 5

    assert await run_until(scaler, settled, limit=15)
    assert _completed(complete) == dict.fromkeys(ids.values(), "CONTINUE")
    assert outcomes(scaler.metrics) == {"handled": 2, "other_cluster": 3}
    text = scaler.metrics.render().decode()
    assert 'scaler_lifecycle_actions_total{result="unregistered"} 1.0' in text
    assert 'scaler_lifecycle_actions_total{result="drained"} 1.0' in text


async def test_in_dry_run_the_wait_for_the_heartbeat_timeout_is_said(
    local_aws: testbed.LocalAws, caplog: pytest.LogCaptureFixture
) -> None:
    queues, ids = _world(local_aws)
    complete = Capture("autoscaling", "CompleteLifecycleAction")
    scaler = scaler_for(local_aws, settings_for(queues.url, dry_run=True), instrument=complete)
    caplog.set_level(logging.INFO, logger="scaler")

    def said() -> list[Any]:
        return [r for r in caplog.records if "heartbeat timeout" in r.getMessage()]

    assert await run_until(scaler, lambda: len(said()) == 2, limit=15)
    assert complete.requests == []
    lines = said()
    assert {(r.levelname, r.group, r.hook, r.instance_id) for r in lines} == {
        ("WARNING", "prod-asg", "scaler-drain", ids["registered"]),
        ("WARNING", "prod-asg", "scaler-drain", ids["tagged"]),
    }


async def test_a_group_that_cannot_be_described_leaves_its_hook_alone(
    local_aws: testbed.LocalAws,
) -> None:
    """Without leave to describe groups the hook is left (as another cluster's), not retried
    until the message lands in the dead-letter queue."""
    testbed.create_cluster(local_aws, "prod", size=1)
    queues = testbed.create_queues(local_aws, "events")
    tagged = _group(local_aws, "prod-asg", 1, "prod")
    event = testbed.lifecycle_terminate(tagged[0], "prod-asg")
    testbed.send_raw(local_aws, queues.url, [json.dumps(event)])
    denied = FailFirst(
        "autoscaling", "DescribeAutoScalingGroups", 100, "AccessDenied", "not authorized", 403
    )
    complete = Capture("autoscaling", "CompleteLifecycleAction")
    scaler = scaler_for(local_aws, settings_for(queues.url), instrument=chain(denied, complete))
    assert await run_until(scaler, lambda: bool(outcomes(scaler.metrics)), limit=15)
    assert outcomes(scaler.metrics) == {"other_cluster": 1}
    assert denied.failed == 1
    assert complete.requests == []
