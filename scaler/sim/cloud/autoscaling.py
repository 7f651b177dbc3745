"""Simulated Auto Scaling: groups that keep their desired capacity, over the world's instances.

- An instance the world starts in a group (one the run starts with) is its member, InService.
- A group launches, ``LAUNCH_DELAY`` after it falls short, one instance per missing member, in
  its AZ with the fewest live members, of the first override type with capacity there (other
  AZs are tried next). Every launch is a scaling activity; a launch no pool can take is a
  ``Failed`` activity ("Could not launch Spot Instances. InsufficientInstanceCapacity - ...")
  and is tried again ``RETRY_DELAY`` later.
- A member lost out of band (a spot interruption, a terminate through EC2) fails its health
  check: ``REPLACE_DELAY`` later it is gone from the group and replaced; desired is unchanged.
- Scale-in (a lower desired capacity) takes members from the AZ with the most, earliest launched
  first, never one protected from scale-in.
- ``SetDesiredCapacity`` outside [MinSize, MaxSize] and ``TerminateInstanceInAutoScalingGroup``
  decrementing below MinSize are ``ValidationError``\\s with AWS's messages.
- AZRebalance (unless suspended): when the live members of two AZs differ by more than one, a
  member is launched in the emptiest and one of the fullest terminated at once, without its
  lifecycle hook (a launch that cannot be had is tried again ``RETRY_DELAY`` later).
- A terminate lifecycle hook holds a leaving member (scale-in, a terminate asked for) in
  ``Terminating:Wait``, announced as an EventBridge event (:mod:`.lifecycle_hooks`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from scaler.sim.cloud.asg import ACCOUNT, Group, Hook, Member, activity, described_group
from scaler.sim.cloud.ec2 import Ec2
from scaler.sim.cloud.lifecycle_hooks import LifecycleHooks
from scaler.sim.cloud.transport import AwsError
from scaler.sim.cloud.world import ON_DEMAND, SPOT, Ec2Instance, World

LAUNCH_DELAY = 10.0  # seconds from a shortfall to its launch activity
REPLACE_DELAY = 30.0  # seconds from a member lost out of band to its replacement
RETRY_DELAY = 60.0  # seconds before a failed launch is tried again
NO_CAPACITY = (
    "Could not launch Spot Instances. InsufficientInstanceCapacity - There is no Spot capacity"
    " available that matches your request. Launching EC2 instance failed."
)


def _no_on_demand(instance_type: str, az: str) -> str:
    return (
        f"We currently do not have sufficient {instance_type} capacity in the Availability Zone"
        f" you requested ({az}). Our system will be working on provisioning additional"
        " capacity. Launching EC2 instance failed."
    )


class AutoScaling(LifecycleHooks):
    """The Auto Scaling groups of one region."""

    def __init__(self, world: World, ec2: Ec2, region: str = "us-east-1") -> None:
        self.world, self.ec2, self.region = world, ec2, region
        self.groups: dict[str, Group] = {}
        super().__init__()
        self._activities = 0
        world.on_running.append(self._booted)
        world.on_terminated.append(self._lost)

    # -- made by the world ----------------------------------------------------------------

    def group(
        self,
        name: str,
        template: str,
        *,
        min_size: int,
        max_size: int,
        desired: int,
        azs: Sequence[str],
        instance_types: Sequence[str] = (),
        spot: bool = True,
        tags: dict[str, str] | None = None,
        hooks: Sequence[Hook] = (),
        suspended: Sequence[str] = (),
    ) -> Group:
        """A group launching from the launch template ``template``; filled ``LAUNCH_DELAY``
        from now."""
        arn = (
            f"arn:aws:autoscaling:{self.region}:{ACCOUNT}:autoScalingGroup:"
            f"00000000-0000-4000-8000-{len(self.groups) + 1:012d}:autoScalingGroupName/{name}"
        )
        found = self.ec2.templates.find({"LaunchTemplateName": template})
        group = Group(
            name, arn, min_size, max_size, desired, list(azs), found, spot, self.world.now()
        )
        group.instance_types = list(instance_types)
        group.tags, group.hooks, group.suspended = dict(tags or {}), list(hooks), set(suspended)
        self.groups[name] = group
        self._schedule(group, LAUNCH_DELAY)
        return group

    # -- keeping the desired capacity -----------------------------------------------------

    def _schedule(self, group: Group, delay: float) -> None:
        if not group.scheduled:
            group.scheduled = True
            asyncio.get_running_loop().call_later(delay, self._reconcile, group)

    def _reconcile(self, group: Group) -> None:
        group.scheduled = False
        live = group.live()
        for _ in range(group.desired - len(live)):
            if not self._launch(
                group,
                "an instance was started in response to a difference"
                " between desired and actual capacity",
            ):
                self._schedule(group, RETRY_DELAY)
                return
        for member in self._victims(group, len(live) - group.desired):
            self._retire(
                group,
                member,
                "an instance was taken out of service in response to a difference between"
                " desired and actual capacity, shrinking the capacity",
            )
        self._rebalance(group)

    def _launch(self, group: Group, cause: str, az: str = "") -> bool:
        """Launch one member (in ``az``, or the AZ with fewest); False if none could be had."""
        lifecycle = SPOT if group.spot else ON_DEMAND
        version = group.template.resolve(group.version)
        kinds = group.instance_types or [version.instance_type]
        zones = [az] if az else sorted(group.azs, key=lambda z: len(group.per_az()[z]))
        pool = next(
            ((k, z) for z in zones for k in kinds if self.world.has_capacity(k, z, lifecycle)),
            None,
        )
        if pool is None:
            why = NO_CAPACITY if group.spot else _no_on_demand(kinds[0], zones[0])
            self._record(group, f"Launching a new EC2 instance.  Status Reason: {why}", cause, why)
            return False
        tags = {**version.tags, **group.tags, "aws:autoscaling:groupName": group.name}
        inst = self.world.launch(
            *pool,
            lifecycle,
            version.image_id,
            tags=tags,
            template=group.template.name,
            group=group.name,
        )
        group.members[inst.id] = Member(inst, str(version.number))
        self._record(group, f"Launching a new EC2 instance: {inst.id}", cause)
        return True

    def _victims(self, group: Group, count: int) -> list[Member]:
        """The ``count`` members a scale-in takes: each from the AZ with the most left, its
        earliest launched one not protected from scale-in."""
        victims: list[Member] = []
        for _ in range(max(0, count)):
            left = {az: [m for m in ms if m not in victims] for az, ms in group.per_az().items()}
            zones = [az for az, ms in left.items() if any(not m.protected for m in ms)]
            if not zones:
                break
            az = max(zones, key=lambda z: len(left[z]))
            movable = [m for m in left[az] if not m.protected]
            victims.append(min(movable, key=lambda m: m.instance.launched))
        return victims

    def _rebalance(self, group: Group) -> None:
        if "AZRebalance" in group.suspended or len(group.live()) != group.desired:
            return
        zones = group.per_az()
        fullest = max(zones, key=lambda z: len(zones[z]))
        emptiest = min(zones, key=lambda z: len(zones[z]))
        movable = [m for m in zones[fullest] if not m.protected]
        if len(zones[fullest]) - len(zones[emptiest]) <= 1 or not movable:
            return
        cause = (
            "an instance was taken out of service in response to an Availability Zone rebalancing"
        )
        if not self._launch(group, cause, emptiest):
            self._schedule(group, RETRY_DELAY)
            return
        self._retire(group, min(movable, key=lambda m: m.instance.launched), cause, hooks=False)
        self._schedule(group, LAUNCH_DELAY)

    # -- members leaving ------------------------------------------------------------------

    def _retire(self, group: Group, member: Member, cause: str, hooks: bool = True) -> None:
        """Take ``member`` out: held by the group's terminate hook if it has one."""
        member.state = "Terminating"
        self._record(group, f"Terminating EC2 instance: {member.instance.id}", cause)
        hook = group.terminate_hook() if hooks else None
        if hook is None:
            self._proceed(group, member)
        else:
            self._hold(group, member, hook)

    def _booted(self, inst: Ec2Instance) -> None:
        group = self.groups.get(inst.group)
        if group is not None and inst.id not in group.members:  # the world started it there
            version = group.template.resolve(group.version)
            group.members[inst.id] = Member(inst, str(version.number), "InService")
            return
        member = self._member_of(inst)
        if member is not None and member.state == "Pending":
            member.state = "InService"

    def _lost(self, inst: Ec2Instance) -> None:
        """A member terminated out of band: unhealthy, then replaced."""
        member = self._member_of(inst)
        if member is None or member.leaving:
            return
        group = self.groups[inst.group]
        member.state, member.health = "Terminating", "Unhealthy"
        self._record(
            group,
            f"Terminating EC2 instance: {inst.id}",
            "an instance was taken out"
            " of service in response to an EC2 health check indicating it has been"
            " terminated or stopped",
        )
        asyncio.get_running_loop().call_later(REPLACE_DELAY, self._replace, group, member)

    def _replace(self, group: Group, member: Member) -> None:
        group.members.pop(member.instance.id, None)
        self._reconcile(group)

    def _member_of(self, inst: Ec2Instance) -> Member | None:
        group = self.groups.get(inst.group)
        return group.members.get(inst.id) if group is not None else None

    def _record(self, group: Group, description: str, cause: str, failure: str = "") -> None:
        self._activities += 1
        at = self.world.wall()
        cause = f"At {at:%Y-%m-%dT%H:%M:%SZ} {cause}."
        group.activities.insert(
            0, activity(group, self._activities, description, cause, at, failure)
        )

    # -- the API --------------------------------------------------------------------------

    def _group(self, name: str) -> Group:
        if name not in self.groups:
            raise AwsError("ValidationError", f"AutoScalingGroup name not found - {name}")
        return self.groups[name]

    async def describe_auto_scaling_groups(
        self, AutoScalingGroupNames: list[str] | None = None, **_: Any
    ) -> dict[str, Any]:
        names = AutoScalingGroupNames or sorted(self.groups)
        found = [self.groups[n] for n in names if n in self.groups]  # unknown names: left out
        return {
            "AutoScalingGroups": [described_group(g, self.world.wall(g.created)) for g in found]
        }

    async def describe_scaling_activities(
        self,
        AutoScalingGroupName: str = "",
        MaxRecords: int = 100,
        NextToken: str | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        activities = self._group(AutoScalingGroupName).activities
        start = int(NextToken) if NextToken else 0
        reply: dict[str, Any] = {"Activities": activities[start : start + MaxRecords]}
        if start + MaxRecords < len(activities):
            reply["NextToken"] = str(start + MaxRecords)
        return reply

    async def set_desired_capacity(
        self, AutoScalingGroupName: str, DesiredCapacity: int, **_: Any
    ) -> dict[str, Any]:
        group = self._group(AutoScalingGroupName)
        if DesiredCapacity > group.max:
            raise AwsError(
                "ValidationError",
                f"New SetDesiredCapacity value {DesiredCapacity} is above max value"
                f" {group.max} for the AutoScalingGroup.",
            )
        if DesiredCapacity < group.min:
            raise AwsError(
                "ValidationError",
                f"New SetDesiredCapacity value {DesiredCapacity} is below min value"
                f" {group.min} for the AutoScalingGroup.",
            )
        group.desired = DesiredCapacity
        self._schedule(group, LAUNCH_DELAY)
        return {}

    async def terminate_instance_in_auto_scaling_group(
        self, InstanceId: str, ShouldDecrementDesiredCapacity: bool
    ) -> dict[str, Any]:
        inst = self.world.instances.get(InstanceId)
        member = self._member_of(inst) if inst is not None else None
        if inst is None or member is None or member.leaving:
            raise AwsError(
                "ValidationError",
                f"Instance Id not found - No managed instance found for instance ID: {InstanceId}",
            )
        group = self.groups[inst.group]
        if ShouldDecrementDesiredCapacity:
            if group.desired <= group.min:
                raise AwsError(
                    "ValidationError",
                    f"Currently, desiredSize equals minSize ({group.min}). Terminating instance"
                    " without replacement will violate group's min size constraint. Either set"
                    " shouldDecrementDesiredCapacity flag to false or lower group's min size.",
                )
            group.desired -= 1
        self._retire(
            group, member, "an instance was taken out of service in response to a user request"
        )
        self._schedule(group, LAUNCH_DELAY)
        return {"Activity": group.activities[0]}
