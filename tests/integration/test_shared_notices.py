"""Two replicas sharing a lease table: what the follower hears reaches the leader's capacity.

Every replica consumes the queue, so a spot notice may be handled by a replica that does not
run the capacity controller. Here the leader reads a queue of its own that stays empty: SQS
delivers each message to one consumer, and this way it is always the follower's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from scaler import testbed
from scaler.aws.clients import AwsClients, AwsTarget
from scaler.aws.shared_notices import SharedNotices
from scaler.clock import ManualClock
from scaler.loop import Scaler
from scaler.metrics import Metrics
from scaler.notices import FINAL, REPLACEMENT, WARNING, shared
from tests.integration.ecs_harness import Ecs
from tests.integration.helpers import lease_table, outcomes, scaler_for, settings_for, wait_for

TABLE = "scaler-lease"
GROUPS = ("spot-asg", "od-asg")


def _leading(scaler: Scaler) -> bool:
    return scaler.metrics.registry.get_sample_value("scaler_leader") == 1.0


def _table(aws: testbed.LocalAws) -> None:
    lease_table(aws, TABLE)


async def test_the_table_keeps_the_newest_notice_and_reads_back_the_live_ones(
    local_aws: testbed.LocalAws,
) -> None:
    _table(local_aws)
    now = ManualClock().now().timestamp()
    target = AwsTarget(region=testbed.REGION, endpoint_url=local_aws.endpoint, max_attempts=1)
    async with AwsClients(target, Metrics()) as clients:
        prod = SharedNotices(clients.dynamodb, TABLE, "prod", ManualClock())
        other = SharedNotices(clients.dynamodb, TABLE, "staging", ManualClock())
        newer = shared("i-1", REPLACEMENT, now, end=now + 300)
        await prod.publish(newer)
        await prod.publish(shared("i-1", REPLACEMENT, now - 60, end=now))  # too old: kept out
        await prod.publish(shared("i-1", FINAL, now))
        await prod.publish(shared("i-2", WARNING, now - 5000))  # expired
        await other.publish(shared("i-3", WARNING, now))  # another cluster's
        found = sorted(await prod.read(now), key=lambda n: n.kind)
    assert [(n.instance_id, n.kind, n.at, n.end) for n in found] == [
        ("i-1", FINAL, now, None),
        ("i-1", REPLACEMENT, now, now + 300),
    ]


def _cluster(aws: testbed.LocalAws) -> tuple[Ecs, list[str]]:
    """Two spot instances registered in the cluster; the first holds two tasks, the second
    one: if the first goes, its tasks do not fit on the second."""
    testbed.manual_task_states(aws)
    aws.client("ecs").create_cluster(clusterName="prod")
    for name in GROUPS:
        testbed.create_group(aws, name, "m5.large", ["us-east-1a"])
    asg = aws.client("autoscaling")
    asg.update_auto_scaling_group(AutoScalingGroupName="spot-asg", DesiredCapacity=2)
    group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["spot-asg"])
    ids = sorted(i["InstanceId"] for i in group["AutoScalingGroups"][0]["Instances"])
    ecs = Ecs(aws)
    ecs.register_instances(ids)
    client = aws.client("ecs")
    client.register_task_definition(
        family="web",
        containerDefinitions=[{"name": "app", "image": "x", "cpu": 1024, "memory": 3000}],
    )
    client.create_service(cluster="prod", serviceName="web", taskDefinition="web", desiredCount=3)
    arns = {ci["ec2InstanceId"]: ci["containerInstanceArn"] for ci in ecs._instances()}
    for iid, count in zip(ids, (2, 1), strict=True):
        client.start_task(
            cluster="prod",
            taskDefinition="web",
            group="service:web",
            containerInstances=[arns[iid]] * count,
        )
    _table(aws)
    return ecs, ids


@contextlib.asynccontextmanager
async def _replicas(
    aws: testbed.LocalAws, ecs: Ecs, **overrides: Any
) -> AsyncIterator[tuple[Scaler, Scaler, str]]:
    """A leader (started first, on an empty queue of its own) and a follower on the queue the
    test sends to; ECS registers what the groups launch meanwhile."""
    own = testbed.create_queues(aws, "leader-events")
    queue = testbed.create_queues(aws, "events")
    values: dict[str, Any] = {
        "spot_pools": "spot-asg",
        "on_demand_pools": "od-asg",
        "capacity_interval": 0.5,
        "headroom": 0.0,
        "lease_table": TABLE,
        "drain_poll": 0.2,
        **overrides,
    }
    leader = scaler_for(aws, settings_for(own.url, **values))
    follower = scaler_for(aws, settings_for(queue.url, **values))
    stop = asyncio.Event()
    runs = [asyncio.create_task(leader.run(stop))]
    ticking = asyncio.create_task(_play_ecs(ecs, stop))
    try:
        await wait_for(lambda: _leading(leader))
        runs.append(asyncio.create_task(follower.run(stop)))
        await wait_for(follower.started.is_set)
        assert not _leading(follower)
        yield leader, follower, queue.url
    finally:
        stop.set()
        await asyncio.gather(*runs, ticking)


async def _play_ecs(ecs: Ecs, stop: asyncio.Event) -> None:
    while not stop.is_set():
        ecs.tick(GROUPS)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.2)


def _handled(scaler: Scaler) -> Callable[[], bool]:
    return lambda: outcomes(scaler.metrics).get("handled") == 1


async def test_a_warning_handled_by_the_follower_reaches_the_leaders_capacity_plan(
    local_aws: testbed.LocalAws,
) -> None:
    ecs, (doomed, _) = _cluster(local_aws)
    async with _replicas(local_aws, ecs) as (leader, follower, queue_url):
        controller = leader.capacity
        assert controller is not None
        warning = testbed.spot_warning(doomed)
        testbed.send_raw(local_aws, queue_url, [json.dumps(warning)])
        await wait_for(_handled(follower))
        after = controller.cycles
        await wait_for(lambda: controller.cycles >= after + 2)  # one whole cycle since
        assert testbed.container_instance_states(local_aws, "prod")[doomed] == "DRAINING"
        # the leader counts the instance as losing its place and cools its spot pool
        assert doomed in controller._board.ends
        assert "spot-asg" in controller.memory.interrupted


async def test_replace_then_drain_on_the_follower_is_satisfied_by_the_leader(
    local_aws: testbed.LocalAws,
) -> None:
    ecs, (doomed, _) = _cluster(local_aws)
    timeout = 120.0  # far longer than the test may take: the drain must not wait it out
    settings = {"rebalance_policy": "replace-then-drain", "replacement_timeout": timeout}
    async with _replicas(local_aws, ecs, **settings) as (leader, _, queue_url):
        asg = local_aws.client("autoscaling")
        before = _desired(asg)
        testbed.send_raw(
            local_aws, queue_url, [json.dumps(testbed.rebalance_recommendation(doomed))]
        )
        await wait_for(
            lambda: testbed.container_instance_states(local_aws, "prod")[doomed] == "DRAINING",
            limit=30,
        )
        assert _desired(asg) > before  # the leader launched the replacement
        assert leader.capacity is not None and leader.capacity.ready_at > 0
        request = local_aws.client("dynamodb").get_item(
            TableName=TABLE, Key={"name": {"S": f"prod/notice/{doomed}/replacement"}}
        )
        assert "ready" in request["Item"]  # the follower's request, answered by the leader


def _desired(asg: Any) -> int:
    groups = asg.describe_auto_scaling_groups(AutoScalingGroupNames=list(GROUPS))
    return sum(g["DesiredCapacity"] for g in groups["AutoScalingGroups"])
