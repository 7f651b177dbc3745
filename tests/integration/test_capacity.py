"""Capacity top-up against moto over HTTP: groups sized, overflow scaled, bad pools refused."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from scaler import testbed
from scaler.demo import aws_calls, run_until
from scaler.settings import ConfigError
from tests.integration.ecs_harness import Ecs
from tests.integration.faults import MIN_SIZE_MESSAGE, DryGroups, FailFirst, Mutations, chain
from tests.integration.helpers import (
    SteppedClock,
    lease_table,
    outcomes,
    scaler_for,
    settings_for,
)


def _group(aws: testbed.LocalAws, name: str, tags: list[dict[str, Any]] | None = None) -> None:
    ec2, asg = aws.client("ec2"), aws.client("autoscaling")
    template = f"{name}-lt"
    ec2.create_launch_template(
        LaunchTemplateName=template,
        LaunchTemplateData={"ImageId": testbed._ecs_ami(ec2), "InstanceType": "m5.large"},
    )
    asg.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateName": template},
        MinSize=0,
        MaxSize=10,
        DesiredCapacity=0,
        AvailabilityZones=["us-east-1a"],
        Tags=[
            {
                **t,
                "ResourceId": name,
                "ResourceType": "auto-scaling-group",
                "PropagateAtLaunch": False,
            }
            for t in (tags or [])
        ],
    )


def _services(aws: testbed.LocalAws, nodes: list[testbed.Node], fargate_ok: bool = True) -> None:
    testbed.manual_task_states(aws)
    ecs = aws.client("ecs")
    ecs.register_task_definition(
        family="web",
        containerDefinitions=[{"name": "app", "image": "x", "cpu": 1024, "memory": 1024}],
    )
    extra: dict[str, Any] = (
        {
            "requiresCompatibilities": ["FARGATE"],
            "networkMode": "awsvpc",
            "cpu": "1024",
            "memory": "2048",
        }
        if fargate_ok
        else {}
    )
    ecs.register_task_definition(
        family="web-fargate",
        containerDefinitions=[{"name": "app", "image": "x", "memory": 1024}],
        **extra,
    )
    ecs.create_service(cluster="prod", serviceName="web", taskDefinition="web", desiredCount=4)
    ecs.create_service(cluster="prod", serviceName="api", taskDefinition="web", desiredCount=2)
    ecs.create_service(
        cluster="prod", serviceName="web-fargate", taskDefinition="web-fargate", desiredCount=0
    )
    for node in nodes[:2]:  # web and api tasks run on the first two instances
        for group, count in (("service:web", 2), ("service:api", 1)):
            ecs.start_task(
                cluster="prod",
                taskDefinition="web",
                group=group,
                containerInstances=[node.container_instance_arn] * count,
            )


def _settings(queue_url: str, **extra: Any) -> Any:
    values: dict[str, Any] = {
        "spot_pools": "spot-asg",
        "on_demand_pools": "od-asg",
        "overflow_services": "web=web-fargate",
        "capacity_interval": 0.5,
        "headroom": 0.0,
    }
    return settings_for(queue_url, **{**values, **extra})


async def test_warnings_top_up_capacity_and_fill_the_overflow(local_aws: testbed.LocalAws) -> None:
    nodes = testbed.create_cluster(local_aws, "prod", size=3)
    queues = testbed.create_queues(local_aws, "events")
    _group(local_aws, "spot-asg")
    _group(local_aws, "od-asg")
    _services(local_aws, nodes)
    warnings = [json.dumps(testbed.spot_warning(n.instance_id)) for n in nodes[:2]]
    testbed.send_raw(local_aws, queues.url, warnings)
    # web's 4 tasks go to the Fargate companion; api's 2 fit on the third instance, but not
    # with three quarters of it kept free: the spot group grows
    scaler = scaler_for(local_aws, _settings(queues.url, headroom=0.75))
    asg, ecs = local_aws.client("autoscaling"), local_aws.client("ecs")

    def topped_up() -> bool:
        groups = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["spot-asg"])
        overflow = ecs.describe_services(cluster="prod", services=["web-fargate"])["services"][0]
        return (
            outcomes(scaler.metrics).get("handled") == 2
            and groups["AutoScalingGroups"][0]["DesiredCapacity"] > 0
            and overflow["desiredCount"] == 4
        )

    assert await run_until(scaler, topped_up, limit=30)
    calls = aws_calls(scaler.metrics)
    assert calls["autoscaling:SetDesiredCapacity"] >= 1
    assert "autoscaling:TerminateInstanceInAutoScalingGroup" not in calls
    text = scaler.metrics.render().decode()
    assert 'scaler_overflow_tasks{service="web-fargate"} 4.0' in text
    added = groups_desired(asg, "spot-asg")
    assert f'scaler_capacity_changes_total{{change="add",reason="interruption"}} {added}.0' in text
    # the on-demand fallback was not needed: the spot group could grow
    od = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["od-asg"])
    assert od["AutoScalingGroups"][0]["DesiredCapacity"] == 0


async def test_groups_owned_by_ecs_managed_scaling_are_refused(local_aws: testbed.LocalAws) -> None:
    nodes = testbed.create_cluster(local_aws, "prod", size=1)
    queues = testbed.create_queues(local_aws, "events")
    _group(local_aws, "spot-asg", tags=[{"Key": "AmazonECSManaged", "Value": ""}])
    _services(local_aws, nodes)
    scaler = scaler_for(local_aws, _settings(queues.url))
    with pytest.raises(ConfigError) as caught:
        await run_until(scaler, lambda: False, limit=10)
    problems = caught.value.problems
    assert any(
        p.startswith("SCALER_SPOT_POOLS: 'spot-asg' is owned by ECS managed") for p in problems
    )
    assert "SCALER_ON_DEMAND_POOLS: Auto Scaling group 'od-asg' not found" in problems


async def test_an_overflow_companion_that_cannot_run_on_fargate_is_refused(
    local_aws: testbed.LocalAws,
) -> None:
    nodes = testbed.create_cluster(local_aws, "prod", size=1)
    queues = testbed.create_queues(local_aws, "events")
    _group(local_aws, "spot-asg")
    _group(local_aws, "od-asg")
    _services(local_aws, nodes, fargate_ok=False)
    scaler = scaler_for(local_aws, _settings(queues.url))
    with pytest.raises(ConfigError) as caught:
        await run_until(scaler, lambda: False, limit=10)
    assert caught.value.problems == [
        "SCALER_OVERFLOW_SERVICES: 'web-fargate' cannot run on Fargate: requiresCompatibilities "
        "does not include FARGATE"
    ]


def groups_desired(asg: Any, name: str) -> int:
    group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])
    return int(group["AutoScalingGroups"][0]["DesiredCapacity"])


def _fallback_instance(aws: testbed.LocalAws) -> testbed.Node:
    """An on-demand fallback instance, launched by its group and registered in the cluster."""
    asg = aws.client("autoscaling")
    asg.set_desired_capacity(AutoScalingGroupName="od-asg", DesiredCapacity=1)
    group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["od-asg"])
    iid = group["AutoScalingGroups"][0]["Instances"][0]["InstanceId"]
    return testbed.register_instances(aws, "prod", [iid], "us-east-1a")[0]


async def test_quiet_spot_gives_the_on_demand_fallback_back(local_aws: testbed.LocalAws) -> None:
    nodes = testbed.create_cluster(local_aws, "prod", size=3)
    queues = testbed.create_queues(local_aws, "events")
    _group(local_aws, "spot-asg")
    _group(local_aws, "od-asg")
    _services(local_aws, nodes)
    fallback = _fallback_instance(local_aws)
    scaler = scaler_for(local_aws, _settings(queues.url, revert_after=0.1))
    asg = local_aws.client("autoscaling")

    def given_back() -> bool:
        group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["od-asg"])
        return bool(group["AutoScalingGroups"][0]["DesiredCapacity"] == 0)

    assert await run_until(scaler, given_back, limit=30)
    assert testbed.container_instance_states(local_aws, "prod")[fallback.instance_id] == "DRAINING"
    calls = aws_calls(scaler.metrics)
    assert calls["autoscaling:TerminateInstanceInAutoScalingGroup"] == 1
    text = scaler.metrics.render().decode()
    assert "scaler_reverts_total 1.0" in text
    assert 'scaler_capacity_changes_total{change="remove",reason="return_to_spot"} 1.0' in text


async def test_dry_run_plans_capacity_but_changes_nothing(local_aws: testbed.LocalAws) -> None:
    nodes = testbed.create_cluster(local_aws, "prod", size=3)
    queues = testbed.create_queues(local_aws, "events")
    _group(local_aws, "spot-asg")
    _group(local_aws, "od-asg")
    _services(local_aws, nodes)
    testbed.send_raw(
        local_aws, queues.url, [json.dumps(testbed.spot_warning(n.instance_id)) for n in nodes[:2]]
    )
    scaler = scaler_for(local_aws, _settings(queues.url, headroom=0.75, dry_run=True))
    text = ""

    def planned() -> bool:
        nonlocal text
        text = scaler.metrics.render().decode()
        return 'action="overflow",outcome="dry_run"' in text and 'action="set_desired"' in text

    assert await run_until(scaler, planned, limit=30)
    assert 'outcome="dry_run",reason="spot-asg"' in text
    calls = aws_calls(scaler.metrics)
    for write in ("SetDesiredCapacity", "UpdateService", "UpdateContainerInstancesState"):
        assert not any(k.endswith(f":{write}") for k in calls), write
    overflow = local_aws.client("ecs").describe_services(cluster="prod", services=["web-fargate"])
    assert overflow["services"][0]["desiredCount"] == 0


async def test_an_on_demand_instance_drained_by_hand_is_never_terminated(
    local_aws: testbed.LocalAws,
) -> None:
    """The return to spot terminates only what it tagged for retirement itself: an on-demand
    instance someone else drained (empty, untagged) stays."""
    nodes = testbed.create_cluster(local_aws, "prod", size=3)
    queues = testbed.create_queues(local_aws, "events")
    _group(local_aws, "spot-asg")
    _group(local_aws, "od-asg")
    _services(local_aws, nodes)
    by_hand = _fallback_instance(local_aws)
    local_aws.client("ecs").update_container_instances_state(
        cluster="prod", containerInstances=[str(by_hand.container_instance_arn)], status="DRAINING"
    )
    scaler = scaler_for(local_aws, _settings(queues.url, revert_after=0.1))
    asg = local_aws.client("autoscaling")
    assert not await run_until(scaler, lambda: groups_desired(asg, "od-asg") == 0, limit=4)
    calls = aws_calls(scaler.metrics)
    assert calls["ecs:DescribeContainerInstances"], "the cluster was read"
    assert "autoscaling:TerminateInstanceInAutoScalingGroup" not in calls
    assert "scaler_reverts_total 0.0" in scaler.metrics.render().decode()


async def test_the_return_to_spot_waits_for_tasks_still_draining_connections(
    local_aws: testbed.LocalAws,
) -> None:
    """A task moved off the fallback instance is DEACTIVATING for a while (out of ECS's
    runningTasksCount): the instance is terminated only once it has stopped."""
    nodes = testbed.create_cluster(local_aws, "prod", size=3)
    queues = testbed.create_queues(local_aws, "events")
    _group(local_aws, "spot-asg")
    _group(local_aws, "od-asg")
    _services(local_aws, nodes)
    fallback = _fallback_instance(local_aws)
    local_aws.client("ecs").start_task(
        cluster="prod",
        taskDefinition="web",
        group="service:api",
        containerInstances=[str(fallback.container_instance_arn)],
    )
    scaler = scaler_for(local_aws, _settings(queues.url, revert_after=0.1))
    asg = local_aws.client("autoscaling")
    ecs = Ecs(local_aws, deregistration_delay=1.0)

    def given_back() -> bool:
        ecs.tick()
        return groups_desired(asg, "od-asg") == 0

    assert await run_until(scaler, given_back, limit=30)
    assert ecs.cut_short == []
    assert "scaler_reverts_total 1.0" in scaler.metrics.render().decode()


async def test_a_leader_that_loses_its_lease_mid_cycle_changes_nothing_more(
    local_aws: testbed.LocalAws,
) -> None:
    """The lease is checked before every call that changes something, not once a cycle: once
    it can have passed to another replica, no further change reaches AWS."""
    nodes = testbed.create_cluster(local_aws, "prod", size=3)
    queues = testbed.create_queues(local_aws, "events")
    _group(local_aws, "spot-asg")
    _group(local_aws, "od-asg")
    _services(local_aws, nodes)
    asg = local_aws.client("autoscaling")
    asg.update_auto_scaling_group(AutoScalingGroupName="od-asg", DesiredCapacity=2)
    group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["od-asg"])
    ids = [i["InstanceId"] for i in group["AutoScalingGroups"][0]["Instances"]]
    testbed.register_instances(local_aws, "prod", ids, "us-east-1a")
    dynamodb = local_aws.client("dynamodb")
    lease_table(local_aws, "lease")
    clock = SteppedClock()

    def taken_over() -> None:
        """The process stalls past its lease; another replica takes the lease meanwhile."""
        clock.step(60.0)
        item = {"name": {"S": "prod/leader"}, "holder": {"S": "other"}, "term": {"N": "9"}}
        dynamodb.put_item(TableName="lease", Item={**item, "expires_at": {"N": "9e12"}})

    writes = Mutations(on_first=taken_over)
    settings = _settings(
        queues.url, revert_after=0.1, revert_batch=2, lease_table="lease", lease_duration=30
    )
    scaler = scaler_for(local_aws, settings, clock=clock, instrument=writes)
    await run_until(scaler, lambda: len(writes.calls) > 1, limit=4)
    assert len(writes.calls) == 1, writes.calls


async def test_the_return_to_spot_keeps_a_group_at_its_min_size(
    local_aws: testbed.LocalAws,
) -> None:
    """The fallback group's MinSize is 1: its one instance is neither drained nor terminated."""
    nodes = testbed.create_cluster(local_aws, "prod", size=3)
    queues = testbed.create_queues(local_aws, "events")
    _group(local_aws, "spot-asg")
    _group(local_aws, "od-asg")
    _services(local_aws, nodes)
    fallback = _fallback_instance(local_aws)
    asg = local_aws.client("autoscaling")
    asg.update_auto_scaling_group(AutoScalingGroupName="od-asg", MinSize=1)
    scaler = scaler_for(local_aws, _settings(queues.url, revert_after=0.1))
    assert not await run_until(scaler, lambda: groups_desired(asg, "od-asg") == 0, limit=4)
    calls = aws_calls(scaler.metrics)
    assert calls["autoscaling:DescribeAutoScalingGroups"], "the groups were read"
    for write in ("CreateTags", "UpdateContainerInstancesState"):
        assert not any(k.endswith(f":{write}") for k in calls), write
    assert "autoscaling:TerminateInstanceInAutoScalingGroup" not in calls
    assert testbed.container_instance_states(local_aws, "prod")[fallback.instance_id] == "ACTIVE"


