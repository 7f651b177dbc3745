"""An Auto Scaling group's state, and how DescribeAutoScalingGroups and DescribeScalingActivities
show it (the behaviour is in :mod:`.autoscaling`).

A member's ``LifecycleState`` is ``Pending`` until its instance runs, then ``InService``; on
its way out ``Terminating`` (``Terminating:Wait`` while a terminate lifecycle hook holds it,
``Terminating:Proceed`` once released). A group's launch template is a plain
``LaunchTemplate`` or, when it has instance type overrides, a ``MixedInstancesPolicy``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scaler.sim.cloud.launch_templates import LaunchTemplate
from scaler.sim.cloud.world import Ec2Instance

ACCOUNT = "123456789012"
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"


@dataclass(frozen=True)
class Hook:
    name: str
    transition: str = TERMINATING
    heartbeat_timeout: float = 3600.0
    default_result: str = "ABANDON"


@dataclass
class Member:
    instance: Ec2Instance
    version: str  # the template version it was launched from
    state: str = "Pending"
    health: str = "Healthy"
    protected: bool = False

    @property
    def leaving(self) -> bool:
        return self.state.startswith("Terminating")


@dataclass
class Action:
    """A terminating member held by a lifecycle hook."""

    token: str
    group: Group
    hook: Hook
    member: Member
    deadline: float  # the global timeout: no heartbeat extends the wait past it
    timer: asyncio.TimerHandle | None = None


@dataclass
class Group:
    name: str
    arn: str
    min: int
    max: int
    desired: int
    azs: list[str]
    template: LaunchTemplate
    spot: bool
    created: float
    version: str = "$Default"
    instance_types: list[str] = field(default_factory=list)  # overrides, preferred first
    tags: dict[str, str] = field(default_factory=dict)
    hooks: list[Hook] = field(default_factory=list)
    suspended: set[str] = field(default_factory=set)
    members: dict[str, Member] = field(default_factory=dict)
    activities: list[dict[str, Any]] = field(default_factory=list)  # newest first
    scheduled: bool = False

    def live(self) -> list[Member]:
        return [m for m in self.members.values() if not m.leaving]

    def per_az(self) -> dict[str, list[Member]]:
        """AZ -> its live members (every AZ of the group, empty ones too)."""
        found: dict[str, list[Member]] = {az: [] for az in self.azs}
        for m in self.live():
            found.setdefault(m.instance.az, []).append(m)
        return found

    def terminate_hook(self) -> Hook | None:
        return next((h for h in self.hooks if h.transition == TERMINATING), None)


def described_group(group: Group, wall: datetime) -> dict[str, Any]:
    """``group`` as DescribeAutoScalingGroups describes it (``wall``: its creation time)."""
    described: dict[str, Any] = {
        "AutoScalingGroupName": group.name,
        "AutoScalingGroupARN": group.arn,
        "MinSize": group.min,
        "MaxSize": group.max,
        "DesiredCapacity": group.desired,
        "DefaultCooldown": 300,
        "AvailabilityZones": list(group.azs),
        "HealthCheckType": "EC2",
        "HealthCheckGracePeriod": 300,
        "CreatedTime": wall,
        "Instances": [_member(group, m) for m in group.members.values()],
        "SuspendedProcesses": [
            {"ProcessName": p, "SuspensionReason": "User suspended"}
            for p in sorted(group.suspended)
        ],
        "Tags": [_tag(group, k, v) for k, v in group.tags.items()],
        "TerminationPolicies": ["Default"],
        "NewInstancesProtectedFromScaleIn": False,
    }
    spec = _spec(group.template, group.version)
    if group.instance_types:
        described["MixedInstancesPolicy"] = _mixed(group, spec)
    else:
        described["LaunchTemplate"] = spec
    return described


def _spec(template: LaunchTemplate, version: str) -> dict[str, str]:
    return {
        "LaunchTemplateId": template.id,
        "LaunchTemplateName": template.name,
        "Version": version,
    }


def _mixed(group: Group, spec: dict[str, str]) -> dict[str, Any]:
    return {
        "LaunchTemplate": {
            "LaunchTemplateSpecification": spec,
            "Overrides": [{"InstanceType": t} for t in group.instance_types],
        },
        "InstancesDistribution": {
            "OnDemandBaseCapacity": 0,
            "OnDemandPercentageAboveBaseCapacity": 0 if group.spot else 100,
            "SpotAllocationStrategy": "price-capacity-optimized",
        },
    }


def _member(group: Group, member: Member) -> dict[str, Any]:
    inst = member.instance
    return {
        "InstanceId": inst.id,
        "InstanceType": inst.instance_type,
        "AvailabilityZone": inst.az,
        "LifecycleState": member.state,
        "HealthStatus": member.health,
        "LaunchTemplate": _spec(group.template, member.version),
        "ProtectedFromScaleIn": member.protected,
    }


def _tag(group: Group, key: str, value: str) -> dict[str, Any]:
    return {
        "ResourceId": group.name,
        "ResourceType": "auto-scaling-group",
        "Key": key,
        "Value": value,
        "PropagateAtLaunch": True,
    }


def activity(
    group: Group, number: int, description: str, cause: str, at: datetime, failure: str = ""
) -> dict[str, Any]:
    """A scaling activity, as DescribeScalingActivities describes it; ``failure``: why it
    failed (a ``Failed`` activity), else it is ``Successful``."""
    found: dict[str, Any] = {
        "ActivityId": f"00000000-0000-4000-8000-{number:012d}",
        "AutoScalingGroupName": group.name,
        "AutoScalingGroupARN": group.arn,
        "Description": description,
        "Cause": cause,
        "StartTime": at,
        "EndTime": at,
        "StatusCode": "Failed" if failure else "Successful",
        "Progress": 100,
    }
    if failure:
        found["StatusMessage"] = failure
    return found
