"""Instances the scaler takes out by its own choice, and what EC2 says about them.

Six things drain instances that nothing is wrong with: the roll (out-of-date images,
:mod:`scaler.aws.roll`), consolidation (capacity the cluster can do without,
:mod:`scaler.aws.consolidation`), the Spot Fleet migration (:mod:`scaler.aws.migration`), the
return to spot (on-demand fallback given back, :mod:`scaler.aws.capacity_actuator`) and the surplus
(an instance a group launched by itself for one the scaler had replaced already,
:mod:`scaler.aws.replaced`) and the scale-in of idle instances (:mod:`scaler.capacity.scale_in`).
Each tags the instance ``scaler:retiring=<reason>`` (EC2) *before* draining it, and the capacity
cycle terminates an instance only when it is DRAINING, tagged, and holds no task of any status
(:func:`scaler.aws.tasks.is_empty`: a task being stopped, draining its load balancer connections,
still counts though ECS's running count leaves it out). So an instance drained by hand, or by a
spot notice, is never terminated by the scaler, and a restart (or a new leader) reads what is
being retired back from the tags instead of from memory.

:func:`describe` reads the tags together with the facts the planners need from EC2: the image an
instance runs (the roll) and when it was launched (consolidation's minimum age).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scaler.aws.clients import AwsClients

RETIRING = "scaler:retiring"  # EC2 tag; its value says why (one of REASONS)
RETURN_TO_SPOT = "return_to_spot"
SURPLUS = "surplus"  # an instance a group launched by itself that the scaler had replaced
IDLE = "idle"  # an instance that ran no service task for SCALER_SCALE_IN_AFTER seconds
REASONS = ("drift", "consolidation", "migration", RETURN_TO_SPOT, SURPLUS, IDLE)
DESCRIBE_BATCH = 200  # instance ids per DescribeInstances filter


@dataclass(frozen=True)
class Ec2Facts:
    image: str = ""
    launched_at: float | None = None  # epoch seconds
    retiring: str | None = None  # the reason it was tagged for, if it was
    state: str = ""  # EC2's: pending, running, shutting-down, terminated...

    @property
    def gone(self) -> bool:
        return self.state in ("shutting-down", "terminated")


async def describe(aws: AwsClients, ids: list[str]) -> dict[str, Ec2Facts]:
    """EC2's facts on ``ids``. A filter rather than ``InstanceIds``, so that an instance EC2 does
    not know yet (just launched) is left out instead of failing the call."""
    found: dict[str, Ec2Facts] = {}
    for start in range(0, len(ids), DESCRIBE_BATCH):
        reply = await aws.ec2.describe_instances(
            Filters=[{"Name": "instance-id", "Values": ids[start : start + DESCRIBE_BATCH]}]
        )
        for reservation in reply.get("Reservations", []):
            for inst in reservation.get("Instances", []):
                found[str(inst["InstanceId"])] = _facts(inst)
    return found


def _facts(inst: dict[str, Any]) -> Ec2Facts:
    tags = {t.get("Key"): t.get("Value") for t in inst.get("Tags", [])}
    reason = tags.get(RETIRING)
    launched = inst.get("LaunchTime")
    return Ec2Facts(
        str(inst.get("ImageId", "")),
        launched.timestamp() if isinstance(launched, datetime) else None,
        str(reason) if reason in REASONS else None,
        str(inst.get("State", {}).get("Name", "")),
    )


def retiring(facts: dict[str, Ec2Facts], reason: str | None = None) -> frozenset[str]:
    """The instances tagged for retirement (for ``reason``, or for any)."""
    return frozenset(
        iid
        for iid, f in facts.items()
        if f.retiring is not None and (reason is None or f.retiring == reason)
    )