async def test_a_refused_terminate_is_not_retried_every_cycle(
    local_aws: testbed.LocalAws,
) -> None:
    """Auto Scaling refuses the terminate (its MinSize raised meanwhile, say): the scaler tries
    again only after a cooldown, not at every cycle."""
    nodes = testbed.create_cluster(local_aws, "prod", size=3)
    queues = testbed.create_queues(local_aws, "events")
    _group(local_aws, "spot-asg")
    _group(local_aws, "od-asg")
    _services(local_aws, nodes)
    _fallback_instance(local_aws)
    refuse = FailFirst(
        "autoscaling",
        "TerminateInstanceInAutoScalingGroup",
        times=1000,
        code="ValidationError",
        message=MIN_SIZE_MESSAGE.format(min=1),
    )
    settings = _settings(queues.url, revert_after=0.1, capacity_interval=0.2)
    scaler = scaler_for(local_aws, settings, instrument=refuse)
    assert not await run_until(scaler, lambda: refuse.failed > 1, limit=4)
    assert refuse.failed == 1


class SpotStorm:
    """Interrupts the spot group's instances one at a time, as a storm would: a spot warning
    for an instance running a task, then, once the scaler has launched a replacement and the
    task has moved to it, EC2 reclaims the instance (the group replacing it or not)."""

    def __init__(self, aws: testbed.LocalAws, queue_url: str, rounds: int, replace: bool) -> None:
        self.aws, self.queue_url, self.rounds, self.replace = aws, queue_url, rounds, replace
        self.ecs = Ecs(aws)
        self.asg = aws.client("autoscaling")
        self.base = groups_desired(self.asg, "spot-asg")
        self.victim: str | None = None
        self.interrupted = 0
        self.highest = self.base
        self.ecs.registered = set(self._live())  # registered with the cluster already

    def _live(self) -> list[str]:
        group = self.asg.describe_auto_scaling_groups(AutoScalingGroupNames=["spot-asg"])
        return [i["InstanceId"] for i in group["AutoScalingGroups"][0]["Instances"]]

    def _busy(self, iid: str) -> bool:
        states = testbed.container_instance_states(self.aws, "prod")
        if states.get(iid) != "ACTIVE":
            return False
        arns = self.ecs.ecs.list_container_instances(cluster="prod")["containerInstanceArns"]
        cis = self.ecs.ecs.describe_container_instances(cluster="prod", containerInstances=arns)
        ci = next(c for c in cis["containerInstances"] if c["ec2InstanceId"] == iid)
        return bool(self.ecs.tasks_on(ci["containerInstanceArn"]))

    def step(self) -> bool:
        """One look at the world; True once every round is over and the group is back at its
        size before the storm, nothing draining."""
        desired = groups_desired(self.asg, "spot-asg")
        self.highest = max(self.highest, desired)
        if self.victim is None:
            self.ecs.tick(("spot-asg",))
            states = testbed.container_instance_states(self.aws, "prod")
            if desired != self.base or "DRAINING" in states.values():
                return False
            if self.interrupted == self.rounds:
                return True
            self.victim = next(i for i in self._live() if self._busy(i))
            warning = json.dumps(testbed.spot_warning(self.victim))
            testbed.send_raw(self.aws, self.queue_url, [warning])
            return False
        if desired <= self.base - (self.victim not in self._live()):
            return False  # the scaler has not launched a replacement yet
        self.ecs.tick(("spot-asg",))
        if self.ecs.tasks_on(self._arn(self.victim)):
            return False
        self.ecs.interrupt(self.victim, replace=self.replace)
        self.ecs.tick(("spot-asg",))
        self.victim, self.interrupted = None, self.interrupted + 1
        return False

    def _arn(self, iid: str) -> str:
        arns = self.ecs.ecs.list_container_instances(cluster="prod")["containerInstanceArns"]
        cis = self.ecs.ecs.describe_container_instances(cluster="prod", containerInstances=arns)
        return str(
            next(c for c in cis["containerInstances"] if c["ec2InstanceId"] == iid)[
                "containerInstanceArn"
            ]
        )


