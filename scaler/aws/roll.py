"""Roll a new launch template version (or AMI) through the scaler's Auto Scaling groups.

With ``SCALER_ROLL=true`` each capacity cycle also reads which instances of the scaler's groups
are *out of date*: launched from another launch template version than the group launches now,
or running another image than that version's (``DescribeLaunchTemplateVersions`` with SSM
aliases resolved, ``DescribeInstances``). :func:`scaler.plan.roll.plan_roll` decides, per group
(the group picks the AZ of what it launches):

- **replacements first**: ``SetDesiredCapacity`` up by the instances it may replace now;
- once the group has nothing launching, **drain** as many out-of-date instances as arrived,
  the emptiest first (reason ``drift``);
- each drained out-of-date instance that holds no task of any status is **terminated** with the
  group's desired capacity decremented (``TerminateInstanceInAutoScalingGroup``).

An instance is tagged ``scaler:retiring=drift`` (EC2) before the roll drains it, and only
tagged instances are terminated: an instance drained by hand or for another reason is never
retired (it pauses the roll instead). What is being rolled is read back from those tags each
cycle, so a restart carries on; only the replacements launched and not yet matched by a drain
live in memory (after a restart the next plan may launch one again, within the same budgets).
The hourly budget counts launches, so a replacement that somehow reads as out of date too
cannot make the roll grow a group without end. A failed read skips the roll for that cycle;
top-up goes on. Budgets: ``SCALER_DISRUPTION_BUDGET`` of the instances at once,
``SCALER_ROLL_PER_HOUR`` an hour; nothing new while a spot storm is under way. Services below
minimumHealthyPercent 100 would lose their tasks on a drained instance as ECS drains them (as in a
deployment): with ``SCALER_ROLL_SURGE`` (on by default) their counts are raised first and set
back afterwards, each surge marked on its service (:mod:`scaler.aws.surges`,
:func:`scaler.plan.roll.plan_surges`).

This module reads the drift; the plan is carried out by :mod:`scaler.capacity.roll`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from scaler.aws.clients import AwsClients
from scaler.aws.retiring import Ec2Facts, retiring
from scaler.capacity.observed import Drift, live_instances

log = logging.getLogger(__name__)


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

    async def read(self, groups: Iterable[dict[str, Any]], facts: dict[str, Ec2Facts]) -> Drift:
        """Out-of-date and retiring instances (``facts``: EC2's on the groups' instances);
        nothing (with a warning) if EC2 cannot be read, so the cycle goes on without the roll."""
        stale: set[str] = set()
        try:
            for group in groups:
                stale |= await self._group(group, facts)
        except Exception as exc:
            log.warning(
                "out-of-date instances not read: no roll this cycle", extra={"error": repr(exc)}
            )
            return Drift()
        return Drift(frozenset(stale), retiring(facts, "drift"))

    async def _group(self, group: dict[str, Any], facts: dict[str, Ec2Facts]) -> set[str]:
        spec = template_spec(group)
        live = live_instances(group)
        if not spec or not live or _overrides_templates(group):
            return set()  # nothing to compare with (or more than one template)
        template, version, image = await self._current(spec)
        if version is None:
            return set()
        return {
            str(inst["InstanceId"])
            for inst in live
            if _launched_elsewhere(inst, template, version)
            or (image and facts.get(inst["InstanceId"], Ec2Facts()).image not in ("", image))
        }

    async def _current(self, spec: dict[str, str]) -> tuple[str, str | None, str]:
        """The template id, the version number the group launches now, and its image (SSM
        aliases resolved)."""
        ref = {k: v for k, v in spec.items() if k != "Version"}
        reply = await self._aws.ec2.describe_launch_template_versions(
            **ref, Versions=[spec["Version"]], ResolveAlias=True
        )
        versions = reply.get("LaunchTemplateVersions", [])
        if not versions:
            return "", None, ""
        data = versions[0].get("LaunchTemplateData", {})
        found = versions[0]
        return (
            str(found.get("LaunchTemplateId", "")),
            str(found["VersionNumber"]),
            str(data.get("ImageId", "")),
        )


def _overrides_templates(group: dict[str, Any]) -> bool:
    overrides = group.get("MixedInstancesPolicy", {}).get("LaunchTemplate", {}).get("Overrides", [])
    return any(o.get("LaunchTemplateSpecification") for o in overrides)


def _launched_elsewhere(inst: dict[str, Any], template: str, version: str) -> bool:
    """Did the group launch this instance from another template, or another version number?
    (A version Auto Scaling reports as an alias, not a number, is not compared.)"""
    launched = inst.get("LaunchTemplate") or {}
    other_template = bool(template and launched.get("LaunchTemplateId") not in (None, template))
    number = str(launched.get("Version", ""))
    return other_template or (number.isdigit() and number != version)
