"""Capacity top-up for services bound to capacity providers, against moto over HTTP.

moto stores capacity providers (CreateCapacityProvider, PutClusterCapacityProviders) and a
service's ``capacityProviderStrategy`` (UpdateService only: CreateService drops it, and every
service reports ``launchType`` EC2). It sets no ``ecs.capacity-provider-name`` attribute: the
harness does, as ECS does, and places tasks on their providers' instances only.
"""

from __future__ import annotations

import json
from typing import Any

from scaler import testbed
from scaler.demo import run_until
from tests.integration.ecs_harness import Ecs, provider, set_provider
from tests.integration.faults import FailFirst
from tests.integration.helpers import outcomes, scaler_for, settings_for
from tests.integration.test_capacity import _group, groups_desired


def _provider(aws: testbed.LocalAws, name: str, group: str) -> None:
    arn = aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[group])[
        "AutoScalingGroups"
    ][0]["AutoScalingGroupARN"]
    aws.client("ecs").create_capacity_provider(
        name=name, autoScalingGroupProvider={"autoScalingGroupArn": arn}
    )


def _bound_service(aws: testbed.LocalAws, nodes: list[testbed.Node], providers: list[str]) -> None:
    """``web``, bound to ``providers``, with two 1024-unit tasks on each of ``nodes``."""
    testbed.manual_task_states(aws)
    ecs = aws.client("ecs")
    ecs.register_task_definition(
        family="web",
        containerDefinitions=[{"name": "app", "image": "x", "cpu": 1024, "memory": 1024}],
    )
    ecs.create_service(cluster="prod", serviceName="web", taskDefinition="web", desiredCount=4)
    strategy = [{"capacityProvider": p, "weight": 1} for p in providers]
    ecs.update_service(cluster="prod", service="web", capacityProviderStrategy=strategy)
    for node in nodes:
        ecs.start_task(
            cluster="prod",
            taskDefinition="web",
            group="service:web",
            containerInstances=[node.container_instance_arn] * 2,
        )


def _cluster(aws: testbed.LocalAws) -> list[testbed.Node]:
    """Three instances: two of provider cp-a (spot-a), one of cp-b (spot-b), the last empty."""
    nodes = testbed.create_cluster(aws, "prod", size=3)
    _group(aws, "spot-a")
    _group(aws, "spot-b")
    _provider(aws, "cp-a", "spot-a")
    _provider(aws, "cp-b", "spot-b")
    aws.client("ecs").put_cluster_capacity_providers(
        cluster="prod", capacityProviders=["cp-a", "cp-b"], defaultCapacityProviderStrategy=[]
    )
    for node, name in zip(nodes, ("cp-a", "cp-a", "cp-b"), strict=True):
        assert node.container_instance_arn is not None
        set_provider(aws, "prod", node.container_instance_arn, name)
    return nodes


def _settings(queue_url: str) -> Any:
    return settings_for(queue_url, spot_pools="spot-a,spot-b", capacity_interval=0.5, headroom=0.0)


def _warned(aws: testbed.LocalAws, provider: str) -> tuple[list[testbed.Node], testbed.Queues]:
    """The cluster of :func:`_cluster`, ``web`` bound to ``provider`` on its first two instances,
    and a spot warning for each of those on the queue."""
    nodes = _cluster(aws)
    queues = testbed.create_queues(aws, "events")
    _bound_service(aws, nodes[:2], [provider])
    warnings = [json.dumps(testbed.spot_warning(n.instance_id)) for n in nodes[:2]]
    testbed.send_raw(aws, queues.url, warnings)
    return nodes, queues


async def test_homeless_bound_tasks_grow_their_providers_group_not_the_one_with_room(
    local_aws: testbed.LocalAws,
) -> None:
    nodes, queues = _warned(local_aws, "cp-a")
    # web's 4 tasks lose their place; the cp-b instance has room for all 4, but not for web
    scaler = scaler_for(local_aws, _settings(queues.url))
    asg = local_aws.client("autoscaling")

    def topped_up() -> bool:
        return outcomes(scaler.metrics).get("handled") == 2 and groups_desired(asg, "spot-a") > 0

    assert await run_until(scaler, topped_up, limit=30)
    assert groups_desired(asg, "spot-b") == 0
    # ECS (the harness) moves web's tasks to the new cp-a instance, not to the cp-b one
    harness = Ecs(local_aws)
    harness.tick(groups=("spot-a", "spot-b"))
    ecs = local_aws.client("ecs")
    arns = ecs.list_tasks(cluster="prod", desiredStatus="RUNNING")["taskArns"]
    tasks = ecs.describe_tasks(cluster="prod", tasks=arns)["tasks"]
    where = {t["containerInstanceArn"] for t in tasks if t["lastStatus"] == "RUNNING"}
    described = ecs.describe_container_instances(cluster="prod", containerInstances=list(where))
    assert {provider(ci) for ci in described["containerInstances"]} == {"cp-a"}
    assert nodes[2].container_instance_arn not in where


async def test_a_service_bound_to_a_provider_of_no_pool_grows_nothing(
    local_aws: testbed.LocalAws, caplog: Any
) -> None:
    _, queues = _warned(local_aws, "cp-b")
    settings = settings_for(queues.url, spot_pools="spot-a", capacity_interval=0.5, headroom=0.0)
    scaler = scaler_for(local_aws, settings)
    asg = local_aws.client("autoscaling")

    def warned() -> bool:
        return outcomes(scaler.metrics).get("handled") == 2 and any(
            "not the scaler's pools" in r.getMessage() for r in caplog.records
        )

    assert await run_until(scaler, warned, limit=30)
    assert groups_desired(asg, "spot-a") == 0
    said = [r for r in caplog.records if "not the scaler's pools" in r.getMessage()]
    assert len(said) == 1  # once, not every cycle


async def test_a_task_role_that_may_not_read_providers_tops_up_as_if_unbound(
    local_aws: testbed.LocalAws, caplog: Any
) -> None:
    _, queues = _warned(local_aws, "cp-a")
    denied = FailFirst("ecs", "DescribeCapacityProviders", 10**6, "AccessDeniedException")
    # providers are read at each full read, every 60 cycles at most: short cycles reach two soon
    settings = _settings(queues.url).model_copy(update={"capacity_interval": 0.2})
    scaler = scaler_for(local_aws, settings, instrument=denied)

    def cycles() -> bool:
        return outcomes(scaler.metrics).get("handled") == 2 and denied.failed >= 2

    assert await run_until(scaler, cycles, limit=30)
    said = [r for r in caplog.records if "capacity providers not readable" in r.getMessage()]
    assert len(said) == 1  # once, and the controller goes on
    # web counts as unbound: the cp-b instance's room takes its tasks, nothing is launched
    asg = local_aws.client("autoscaling")
    assert groups_desired(asg, "spot-a") == groups_desired(asg, "spot-b") == 0