def _storm_cluster(aws: testbed.LocalAws) -> None:
    """A spot group of two instances, each full with one task of service web."""
    aws.client("ecs").create_cluster(clusterName="prod")
    _group(aws, "spot-asg")
    asg = aws.client("autoscaling")
    asg.set_desired_capacity(AutoScalingGroupName="spot-asg", DesiredCapacity=2)
    group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["spot-asg"])
    ids = [i["InstanceId"] for i in group["AutoScalingGroups"][0]["Instances"]]
    nodes = testbed.register_instances(aws, "prod", ids, "us-east-1a")
    testbed.manual_task_states(aws)
    ecs = aws.client("ecs")
    ecs.register_task_definition(
        family="web",
        containerDefinitions=[{"name": "app", "image": "x", "cpu": 1024, "memory": 7000}],
    )
    ecs.create_service(cluster="prod", serviceName="web", taskDefinition="web", desiredCount=2)
    for node in nodes:
        ecs.start_task(
            cluster="prod",
            taskDefinition="web",
            group="service:web",
            containerInstances=[str(node.container_instance_arn)],
        )


@pytest.mark.parametrize("replace", [True, False], ids=["group-replaces", "group-does-not"])
async def test_spot_interruptions_leave_the_desired_capacity_at_the_plans_target(
    local_aws: testbed.LocalAws, replace: bool
) -> None:
    """Each interruption is replaced ahead of time by the scaler; a group that replaces the lost
    instance by itself as well does not leave one instance too many behind, for good."""
    _storm_cluster(local_aws)
    queues = testbed.create_queues(local_aws, "events")
    settings = settings_for(
        queues.url, spot_pools="spot-asg", capacity_interval=0.3, headroom=0.0, pool_cooldown=0.1
    )
    scaler = scaler_for(local_aws, settings)
    storm = SpotStorm(local_aws, queues.url, rounds=3, replace=replace)

    def over() -> bool:
        if scaler.capacity is not None and hasattr(scaler.capacity, "replacements"):
            scaler.capacity.replacements.grace = 0.0  # the group's own replacement is at once
        return storm.step()

    assert await run_until(scaler, over, limit=60), (storm.interrupted, storm.highest)
    assert groups_desired(local_aws.client("autoscaling"), "spot-asg") == 2
    assert storm.highest == 3  # one replacement at a time, launched ahead of the interruption
    text = scaler.metrics.render().decode()
    assert 'scaler_capacity_changes_total{change="remove",reason="surplus"} 3.0' in text


