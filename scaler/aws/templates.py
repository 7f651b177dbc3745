"""Template pools: capacity launched with EC2 Fleet from a launch template, no Auto Scaling group.

``SCALER_SPOT_TEMPLATES`` / ``SCALER_ON_DEMAND_TEMPLATES`` name pools as ``pool=launch-template``
pairs. The scaler launches them itself with ``CreateFleet`` of type ``instant``: spot
``price-capacity-optimized`` (on-demand ``lowest-price``) across every instance type of
``SCALER_FLEET_INSTANCE_TYPES`` and subnet of ``SCALER_FLEET_SUBNETS``, so one request finds
capacity in whichever pool EC2 has it, and answers at once with what it launched and why the
rest failed (a shortfall marks the pool out of capacity, as a group that does not launch does).

Each instance is tagged at launch with the cluster (``scaler:cluster``), its pool
(``scaler:pool``) and the template id and version it came from; membership is read back from
those tags (``DescribeInstances``), never remembered. To the rest of the scaler a template pool
*looks like an Auto Scaling group* (:meth:`TemplatePools.groups` returns group-shaped records:
instances with their AZ, lifecycle and launch template; desired capacity = instances live;
``MaxSize`` = ``SCALER_FLEET_MAX_SIZE``), so the capacity planner, the roll, consolidation and
the migration treat both kinds alike; only launching (:meth:`TemplatePools.launch`) and
terminating (``TerminateInstances`` instead of ``TerminateInstanceInAutoScalingGroup``) differ.

``DescribeInstances`` is eventually consistent: for a while after ``CreateFleet`` (and whenever
EC2 cannot answer for a zone in trouble) it may not show what was just launched, and the next
cycle would launch the same shortfall again. So the instances of a launch count from
``CreateFleet``'s own answer (its ``Instances[].InstanceIds``): :meth:`TemplatePools.groups`
lists them as ``Pending`` members until ``DescribeInstances`` shows them, for
``LAUNCH_MEMORY`` seconds at most (then EC2's word wins: an instance it still does not show is
gone).

Each launch carries a client token of its own (:func:`new_token`), kept across the retries of
that call, so a retried call (a timeout, throttling) is answered with the first call's
instances, not new ones; the next launch has a new token and is never answered with an old one.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scaler.aws.clients import AwsClients, is_not_found
from scaler.settings import Settings

log = logging.getLogger(__name__)
POOL = "scaler:pool"
CLUSTER = "scaler:cluster"
TEMPLATE_ID = "scaler:launch-template-id"
TEMPLATE_VERSION = "scaler:launch-template-version"
SPOT, ON_DEMAND = "spot", "on-demand"
LAUNCH_MEMORY = 600.0  # seconds a launched instance counts before DescribeInstances shows it


@dataclass(frozen=True)
class Launched:
    """An instance as ``CreateFleet`` answered it: its pool, type and AZ, and when."""

    pool: str
    instance_type: str
    az: str
    at: float


class RecentLaunches:
    """Instances launched and not yet shown by ``DescribeInstances`` (see the module docstring)."""

    def __init__(self) -> None:
        self.unseen: dict[str, Launched] = {}  # instance id -> its launch

    def note(self, pool: str, reply: dict[str, Any], at: float) -> int:
        """Remember the instances of a ``CreateFleet`` answer; how many it launched."""
        count = 0
        for entry in reply.get("Instances", []):
            override = entry.get("LaunchTemplateAndOverrides", {}).get("Overrides", {})
            kind = str(entry.get("InstanceType") or override.get("InstanceType", ""))
            az = str(override.get("AvailabilityZone") or "*")  # "*": not known (yet)
            for iid in entry.get("InstanceIds", []):
                self.unseen[str(iid)] = Launched(pool, kind, az, at)
                count += 1
        return count

    def missing(self, shown: set[str], now: float) -> dict[str, list[dict[str, Any]]]:
        """Pool -> the launched instances ``shown`` leaves out, as Pending members; forgets
        those shown, and those older than ``LAUNCH_MEMORY``."""
        self.unseen = {
            iid: launch
            for iid, launch in self.unseen.items()
            if iid not in shown and now - launch.at < LAUNCH_MEMORY
        }
        members: dict[str, list[dict[str, Any]]] = {}
        for iid, launch in sorted(self.unseen.items()):
            members.setdefault(launch.pool, []).append(
                {
                    "InstanceId": iid,
                    "AvailabilityZone": launch.az,
                    "InstanceType": launch.instance_type,
                    "LifecycleState": "Pending",
                    "LaunchTemplate": {},
                }
            )
        return members


class TemplatePools:
    def __init__(self, aws: AwsClients, settings: Settings) -> None:
        self._aws = aws
        self._settings = settings
        self.templates = {
            **{p: (t, SPOT) for p, t in settings.spot_templates.items()},
            **{p: (t, ON_DEMAND) for p, t in settings.on_demand_templates.items()},
        }
        self.recent = RecentLaunches()

    def __contains__(self, pool: str) -> bool:
        return pool in self.templates

    async def validate(self) -> list[str]:
        """One line per template that cannot be found."""
        problems = []
        for pool, (template, capacity) in self.templates.items():
            variable = "SCALER_SPOT_TEMPLATES" if capacity == SPOT else "SCALER_ON_DEMAND_TEMPLATES"
            try:
                found = await self._current(template)
            except Exception as exc:
                if not is_not_found(exc):
                    raise
                found = None
            if found is None:
                problems.append(f"{variable}: launch template {template!r} of {pool!r} not found")
        return problems

    async def groups(self, now: float) -> list[dict[str, Any]]:
        """Every template pool as an Auto Scaling group record (see the module docstring), with
        the instances launched that ``DescribeInstances`` does not show yet."""
        if not self.templates:
            return []
        members = await self._members()
        shown = {str(i["InstanceId"]) for found in members.values() for i in found}
        unseen = self.recent.missing(shown, now)
        return [
            self._group(pool, members.get(pool, []), unseen.get(pool, []))
            for pool in self.templates
        ]

    def _group(
        self,
        pool: str,
        instances: list[dict[str, Any]],
        unseen: Sequence[dict[str, Any]] = (),
    ) -> dict[str, Any]:
        template = self.templates[pool][0]
        key = "LaunchTemplateId" if template.startswith("lt-") else "LaunchTemplateName"
        group: dict[str, Any] = {
            "AutoScalingGroupName": pool,
            "MaxSize": self._settings.fleet_max_size,
            "DesiredCapacity": len(instances) + len(unseen),
            "Instances": [_member(i) for i in instances] + list(unseen),
            "LaunchTemplate": {key: template, "Version": "$Default"},
        }
        types = self._settings.fleet_instance_types
        if types:
            overrides = [{"InstanceType": t} for t in types]
            group["MixedInstancesPolicy"] = {"LaunchTemplate": {"Overrides": overrides}}
        return group

    async def _members(self) -> dict[str, list[dict[str, Any]]]:
        """Pool -> its pending and running instances, as DescribeInstances describes them."""
        members: dict[str, list[dict[str, Any]]] = {}
        paginator = self._aws.ec2.get_paginator("describe_instances")
        filters = [
            {"Name": f"tag:{CLUSTER}", "Values": [self._settings.cluster_name]},
            {"Name": f"tag:{POOL}", "Values": sorted(self.templates)},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
        async for page in paginator.paginate(Filters=filters):
            for reservation in page.get("Reservations", []):
                for inst in reservation.get("Instances", []):
                    pool = _tags(inst).get(POOL, "")
                    members.setdefault(pool, []).append(inst)
        return members

    async def launch(self, pool: str, count: int, token: str, now: float) -> int:
        """Launch ``count`` instances in ``pool``; how many EC2 launched (the rest could not be
        had: logged with EC2's reasons), remembered until ``DescribeInstances`` shows them.
        ``token``: the same for retries of one launch."""
        template = self.templates[pool][0]
        found = await self._current(template)
        if found is None:
            log.error("launch template not found", extra={"pool": pool, "template": template})
            return 0
        template_id, version = found
        reply = await self._aws.ec2.create_fleet(**self._request(pool, count, token, found))
        launched = self.recent.note(pool, reply, now)
        errors = sorted({e.get("ErrorCode", "") for e in reply.get("Errors", [])})
        if launched < count:
            log.warning(
                "EC2 Fleet launched fewer instances than asked",
                extra={"pool": pool, "asked": count, "launched": launched, "errors": errors},
            )
        log.info(
            "fleet launched",
            extra={"pool": pool, "launched": launched, "template": template_id, "version": version},
        )
        return launched

    def _request(self, pool: str, count: int, token: str, found: tuple[str, str]) -> dict[str, Any]:
        template_id, version = found
        capacity = self.templates[pool][1]
        tags = {
            CLUSTER: self._settings.cluster_name,
            POOL: pool,
            TEMPLATE_ID: template_id,
            TEMPLATE_VERSION: version,
        }
        config: dict[str, Any] = {
            "LaunchTemplateSpecification": {"LaunchTemplateId": template_id, "Version": version}
        }
        overrides = self._overrides()
        if overrides:
            config["Overrides"] = overrides
        options = (
            {"SpotOptions": {"AllocationStrategy": "price-capacity-optimized"}}
            if capacity == SPOT
            else {"OnDemandOptions": {"AllocationStrategy": "lowest-price"}}
        )
        return {
            "Type": "instant",
            "LaunchTemplateConfigs": [config],
            "TargetCapacitySpecification": {
                "TotalTargetCapacity": count,
                "DefaultTargetCapacityType": capacity,
            },
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": _tag_list(tags)},
                {"ResourceType": "fleet", "Tags": _tag_list({CLUSTER: tags[CLUSTER]})},
            ],
            "ClientToken": token,
            **options,
        }

    def _overrides(self) -> list[dict[str, str]]:
        types: list[str | None] = list(self._settings.fleet_instance_types) or [None]
        subnets: list[str | None] = list(self._settings.fleet_subnets) or [None]
        overrides = [
            {k: v for k, v in (("InstanceType", t), ("SubnetId", s)) if v}
            for t in types
            for s in subnets
        ]
        return [o for o in overrides if o]

    async def _current(self, template: str) -> tuple[str, str] | None:
        """The template's id and default version number, or None if it has none."""
        key = "LaunchTemplateId" if template.startswith("lt-") else "LaunchTemplateName"
        reply = await self._aws.ec2.describe_launch_template_versions(
            **{key: template}, Versions=["$Default"]
        )
        versions = reply.get("LaunchTemplateVersions", [])
        if not versions:
            return None
        return str(versions[0]["LaunchTemplateId"]), str(versions[0]["VersionNumber"])


def new_token() -> str:
    """A client token for one launch (EC2 allows 64 characters)."""
    return f"scaler-{uuid.uuid4()}"


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _tags(inst: dict[str, Any]) -> dict[str, str]:
    return {str(t.get("Key")): str(t.get("Value")) for t in inst.get("Tags", [])}


def _member(inst: dict[str, Any]) -> dict[str, Any]:
    """An instance as an Auto Scaling group lists its own."""
    tags = _tags(inst)
    state = inst.get("State", {}).get("Name", "")
    return {
        "InstanceId": inst["InstanceId"],
        "AvailabilityZone": inst.get("Placement", {}).get("AvailabilityZone", ""),
        "InstanceType": inst.get("InstanceType", ""),
        "LifecycleState": "InService" if state == "running" else "Pending",
        "LaunchTemplate": {
            "LaunchTemplateId": tags.get(TEMPLATE_ID, ""),
            "Version": tags.get(TEMPLATE_VERSION, ""),
        },
    }
