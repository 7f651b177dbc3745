"""Drains on warnings that never come true are undone; bursts drain within the budget (moto)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from scaler import testbed
from scaler.demo import run_until
from scaler.loop import Scaler
from scaler.plan.undrain import ATTRIBUTE
from tests.integration.ecs_harness import Ecs
from tests.integration.helpers import outcomes, scaler_for, settings_for
from tests.integration.test_capacity import _fallback_instance, _group, _services


def _cluster(aws: testbed.LocalAws, size: int) -> tuple[list[str], testbed.Queues]:
    nodes = testbed.create_cluster(aws, "prod", size=size)
    queues = testbed.create_queues(aws, "events", max_receive=3, visibility=2)
    return [n.instance_id for n in nodes], queues


def _states(aws: testbed.LocalAws) -> dict[str, str]:
    return testbed.container_instance_states(aws, "prod")


def _marks(aws: testbed.LocalAws) -> dict[str, str]:
    """EC2 instance id -> its scaler.drained attribute, for the instances that have one."""
    ecs = aws.client("ecs")
    arns = ecs.list_container_instances(cluster="prod")["containerInstanceArns"]
    described = ecs.describe_container_instances(cluster="prod", containerInstances=arns)
    return {
        ci["ec2InstanceId"]: a["value"]
        for ci in described["containerInstances"]
        for a in ci.get("attributes", [])
        if a["name"] == ATTRIBUTE
    }


class Watch:
    """Remembers every instance seen DRAINING and the most seen DRAINING at once."""

    def __init__(self, aws: testbed.LocalAws) -> None:
        self.aws = aws
        self.ever: set[str] = set()
        self.most = 0

    def look(self) -> dict[str, str]:
        states = _states(self.aws)
        draining = {i for i, s in states.items() if s == "DRAINING"}
        self.ever |= draining
        self.most = max(self.most, len(draining))
        return states


def _send(aws: testbed.LocalAws, url: str, events: list[dict[str, Any]]) -> None:
    testbed.send_raw(aws, url, [json.dumps(e) for e in events])


def _scaler(aws: testbed.LocalAws, url: str, **overrides: Any) -> Scaler:
    values: dict[str, Any] = {"undrain_after": 6.0, "drain_poll": 0.2, "disruption_budget": 1.0}
    return scaler_for(aws, settings_for(url, **{**values, **overrides}))


async def test_recommendations_that_never_come_true_are_undone(
    local_aws: testbed.LocalAws,
) -> None:
    members, queues = _cluster(local_aws, 8)
    burst = members[:5]
    _send(local_aws, queues.url, [testbed.rebalance_recommendation(i) for i in burst])
    # a held recommendation is dropped once it waited SCALER_UNDRAIN_AFTER: leave it time to
    # drain first on a slow machine
    scaler = _scaler(local_aws, queues.url, undrain_after=6.0)
    watch = Watch(local_aws)

    def undone() -> bool:
        states = watch.look()
        return watch.ever == set(burst) and set(states.values()) == {"ACTIVE"}

    assert await run_until(scaler, undone, limit=60), (watch.ever, outcomes(scaler.metrics))
    assert _marks(local_aws) == {}
    text = scaler.metrics.render().decode()
    assert 'scaler_reactivated_instances_total{reason="rebalance_recommendation"} 5.0' in text
    assert 'scaler_reactivated_instances_total{reason="scheduled_reboot"} 0.0' in text


async def test_a_hand_drained_instance_stays_draining(local_aws: testbed.LocalAws) -> None:
    members, queues = _cluster(local_aws, 4)
    ecs = local_aws.client("ecs")
    arns = ecs.list_container_instances(cluster="prod")["containerInstanceArns"]
    described = ecs.describe_container_instances(cluster="prod", containerInstances=arns)
    by_hand = next(c for c in described["containerInstances"] if c["ec2InstanceId"] == members[3])
    ecs.update_container_instances_state(
        cluster="prod", containerInstances=[by_hand["containerInstanceArn"]], status="DRAINING"
    )
    _send(local_aws, queues.url, [testbed.rebalance_recommendation(members[0])])
    scaler = _scaler(local_aws, queues.url)
    text = ""

    def undone() -> bool:
        nonlocal text
        text = scaler.metrics.render().decode()
        return 'reactivated_instances_total{reason="rebalance_recommendation"} 1.0' in text

    assert await run_until(scaler, undone, limit=30), outcomes(scaler.metrics)
    states = _states(local_aws)
    assert states[members[0]] == "ACTIVE"
    assert states[members[3]] == "DRAINING"  # no scaler mark: someone else's drain


async def test_an_instance_warned_after_its_recommendation_stays_draining(
    local_aws: testbed.LocalAws,
) -> None:
    members, queues = _cluster(local_aws, 4)
    _send(local_aws, queues.url, [testbed.rebalance_recommendation(i) for i in members[:2]])
    # the warning must arrive before the undo time: leave a loaded machine room for it
    scaler = _scaler(local_aws, queues.url, undrain_after=10.0)
    sent = False

    def warned_one_undone_other() -> bool:
        nonlocal sent
        states = _states(local_aws)
        if not sent and states[members[0]] == "DRAINING":
            _send(local_aws, queues.url, [testbed.spot_warning(members[0])])
            sent = True
        text = scaler.metrics.render().decode()
        return 'reactivated_instances_total{reason="rebalance_recommendation"} 1.0' in text

    assert await run_until(scaler, warned_one_undone_other, limit=60), outcomes(scaler.metrics)
    states = _states(local_aws)
    assert states[members[0]] == "DRAINING"
    assert states[members[1]] == "ACTIVE"
    assert _marks(local_aws)[members[0]].startswith("spot_interruption@")


async def test_a_reboot_is_undone_when_its_window_ends(local_aws: testbed.LocalAws) -> None:
    members, queues = _cluster(local_aws, 3)
    now = datetime.now(UTC)
    end = now + timedelta(seconds=4)
    reboot = testbed.scheduled_change(
        members[0],
        start=now - timedelta(minutes=1),
        end=end,
        code="AWS_EC2_INSTANCE_REBOOT_MAINTENANCE_SCHEDULED",
    )
    retire = testbed.scheduled_change(members[1], start=now - timedelta(minutes=1))
    _send(local_aws, queues.url, [reboot, retire])
    # SCALER_UNDRAIN_AFTER after the start is long past: the end of the window is what counts
    scaler = _scaler(local_aws, queues.url, undrain_after=1.0)
    watch = Watch(local_aws)
    undone_at: list[datetime] = []

    def undone() -> bool:
        states = watch.look()
        if members[0] in watch.ever and states[members[0]] == "ACTIVE":
            undone_at.append(datetime.now(UTC))
        return bool(undone_at)

    assert await run_until(scaler, undone, limit=30), outcomes(scaler.metrics)
    assert undone_at[0] >= end - timedelta(seconds=1)  # the mark keeps whole seconds
    assert _states(local_aws)[members[1]] == "DRAINING"  # a retirement is final
    text = scaler.metrics.render().decode()
    assert 'scaler_reactivated_instances_total{reason="scheduled_reboot"} 1.0' in text


def _one_task_each(aws: testbed.LocalAws, instance_ids: list[str]) -> None:
    """A service task on each of ``instance_ids``, which only the ECS harness moves."""
    testbed.manual_task_states(aws)
    ecs = aws.client("ecs")
    ecs.register_task_definition(
        family="web",
        containerDefinitions=[{"name": "app", "image": "x", "cpu": 256, "memory": 256}],
    )
    ecs.create_service(cluster="prod", serviceName="web", taskDefinition="web", desiredCount=8)
    arns = ecs.list_container_instances(cluster="prod")["containerInstanceArns"]
    described = ecs.describe_container_instances(cluster="prod", containerInstances=arns)
    by_id = {c["ec2InstanceId"]: c["containerInstanceArn"] for c in described["containerInstances"]}
    for iid in instance_ids:
        ecs.start_task(
            cluster="prod",
            taskDefinition="web",
            group="service:web",
            containerInstances=[by_id[iid]],
        )


async def test_a_burst_of_recommendations_drains_within_the_budget(
    local_aws: testbed.LocalAws,
) -> None:
    members, queues = _cluster(local_aws, 20)
    burst, warned = members[:8], members[8:11]
    _one_task_each(local_aws, burst)
    _send(local_aws, queues.url, [testbed.rebalance_recommendation(i) for i in burst])
    _send(local_aws, queues.url, [testbed.spot_warning(i) for i in warned])
    # 10% of 20: two recommended instances' tasks move at once; spot warnings are never held
    scaler = _scaler(local_aws, queues.url, disruption_budget=0.1, undrain_after=60.0)
    harness = Ecs(local_aws)
    draining_with_tasks: list[int] = []
    looks = 0

    def all_drained_once() -> bool:
        nonlocal looks
        looks += 1
        states = _states(local_aws)
        moving = [i for i in burst if states[i] == "DRAINING" and _tasks_on(local_aws, i)]
        draining_with_tasks.append(len(moving))
        if looks % 10 == 0:  # ECS moves the tasks of draining instances, now and then
            harness.tick()
        return all(states[i] == "DRAINING" for i in [*burst, *warned])

    assert await run_until(scaler, all_drained_once, limit=60), outcomes(scaler.metrics)
    assert max(draining_with_tasks) == 2, draining_with_tasks
    assert outcomes(scaler.metrics) == {"handled": 11}


def _tasks_on(aws: testbed.LocalAws, iid: str) -> int:
    ecs = aws.client("ecs")
    arns = ecs.list_container_instances(cluster="prod")["containerInstanceArns"]
    described = ecs.describe_container_instances(cluster="prod", containerInstances=arns)
    ci = next(c for c in described["containerInstances"] if c["ec2InstanceId"] == iid)
    return int(ci["runningTasksCount"]) + int(ci["pendingTasksCount"])


# -- the capacity side: a drain that is undone, or stale, stops blocking the return to spot ------


def _with_fallback(aws: testbed.LocalAws) -> None:
    """Spot and on-demand groups, services on the first instances, an on-demand fallback."""
    nodes = [testbed.Node(i, a, "us-east-1a") for i, a in _arns(aws).items()]
    _group(aws, "spot-asg")
    _group(aws, "od-asg")
    _services(aws, nodes)
    _fallback_instance(aws)


def _arns(aws: testbed.LocalAws) -> dict[str, str]:
    ecs = aws.client("ecs")
    arns = ecs.list_container_instances(cluster="prod")["containerInstanceArns"]
    described = ecs.describe_container_instances(cluster="prod", containerInstances=arns)
    return {c["ec2InstanceId"]: c["containerInstanceArn"] for c in described["containerInstances"]}


def _od_desired(aws: testbed.LocalAws) -> int:
    group = aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["od-asg"])
    return int(group["AutoScalingGroups"][0]["DesiredCapacity"])


def _capacity(**extra: Any) -> dict[str, Any]:
    return {
        "spot_pools": "spot-asg",
        "on_demand_pools": "od-asg",
        "capacity_interval": 0.3,
        "headroom": 0.0,
        "revert_after": 0.1,
        **extra,
    }


async def test_the_return_to_spot_proceeds_once_recommendation_drains_are_undone(
    local_aws: testbed.LocalAws,
) -> None:
    members, queues = _cluster(local_aws, 6)
    _with_fallback(local_aws)
    burst = members[2:6]
    _send(local_aws, queues.url, [testbed.rebalance_recommendation(i) for i in burst])
    # no pools: drains only; all four must be DRAINING before the first is undone
    first = _scaler(local_aws, queues.url, undrain_after=10.0)

    def drained() -> bool:
        states = _states(local_aws)
        return all(states[i] == "DRAINING" for i in burst)

    assert await run_until(first, drained, limit=30), outcomes(first.metrics)
    # a restart: the new process reads which drains are its own from their marks
    scaler = _scaler(local_aws, queues.url, undrain_after=10.0, **_capacity())
    released_while_drained = False

    def given_back() -> bool:
        nonlocal released_while_drained
        states = _states(local_aws)
        given = _od_desired(local_aws) == 0
        if given and any(states[i] == "DRAINING" for i in burst):
            released_while_drained = True
        return given

    assert await run_until(scaler, given_back, limit=60), outcomes(scaler.metrics)
    assert not released_while_drained  # the drains held the return to spot back until undone
    states = _states(local_aws)
    assert all(states[i] == "ACTIVE" for i in burst)
    text = scaler.metrics.render().decode()
    assert 'scaler_reactivated_instances_total{reason="rebalance_recommendation"} 4.0' in text


async def test_a_stale_hand_drain_stops_blocking_the_return_to_spot(
    local_aws: testbed.LocalAws,
) -> None:
    members, queues = _cluster(local_aws, 4)
    _with_fallback(local_aws)
    ecs = local_aws.client("ecs")
    ecs.update_container_instances_state(
        cluster="prod", containerInstances=[_arns(local_aws)[members[3]]], status="DRAINING"
    )
    scaler = _scaler(local_aws, queues.url, drain_timeout=1.0, **_capacity())

    def given_back() -> bool:
        return _od_desired(local_aws) == 0

    assert await run_until(scaler, given_back, limit=40), outcomes(scaler.metrics)
    assert _states(local_aws)[members[3]] == "DRAINING"  # left as its owner set it
    assert "scaler_stale_draining_instances 1.0" in scaler.metrics.render().decode()