async def test_a_refused_desired_capacity_is_not_asked_every_cycle(
    local_aws: testbed.LocalAws,
) -> None:
    """Auto Scaling refuses the new desired capacity (its MaxSize lowered meanwhile, say): the
    scaler asks again only after a cooldown, not at every cycle."""
    nodes = testbed.create_cluster(local_aws, "prod", size=3)
    queues = testbed.create_queues(local_aws, "events")
    _group(local_aws, "spot-asg")
    _group(local_aws, "od-asg")
    _services(local_aws, nodes)
    warnings = [json.dumps(testbed.spot_warning(n.instance_id)) for n in nodes[:2]]
    testbed.send_raw(local_aws, queues.url, warnings)
    refuse = FailFirst(
        "autoscaling",
        "SetDesiredCapacity",
        times=1000,
        code="ValidationError",
        message="New SetDesiredCapacity value 3 is above max value 2 for the AutoScalingGroup.",
    )
    settings = _settings(queues.url, headroom=0.75, capacity_interval=0.2, pool_cooldown=0.1)
    scaler = scaler_for(local_aws, settings, instrument=refuse)
    assert not await run_until(scaler, lambda: refuse.failed > 2, limit=5)
    assert refuse.failed == 1


def _two_az_fallback(aws: testbed.LocalAws) -> dict[str, str]:
    """An on-demand group in two AZs: two instances in us-east-1a running a task each, an empty
    one in us-east-1b (the emptiest, given back first). Instance id -> AZ."""
    azs = {"us-east-1a": 2, "us-east-1b": 1}
    ids = {i: az for az, n in azs.items() for i in testbed.launch_instances(aws, n, az)}
    testbed.create_group(aws, "od-asg", "m5.large", list(azs), instance_ids=list(ids))
    ecs = aws.client("ecs")
    for iid, az in ids.items():
        node = testbed.register_instances(aws, "prod", [iid], az)[0]
        if az == "us-east-1a":
            ecs.start_task(
                cluster="prod",
                taskDefinition="web",
                group="service:api",
                containerInstances=[str(node.container_instance_arn)],
            )
    return ids


