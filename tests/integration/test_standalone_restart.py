"""Standalone tasks on a draining instance are re-run elsewhere once, then stopped."""

from __future__ import annotations

import json
from typing import Any

from scaler import testbed
from scaler.aws.tasks import restart_key
from scaler.demo import run_until
from tests.integration.helpers import outcomes, scaler_for, settings_for


def _manual_task_states(aws: testbed.LocalAws) -> None:
    testbed.manual_task_states(aws)


def _tasks(aws: testbed.LocalAws) -> list[dict[str, Any]]:
    ecs = aws.client("ecs")
    arns = ecs.list_tasks(cluster="prod")["taskArns"]
    return ecs.describe_tasks(cluster="prod", tasks=arns)["tasks"] if arns else []


async def test_standalone_tasks_move_and_service_tasks_stay(local_aws: testbed.LocalAws) -> None:
    _manual_task_states(local_aws)
    nodes = testbed.create_cluster(local_aws, "prod", size=3)
    queues = testbed.create_queues(local_aws, "events", max_receive=3, visibility=5)
    ecs = local_aws.client("ecs")
    for family in ("batch-job", "web"):
        ecs.register_task_definition(
            family=family,
            containerDefinitions=[{"name": "app", "image": "busybox", "cpu": 128, "memory": 128}],
        )
    first = nodes[0].container_instance_arn
    standalone = ecs.start_task(
        cluster="prod",
        taskDefinition="batch-job",
        containerInstances=[first, first],
        group="family:batch-job",
        overrides={"containerOverrides": [{"name": "app", "command": ["run", "--fast"]}]},
    )["tasks"]
    service_task = ecs.start_task(
        cluster="prod", taskDefinition="web", containerInstances=[first], group="service:web"
    )["tasks"][0]

    warning = testbed.spot_warning(nodes[0].instance_id)
    redelivered = testbed.spot_warning(nodes[0].instance_id)  # same instance, new event id
    testbed.send_raw(local_aws, queues.url, [json.dumps(warning)])
    settings = settings_for(queues.url, restart_standalone_tasks=True)
    scaler = scaler_for(local_aws, settings)
    assert await run_until(scaler, lambda: outcomes(scaler.metrics) == {"handled": 1}, limit=20)
    testbed.send_raw(local_aws, queues.url, [json.dumps(redelivered)])
    scaler = scaler_for(local_aws, settings)
    assert await run_until(scaler, lambda: outcomes(scaler.metrics) == {"handled": 1}, limit=20)

    by_arn = {t["taskArn"]: t for t in _tasks(local_aws)}
    for original in standalone:
        assert by_arn[original["taskArn"]]["desiredStatus"] == "STOPPED"
        copies = [
            t for t in by_arn.values() if t.get("startedBy") == restart_key(original["taskArn"])
        ]
        assert len(copies) == 1, "restarted exactly once, even after a redelivery"
        copy = copies[0]
        assert copy["containerInstanceArn"] != first
        assert copy["group"] == "family:batch-job"
        assert copy["overrides"]["containerOverrides"][0]["command"] == ["run", "--fast"]
    assert by_arn[service_task["taskArn"]]["desiredStatus"] == "RUNNING"


async def test_a_restart_interrupted_before_the_stop_is_not_run_twice(
    local_aws: testbed.LocalAws,
) -> None:
    from scaler.aws.clients import AwsClients, AwsTarget
    from scaler.aws.tasks import StandaloneRestarter
    from scaler.metrics import Metrics

    _manual_task_states(local_aws)
    nodes = testbed.create_cluster(local_aws, "prod", size=2)
    ecs = local_aws.client("ecs")
    ecs.register_task_definition(
        family="job", containerDefinitions=[{"name": "a", "image": "x", "memory": 64}]
    )
    task = ecs.start_task(
        cluster="prod", taskDefinition="job", containerInstances=[nodes[0].container_instance_arn]
    )["tasks"][0]
    target = AwsTarget(region=testbed.REGION, endpoint_url=local_aws.endpoint, max_attempts=1)
    async with AwsClients(target, Metrics()) as aws:
        restarter = StandaloneRestarter(aws.ecs, "prod", Metrics(), dry_run=False)
        first = await restarter._run_copy(task)
        again = await restarter._run_copy(task)  # as after a crash between RunTask and StopTask
    assert first == again
    copies = [t for t in _tasks(local_aws) if t.get("startedBy") == restart_key(task["taskArn"])]
    assert len(copies) == 1
