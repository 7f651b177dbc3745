"""Roll a new launch template version (or AMI) through the scaler's Auto Scaling groups.

With ``SCALER_ROLL=true`` each capacity cycle also reads which instances of the scaler's groups
are *out of date*: launched from another launch template version than the group launches now,
or running another image than that version's (``DescribeLaunchTemplateVersions`` with SSM
aliases resolved, ``DescribeInstances``). :func:`scaler.plan.roll.plan_roll` decides, per group
(the group picks the AZ of what it launches):

- **replacements first**: ``SetDesiredCapacity`` up by the instances it may replace now;
- once the group has nothing launching, **drain** as many out-of-date instances as arrived,
  the emptiest first (reason ``drift``);
- each drained out-of-date instance that holds no service task is **terminated** with the
  group's desired capacity decremented (``TerminateInstanceInAutoScalingGroup``).

What is being rolled is read back from the cluster each cycle (DRAINING out-of-date instances
without a spot notice), so a restart carries on; only the replacements launched and not yet
matched by a drain live in memory (after a restart the next plan launches them again, within
the same budgets). Budgets: ``SCALER_DISRUPTION_BUDGET`` of the instances at once,
``SCALER_ROLL_PER_HOUR`` an hour; nothing new while a spot storm is under way. Services below
minimumHealthyPercent 100 lose their tasks on a drained instance as ECS drains them (as in a
deployment); the simulator's rolling policy raises their counts first, this one does not yet.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from scaler.aws.clients import AwsClients
from scaler.plan.capacity import CapacityMemory, CapacitySnapshot
from scaler.plan.roll import Machine, RollPlan, RollPolicy, RollState, plan_roll

log = logging.getLogger(__name__)
DESCRIBE_BATCH = 200  # instance ids per DescribeInstances call


def template_spec(group: dict[str, Any]) -> dict[str, str]:
    """The launch template a group launches from: id or name, and version (``$Default``)."""
    spec = group.get("LaunchTemplate") or (
        group.get("MixedInstancesPolicy", {})
        .get("LaunchTemplate", {})
        .get("LaunchTemplateSpecification", {})
    )
    ref = {k: str(spec[k]) for k in ("LaunchTemplateId", "LaunchTemplateName") if spec.get(k)}
    if ref:
        ref["Version"] = str(spec.get("Version") or "$Default")
    return ref


class DriftReader:
    """Which instances of the scaler's groups are out of date."""

    def __init__(self, aws: AwsClients) -> None:
        self._aws = aws

    async def outdated(self, groups: Iterable[dict[str, Any]]) -> frozenset[str]:
        stale: set[str] = set()
        for group in groups:
            stale |= await self._group(group)
        return frozenset(stale)

    async def _group(self, group: dict[str, Any]) -> set[str]:
        spec = template_spec(group)
        live = [
            i
            for i in group.get("Instances", [])
            if i.get("LifecycleState", "").startswith(("Pending", "InService"))
        ]
        if not spec or not live:
            return set()  # a launch configuration or nothing running: nothing to compare
        version, image = await self._current(spec)
        if version is None:
            return set()
        images = await self._images([i["InstanceId"] for i in live])
        stale = set()
        for inst in live:
            launched = str((inst.get("LaunchTemplate") or {}).get("Version", version))
            ran = images.get(inst["InstanceId"])
            if launched != version or (image and ran and ran != image):
                stale.add(str(inst["InstanceId"]))
        return stale

    async def _current(self, spec: dict[str, str]) -> tuple[str | None, str]:
        """The version number the group launches now, and its image (SSM aliases resolved)."""
        ref = {k: v for k, v in spec.items() if k != "Version"}
        reply = await self._aws.ec2.describe_launch_template_versions(
            **ref, Versions=[spec["Version"]], ResolveAlias=True
        )
        versions = reply.get("LaunchTemplateVersions", [])
        if not versions:
            return None, ""
        data = versions[0].get("LaunchTemplateData", {})
        return str(versions[0]["VersionNumber"]), str(data.get("ImageId", ""))

    async def _images(self, ids: list[str]) -> dict[str, str]:
        images: dict[str, str] = {}
        for start in range(0, len(ids), DESCRIBE_BATCH):
            reply = await self._aws.ec2.describe_instances(
                InstanceIds=ids[start : start + DESCRIBE_BATCH]
            )
            for reservation in reply.get("Reservations", []):
                for inst in reservation.get("Instances", []):
                    images[str(inst["InstanceId"])] = str(inst.get("ImageId", ""))
        return images


def roll_machines(snap: CapacitySnapshot) -> dict[str, Machine]:
    """The scaler's groups' instances as the roll sees them: placed by group."""
    managed = {p.name for p in snap.pools if p.managed}
    return {n.id: Machine(n.id, n.pool, n.status, n.tasks) for n in snap.nodes if n.pool in managed}


class RollMemory:
    """What the roll keeps between cycles: replacements not yet matched, drains this hour."""

    def __init__(self) -> None:
        self.state = RollState()
        self.drained_at: list[float] = []

    def plan(
        self,
        snap: CapacitySnapshot,
        outdated: frozenset[str],
        memory: CapacityMemory,
        policy: RollPolicy,
        blocked: frozenset[str] = frozenset(),
    ) -> RollPlan:
        """``blocked``: groups not to ask for replacements now."""
        now = snap.now
        self.drained_at = [t for t in self.drained_at if now - t < 3600.0]
        noticed = {n.id for n in snap.nodes if n.notice_ends is not None}
        ours = {
            n.id
            for n in snap.nodes
            if n.id in outdated and n.status == "DRAINING" and n.id not in noticed
        }
        return plan_roll(
            roll_machines(snap),
            outdated,
            now,
            policy,
            self.state,
            ours=ours,
            unplaced=sum(s.unplaced for s in snap.services),
            doomed=noticed,
            replaced_last_hour=len(self.drained_at),
            last_trouble=memory.last_spot_trouble(),
            blocked=blocked,
        )