@pytest.mark.parametrize("suspended", [False, True], ids=["az-rebalance", "suspended"])
async def test_the_return_to_spot_keeps_a_groups_azs_balanced(
    local_aws: testbed.LocalAws, suspended: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Giving back the empty instance of the short AZ would leave the group's AZs two apart,
    and Auto Scaling's AZRebalance would then terminate an instance without a drain: unless
    AZRebalance is suspended, an instance of the long AZ goes instead, and the group is named
    at start with the command that suspends it."""
    nodes = testbed.create_cluster(local_aws, "prod", size=3)
    queues = testbed.create_queues(local_aws, "events")
    _group(local_aws, "spot-asg")
    _services(local_aws, nodes)
    ids = _two_az_fallback(local_aws)
    if suspended:
        local_aws.client("autoscaling").suspend_processes(
            AutoScalingGroupName="od-asg", ScalingProcesses=["AZRebalance"]
        )
    settings = _settings(queues.url, revert_after=0.1, revert_batch=2, capacity_interval=0.2)
    scaler = scaler_for(local_aws, settings)

    def draining() -> set[str]:
        states = testbed.container_instance_states(local_aws, "prod")
        return {i for i in ids if states[i] == "DRAINING"}

    assert await run_until(scaler, lambda: len(draining()) == 2, limit=6) == suspended
    short = next(i for i, az in ids.items() if az == "us-east-1b")
    command = "suspend-processes --auto-scaling-group-name od-asg --scaling-processes AZRebalance"
    if suspended:
        assert short in draining()
        assert command not in caplog.text
    else:
        assert draining() and short not in draining()
        assert command in caplog.text


async def test_surplus_trim_keeps_a_group_at_its_min_size(local_aws: testbed.LocalAws) -> None:
    """Two surplus instances remembered in a group of three empty ones at MinSize two: the trim
    drains one, and counts it before judging the next, which the group cannot spare."""
    local_aws.client("ecs").create_cluster(clusterName="prod")
    _group(local_aws, "spot-asg")
    asg = local_aws.client("autoscaling")
    asg.update_auto_scaling_group(AutoScalingGroupName="spot-asg", MinSize=2, DesiredCapacity=3)
    group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["spot-asg"])
    ids = [i["InstanceId"] for i in group["AutoScalingGroups"][0]["Instances"]]
    testbed.register_instances(local_aws, "prod", ids, "us-east-1a")
    queues = testbed.create_queues(local_aws, "events")
    settings = settings_for(queues.url, spot_pools="spot-asg", capacity_interval=0.3, headroom=0.0)
    scaler = scaler_for(local_aws, settings)
    seeded: list[int] = []

    def later() -> bool:
        capacity = scaler.capacity
        if capacity is None or not hasattr(capacity, "replacements"):
            return False
        if not seeded:
            capacity.replacements.surplus["spot-asg"] = [time.time()] * 2
            seeded.append(capacity.cycles)
        return bool(capacity.cycles >= seeded[0] + 2)

    assert await run_until(scaler, later, limit=20)
    states = testbed.container_instance_states(local_aws, "prod")
    assert list(states.values()).count("DRAINING") == 1, states


def _two_spot_groups_warned(aws: testbed.LocalAws) -> testbed.Queues:
    """Two spot groups and an on-demand group, services on the cluster's first two instances,
    and a spot warning for each of those on the queue."""
    nodes = testbed.create_cluster(aws, "prod", size=3)
    queues = testbed.create_queues(aws, "events")
    for name in ("spot-a", "spot-b", "od-asg"):
        _group(aws, name)
    _services(aws, nodes)
    warnings = [json.dumps(testbed.spot_warning(n.instance_id)) for n in nodes[:2]]
    testbed.send_raw(aws, queues.url, warnings)
    return queues


async def test_spot_groups_without_capacity_fall_back_to_on_demand_at_once(
    local_aws: testbed.LocalAws,
) -> None:
    """Every spot group takes the new desired capacity but launches nothing, its scaling
    activities saying why: the scaler reads them and turns to the on-demand group within
    seconds, not after the launch grace of minutes."""
    queues = _two_spot_groups_warned(local_aws)
    dry = DryGroups(frozenset({"spot-a", "spot-b"}))
    settings = _settings(
        queues.url, spot_pools="spot-a,spot-b", headroom=0.75, capacity_interval=0.3
    )
    scaler = scaler_for(local_aws, settings, instrument=dry)
    asg = local_aws.client("autoscaling")
    assert await run_until(scaler, lambda: groups_desired(asg, "od-asg") > 0, limit=15), (
        dry.desired,
        dry.described,
    )
    assert dry.desired, "spot was asked first"
    assert dry.described >= 1


async def test_unreadable_scaling_activities_are_warned_about_once(
    local_aws: testbed.LocalAws, caplog: pytest.LogCaptureFixture
) -> None:
    """A task role without DescribeScalingActivities: one warning naming the action, no read
    after it; a group that cannot launch is then found out by the launch grace alone."""
    queues = _two_spot_groups_warned(local_aws)
    denied = FailFirst(
        "autoscaling", "DescribeScalingActivities", times=1000, code="AccessDenied", status=403
    )
    dry = DryGroups(frozenset({"spot-a", "spot-b"}))
    settings = _settings(
        queues.url, spot_pools="spot-a,spot-b", headroom=0.75, capacity_interval=0.3
    )
    scaler = scaler_for(local_aws, settings, instrument=chain(denied, dry))
    asg = local_aws.client("autoscaling")
    assert not await run_until(scaler, lambda: groups_desired(asg, "od-asg") > 0, limit=4)
    assert dry.desired, "spot was asked"
    assert denied.failed == 1
    said = [r.getMessage() for r in caplog.records if "DescribeScalingActivities" in r.getMessage()]
    assert len(said) == 1


@pytest.mark.parametrize("after", [0.4, 0.0])
async def test_idle_instances_are_given_back_down_to_min_size(
    local_aws: testbed.LocalAws, after: float
) -> None:
    """Four instances of a group at MinSize one, none running a service task, the first a
    standalone task: with ``SCALER_SCALE_IN_AFTER`` the other three are drained and terminated
    with the desired capacity lowered; the first is kept. With 0, all four stay."""
    local_aws.client("ecs").create_cluster(clusterName="prod")
    _group(local_aws, "spot-asg")
    asg = local_aws.client("autoscaling")
    asg.update_auto_scaling_group(AutoScalingGroupName="spot-asg", MinSize=1, DesiredCapacity=4)
    group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["spot-asg"])
    ids = sorted(i["InstanceId"] for i in group["AutoScalingGroups"][0]["Instances"])
    nodes = testbed.register_instances(local_aws, "prod", ids, "us-east-1a")
    testbed.manual_task_states(local_aws)
    ecs = local_aws.client("ecs")
    ecs.register_task_definition(
        family="batch",
        containerDefinitions=[{"name": "app", "image": "x", "cpu": 256, "memory": 256}],
    )
    ecs.start_task(
        cluster="prod", taskDefinition="batch", containerInstances=[nodes[0].container_instance_arn]
    )
    queues = testbed.create_queues(local_aws, "events")
    settings = settings_for(
        queues.url,
        spot_pools="spot-asg",
        capacity_interval=0.2,
        headroom=0.0,
        scale_in_after=after,
    )
    scaler = scaler_for(local_aws, settings)
    given_back = await run_until(scaler, lambda: groups_desired(asg, "spot-asg") == 1, limit=8)
    states = testbed.container_instance_states(local_aws, "prod")
    if after:
        assert given_back, states
        assert states[ids[0]] == "ACTIVE"
        assert 'scaler_capacity_changes_total{change="remove",reason="idle"}' in (
            scaler.metrics.render().decode()
        )
    else:
        assert not given_back
        assert set(states.values()) == {"ACTIVE"}, states
