"""The Auto Scaling requests the scaler sends, validated by botocore against the service model.

moto does not implement CompleteLifecycleAction or RecordLifecycleActionHeartbeat, so these
tests stop each request at botocore's ``before-call`` hook: by then botocore has validated the
parameters against the service model and serialized them exactly as they would go to AWS.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import pytest
from botocore.exceptions import ClientError

from scaler import testbed
from scaler.aws.clients import AwsClients, AwsTarget
from scaler.aws.lifecycle import AutoScalingLifecycle
from scaler.metrics import Metrics
from scaler.plan.drain import LifecycleAction
from tests.integration.faults import Capture, FailFirst

ACTION = LifecycleAction("prod-asg", "drain-hook", "0befcbdb-6ecd-498a-9ff7-ae9b54447cd6", "i-0633")


def _form(request: dict[str, object]) -> dict[str, str]:
    """The query-protocol form fields of a serialized request."""
    body = request["body"]
    if isinstance(body, dict):
        return {str(k): str(v) for k, v in body.items()}
    text = body.decode() if isinstance(body, bytes) else str(body)
    return {k: v[0] for k, v in parse_qs(text).items()}


async def test_complete_and_heartbeat_request_shapes(local_aws: testbed.LocalAws) -> None:
    complete = Capture("autoscaling", "CompleteLifecycleAction")
    heartbeat = Capture("autoscaling", "RecordLifecycleActionHeartbeat")

    def instrument(service: str, client: object) -> None:
        complete(service, client)
        heartbeat(service, client)

    target = AwsTarget(region=testbed.REGION, endpoint_url=local_aws.endpoint, max_attempts=1)
    async with AwsClients(target, Metrics(), instrument) as aws:
        port = AutoScalingLifecycle(aws.urgent_autoscaling)
        await port.heartbeat(ACTION)
        assert await port.complete(ACTION, "CONTINUE")
    ids = {
        "LifecycleHookName": "drain-hook",
        "AutoScalingGroupName": "prod-asg",
        "LifecycleActionToken": ACTION.token,
        "InstanceId": "i-0633",
    }
    assert _form(heartbeat.requests[0]) == {
        "Action": "RecordLifecycleActionHeartbeat",
        "Version": "2011-01-01",
        **ids,
    }
    assert _form(complete.requests[0]) == {
        "Action": "CompleteLifecycleAction",
        "Version": "2011-01-01",
        "LifecycleActionResult": "CONTINUE",
        **ids,
    }


async def test_completing_an_action_that_already_ended_is_not_an_error(
    local_aws: testbed.LocalAws,
) -> None:
    gone = FailFirst(
        "autoscaling",
        "CompleteLifecycleAction",
        times=1,
        code="ValidationError",
        message="No active Lifecycle Action found with instance ID i-0633",
    )
    target = AwsTarget(region=testbed.REGION, endpoint_url=local_aws.endpoint, max_attempts=1)
    async with AwsClients(target, Metrics(), gone) as aws:
        port = AutoScalingLifecycle(aws.urgent_autoscaling)
        assert await port.complete(ACTION, "CONTINUE") is False


async def test_other_validation_errors_surface(local_aws: testbed.LocalAws) -> None:
    bad = FailFirst(
        "autoscaling",
        "CompleteLifecycleAction",
        times=1,
        code="ValidationError",
        message="1 validation error detected",
    )
    target = AwsTarget(region=testbed.REGION, endpoint_url=local_aws.endpoint, max_attempts=1)
    async with AwsClients(target, Metrics(), bad) as aws:
        port = AutoScalingLifecycle(aws.urgent_autoscaling)
        with pytest.raises(ClientError):
            await port.complete(ACTION, "CONTINUE")


@pytest.mark.parametrize(("last", "held"), [("DEACTIVATING", 1), ("STOPPING", 1), ("STOPPED", 0)])
async def test_tasks_still_stopping_hold_the_lifecycle_action(
    local_aws: testbed.LocalAws, last: str, held: int
) -> None:
    """A service task ECS is stopping (draining its load balancer connections) still holds the
    instance. moto stops tasks at once, so ECS's answers are given at botocore's hook."""
    from scaler.aws.tasks import TaskInspector
    from scaler.model import ContainerInstance

    ci = "arn:aws:ecs:us-east-1:123456789012:container-instance/prod/abc"
    arn = "arn:aws:ecs:us-east-1:123456789012:task/prod/t1"
    listed = Capture("ecs", "ListTasks", reply={"taskArns": [arn]})
    described = Capture(
        "ecs",
        "DescribeTasks",
        reply={
            "tasks": [
                {
                    "taskArn": arn,
                    "group": "service:web",
                    "containerInstanceArn": ci,
                    "lastStatus": last,
                    "desiredStatus": "STOPPED",
                }
            ]
        },
    )

    def instrument(service: str, client: object) -> None:
        listed(service, client)
        described(service, client)

    target = AwsTarget(region=testbed.REGION, endpoint_url=local_aws.endpoint, max_attempts=1)
    async with AwsClients(target, Metrics(), instrument) as aws:
        count = await TaskInspector(aws.ecs, "prod").service_tasks(
            ContainerInstance(ci, "i-1", "DRAINING")
        )
    assert count == held
    asked = {
        _form(r).get("desiredStatus") or json.loads(r["body"]).get("desiredStatus")
        for r in listed.requests
    }
    assert asked == {"RUNNING", "STOPPED"}
