"""Simulated Auto Scaling behind real aiobotocore clients, in virtual time: groups keep their
desired capacity, refuse what AWS refuses, rebalance AZs and hold leaving members for their
lifecycle hooks, as the scaler's adapters meet them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from scaler.aws.activities import LaunchFailures
from scaler.aws.lifecycle import AutoScalingLifecycle, ClusterGroups
from scaler.plan.drain import LifecycleAction
from scaler.sim.cloud.asg import Group, Hook
from scaler.sim.cloud.vloop import LoopClock
from tests.sim.cloud.simulated import Account, in_account

AZS = ("us-east-1a", "us-east-1b")


def _group(
    account: Account,
    desired: int = 2,
    *,
    min_size: int = 0,
    hooks: Sequence[Hook] = (),
    suspended: Sequence[str] = (),
) -> Group:
    account.ec2.template("web", "m5.large", "ami-1")
    return account.autoscaling.group(
        "web",
        "web",
        min_size=min_size,
        max_size=6,
        desired=desired,
        azs=AZS,
        instance_types=["m5.large", "c5.large"],
        tags={"scaler:cluster": "prod"},
        hooks=hooks,
        suspended=suspended,
    )


async def _members(account: Account) -> list[dict[str, Any]]:
    reply = await account.aws.autoscaling.describe_auto_scaling_groups(
        AutoScalingGroupNames=["web"]
    )
    return list(reply["AutoScalingGroups"][0]["Instances"])


def _states(members: list[dict[str, Any]]) -> list[str]:
    return sorted(m["LifecycleState"] for m in members)


def test_a_group_launches_its_desired_capacity_after_a_short_delay() -> None:
    async def body(account: Account) -> tuple[list[str], list[str], dict[str, Any]]:
        _group(account)
        early = _states(await _members(account))
        await asyncio.sleep(11)
        pending = _states(await _members(account))
        await asyncio.sleep(200)
        reply = await account.aws.autoscaling.describe_auto_scaling_groups(
            AutoScalingGroupNames=["web", "unknown"]
        )
        return early, pending, reply

    early, pending, reply = in_account(body)
    assert (early, pending) == ([], ["Pending", "Pending"])
    [group] = reply["AutoScalingGroups"]
    assert isinstance(group["CreatedTime"], datetime)
    assert group["MixedInstancesPolicy"]["LaunchTemplate"]["Overrides"][0] == {
        "InstanceType": "m5.large"
    }
    assert {t["Key"]: t["Value"] for t in group["Tags"]} == {"scaler:cluster": "prod"}
    members = group["Instances"]
    assert {m["AvailabilityZone"] for m in members} == set(AZS)  # one in each
    assert [m["LifecycleState"] for m in members] == ["InService", "InService"]
    first = members[0]
    assert first["HealthStatus"] == "Healthy" and first["ProtectedFromScaleIn"] is False
    assert first["InstanceType"] == "m5.large"
    assert first["LaunchTemplate"]["Version"] == "1"


def test_a_member_lost_out_of_band_is_replaced_by_the_group() -> None:
    async def body(account: Account) -> tuple[int, int, int]:
        group = _group(account, 3)
        await asyncio.sleep(200)
        lost = next(iter(group.members.values())).instance
        account.world.terminate(lost)  # a spot interruption
        await asyncio.sleep(31)
        members = await _members(account)
        return len(members), group.desired, len(account.world.live())

    assert in_account(body) == (3, 3, 3)


def test_desired_capacity_outside_min_and_max_is_refused_as_aws_says() -> None:
    async def body(account: Account) -> list[str]:
        _group(account, min_size=1)
        messages = []
        for desired in (7, 0):
            with pytest.raises(ClientError) as caught:
                await account.aws.autoscaling.set_desired_capacity(
                    AutoScalingGroupName="web", DesiredCapacity=desired, HonorCooldown=False
                )
            assert caught.value.response["Error"]["Code"] == "ValidationError"
            messages.append(str(caught.value.response["Error"]["Message"]))
        return messages

    assert in_account(body) == [
        "New SetDesiredCapacity value 7 is above max value 6 for the AutoScalingGroup.",
        "New SetDesiredCapacity value 0 is below min value 1 for the AutoScalingGroup.",
    ]


def test_terminating_with_decrement_below_min_size_is_refused() -> None:
    async def body(account: Account) -> str:
        group = _group(account, 2, min_size=2)
        await asyncio.sleep(20)
        with pytest.raises(ClientError) as caught:
            await account.aws.autoscaling.terminate_instance_in_auto_scaling_group(
                InstanceId=next(iter(group.members)), ShouldDecrementDesiredCapacity=True
            )
        return str(caught.value.response["Error"]["Message"])

    assert in_account(body).startswith("Currently, desiredSize equals minSize (2).")


async def _unbalance(account: Account, group: Group) -> None:
    """Terminate (decrementing) both members in the first AZ: 0 left there, 2 in the other."""
    await asyncio.sleep(200)
    for member in [m for m in group.members.values() if m.instance.az == AZS[0]]:
        await account.aws.autoscaling.terminate_instance_in_auto_scaling_group(
            InstanceId=member.instance.id, ShouldDecrementDesiredCapacity=True
        )
    await asyncio.sleep(11)


def test_az_rebalance_moves_a_member_without_its_lifecycle_hook() -> None:
    async def body(account: Account) -> list[tuple[str, str]]:
        group = _group(account, 4, hooks=[Hook("drain")])
        await _unbalance(account, group)
        return sorted((m["AvailabilityZone"], m["LifecycleState"]) for m in await _members(account))

    assert in_account(body) == [
        ("us-east-1a", "Pending"),  # launched in the emptiest AZ
        ("us-east-1a", "Terminating:Wait"),  # the scaler's two, held by the hook
        ("us-east-1a", "Terminating:Wait"),
        ("us-east-1b", "InService"),
        ("us-east-1b", "Terminating:Proceed"),  # taken by the rebalance: no hook
    ]


def test_no_rebalance_while_az_rebalance_is_suspended() -> None:
    async def body(account: Account) -> list[str]:
        group = _group(account, 4, suspended=["AZRebalance"])
        await _unbalance(account, group)
        return sorted(
            m["AvailabilityZone"]
            for m in await _members(account)
            if m["LifecycleState"] == "InService"
        )

    assert in_account(body) == ["us-east-1b", "us-east-1b"]


def _held(account: Account, events: list[dict[str, Any]]) -> LifecycleAction:
    detail = events[-1]["detail"]
    return LifecycleAction(
        detail["AutoScalingGroupName"],
        detail["LifecycleHookName"],
        detail["LifecycleActionToken"],
        detail["EC2InstanceId"],
    )


def test_a_scale_in_waits_for_the_lifecycle_action_to_complete() -> None:
    async def body(account: Account) -> tuple[str, str, str, bool, bool, dict[str, Any]]:
        events: list[dict[str, Any]] = []
        account.autoscaling.on_lifecycle_event.append(events.append)
        _group(account, 2, hooks=[Hook("drain", heartbeat_timeout=300)])
        await asyncio.sleep(200)
        await account.aws.autoscaling.set_desired_capacity(
            AutoScalingGroupName="web", DesiredCapacity=1
        )
        await asyncio.sleep(11)
        action = _held(account, events)
        instance = account.world.instances[action.instance_id]
        waiting = instance.state
        lifecycle = AutoScalingLifecycle(account.aws.autoscaling)
        await asyncio.sleep(250)
        await lifecycle.heartbeat(action)
        await asyncio.sleep(250)  # 500 s after the hook began: alive thanks to the heartbeat
        alive = instance.state
        done = await lifecycle.complete(action, "CONTINUE")
        again = await lifecycle.complete(action, "CONTINUE")
        return waiting, alive, instance.state, done, again, events[-1]

    waiting, alive, after, done, again, event = in_account(body)
    assert (waiting, alive, after) == ("running", "running", "shutting-down")
    assert (done, again) == (True, False)  # the second: no active lifecycle action
    assert event["detail-type"] == "EC2 Instance-terminate Lifecycle Action"
    assert event["source"] == "aws.autoscaling"
    assert event["detail"]["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"


def test_a_lifecycle_action_completed_by_instance_id() -> None:
    async def body(account: Account) -> str:
        events: list[dict[str, Any]] = []
        account.autoscaling.on_lifecycle_event.append(events.append)
        group = _group(account, 2, hooks=[Hook("drain")])
        await asyncio.sleep(200)
        iid = next(iter(group.members))
        await account.aws.autoscaling.terminate_instance_in_auto_scaling_group(
            InstanceId=iid, ShouldDecrementDesiredCapacity=True
        )
        await account.aws.autoscaling.complete_lifecycle_action(
            LifecycleHookName="drain",
            AutoScalingGroupName="web",
            InstanceId=iid,
            LifecycleActionResult="ABANDON",
        )
        return account.world.instances[iid].state

    assert in_account(body) == "shutting-down"


def test_an_unanswered_lifecycle_action_times_out_and_terminates() -> None:
    async def body(account: Account) -> tuple[str, str]:
        group = _group(account, 1, hooks=[Hook("drain", heartbeat_timeout=600)])
        await asyncio.sleep(200)
        iid = next(iter(group.members))
        await account.aws.autoscaling.terminate_instance_in_auto_scaling_group(
            InstanceId=iid, ShouldDecrementDesiredCapacity=True
        )
        await asyncio.sleep(599)
        before = account.world.instances[iid].state
        await asyncio.sleep(2)
        return before, account.world.instances[iid].state

    assert in_account(body) == ("running", "shutting-down")


def test_a_launch_into_short_pools_is_a_failed_activity_the_scaler_reads() -> None:
    async def body(account: Account) -> tuple[dict[str, str], list[dict[str, Any]], int]:
        account.world.short_pools.update((t, az) for t in ("m5.large", "c5.large") for az in AZS)
        _group(account, 1)
        await asyncio.sleep(11)
        failed = await LaunchFailures(account.aws.autoscaling).read(
            {"web": account.world.start.timestamp()}
        )
        account.world.short_pools.clear()
        await asyncio.sleep(60)
        reply = await account.aws.autoscaling.describe_scaling_activities(
            AutoScalingGroupName="web", MaxRecords=10
        )
        return failed, reply["Activities"], len(account.world.live())

    failed, activities, live = in_account(body)
    assert failed["web"].startswith("Could not launch Spot Instances. InsufficientInstanceCapacity")
    assert [a["StatusCode"] for a in activities] == ["Successful", "Failed"]  # newest first
    assert activities[0]["Description"].startswith("Launching a new EC2 instance: i-")
    assert isinstance(activities[0]["StartTime"], datetime)
    assert live == 1


def test_a_scale_in_spares_members_protected_from_it() -> None:
    async def body(account: Account) -> tuple[list[str], str]:
        group = _group(account, 4)
        await asyncio.sleep(200)
        kept = sorted(group.members.values(), key=lambda m: m.instance.launched)[0]
        kept.protected = True
        await account.aws.autoscaling.set_desired_capacity(
            AutoScalingGroupName="web", DesiredCapacity=1
        )
        await asyncio.sleep(11)
        members = await _members(account)
        live = [m["InstanceId"] for m in members if m["LifecycleState"] == "InService"]
        return live, kept.instance.id

    live, kept = in_account(body)
    assert live == [kept]


def test_the_event_of_a_held_member_can_be_announced_again() -> None:
    async def body(account: Account) -> tuple[int, bool]:
        events: list[dict[str, Any]] = []
        account.autoscaling.on_lifecycle_event.append(events.append)
        group = _group(account, 1, hooks=[Hook("drain")])
        await asyncio.sleep(200)
        iid = next(iter(group.members))
        await account.aws.autoscaling.terminate_instance_in_auto_scaling_group(
            InstanceId=iid, ShouldDecrementDesiredCapacity=True
        )
        again = account.autoscaling.announce(iid)
        return len(events), events[0] == again

    assert in_account(body) == (2, True)


def test_a_group_launches_in_another_az_when_one_is_short() -> None:
    async def body(account: Account) -> list[str]:
        account.world.short_pools.update((t, AZS[0]) for t in ("m5.large", "c5.large"))
        _group(account, 2)
        await asyncio.sleep(11)
        return [m["AvailabilityZone"] for m in await _members(account)]

    assert in_account(body) == [AZS[1], AZS[1]]


def test_an_on_demand_group_is_unaffected_by_short_spot_pools() -> None:
    async def body(account: Account) -> tuple[int, str]:
        account.world.short_pools.update((t, az) for t in ("m5.large", "c5.large") for az in AZS)
        account.ec2.template("web", "m5.large", "ami-1")
        account.autoscaling.group(
            "web", "web", min_size=0, max_size=4, desired=2, azs=AZS, spot=False
        )
        await asyncio.sleep(11)
        members = await _members(account)
        return len(members), account.world.instances[members[0]["InstanceId"]].lifecycle

    assert in_account(body) == (2, "on-demand")


def test_the_shipped_cluster_check_reads_the_groups_tags() -> None:
    async def body(account: Account) -> tuple[bool, bool]:
        _group(account)
        clock = LoopClock(account.world.start)
        prod = ClusterGroups(account.aws.autoscaling, "prod", (), clock)
        other = ClusterGroups(account.aws.autoscaling, "staging", (), clock)
        return await prod.serves("web"), await other.serves("web")

    assert in_account(body) == (True, False)


def test_a_rebalance_waits_for_capacity_in_the_emptiest_az() -> None:
    async def body(account: Account) -> tuple[list[str], list[str]]:
        group = _group(account, 4)
        await asyncio.sleep(200)
        account.world.short_pools.update((t, AZS[0]) for t in ("m5.large", "c5.large"))
        await _unbalance(account, group)

        def live() -> list[str]:
            return sorted(m.instance.az for m in group.live())

        short = live()
        account.world.short_pools.clear()
        await asyncio.sleep(61)
        return short, live()

    assert in_account(body) == (["us-east-1b"] * 2, ["us-east-1a", "us-east-1b"])


def test_a_run_replays_from_its_seed() -> None:
    async def body(account: Account) -> list[tuple[str, str]]:
        group = _group(account, 3, hooks=[Hook("drain", heartbeat_timeout=120)])
        await asyncio.sleep(200)
        for _ in range(3):
            victim = account.world.rng.choice(sorted(group.members))
            account.world.terminate(account.world.instances[victim])
            await account.aws.autoscaling.set_desired_capacity(
                AutoScalingGroupName="web", DesiredCapacity=account.world.rng.randint(1, 5)
            )
            await asyncio.sleep(300)
        return [(a["Description"], a["Cause"]) for a in group.activities]

    first, second = in_account(body), in_account(body)
    assert first == second
    assert len(first) > 6
