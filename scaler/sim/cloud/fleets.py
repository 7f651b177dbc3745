"""Simulated EC2 Fleet (``instant``) and Spot Fleet, mixed into :class:`~.ec2.Ec2`.

``CreateFleet`` of type ``instant`` launches at once and answers with what it launched and,
per pool it could not launch in, an error: a spot pool the world marks short
(:attr:`World.short_pools`) is an ``InsufficientInstanceCapacity`` entry, while the request's
other pools still launch (price-capacity-optimized: the cheapest pool with capacity takes the
whole request here). A repeated ``ClientToken`` answers what the first call answered and
launches nothing more, as EC2's idempotency does; the token of another request is refused
(``IdempotentParameterMismatch``).

A Spot Fleet (made by the world, :meth:`Fleets.spot_fleet`) of type ``maintain`` keeps its
target capacity: an instance it loses is replaced ``REPLACE_DELAY`` later, in a pool with
capacity (tried again later when there is none). ``ModifySpotFleetRequest`` sets the target;
a lower one terminates the excess unless ``ExcessCapacityTerminationPolicy`` is
``noTermination``.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field
from typing import Any

from scaler.sim.cloud.catalog import price
from scaler.sim.cloud.launch_templates import LaunchTemplate, Templates
from scaler.sim.cloud.transport import AwsError, NotSimulated, Operations
from scaler.sim.cloud.world import ON_DEMAND, PENDING, RUNNING, SPOT, Ec2Instance, World

REPLACE_DELAY = 30.0  # seconds before a Spot Fleet replaces a lost instance
RETRY_DELAY = 120.0  # seconds before a Spot Fleet without capacity tries again
SHORT = "InsufficientInstanceCapacity"


@dataclass
class Pool:
    """One launch template override: where and what an EC2 Fleet may launch."""

    template: LaunchTemplate
    version: str
    override: dict[str, Any]
    instance_type: str
    az: str


@dataclass
class SpotFleet:
    id: str
    target: int
    pools: list[tuple[str, str]]  # (instance type, AZ), in order of preference
    image_id: str
    created: float
    instances: list[str] = field(default_factory=list)
    state: str = "active"
    refilling: bool = False


class Fleets(Operations):
    """EC2 Fleet and Spot Fleet, over the world of the EC2 they are mixed into."""

    world: World
    templates: Templates
    subnets: dict[str, str]

    def __init__(self) -> None:
        self._answers: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}  # token -> first
        self._fleets = 0
        self.spot_fleets: dict[str, SpotFleet] = {}
        self.world.on_terminated.append(self._lost)

    # -- EC2 Fleet ------------------------------------------------------------------------

    async def create_fleet(self, ClientToken: str = "", **request: Any) -> dict[str, Any]:
        if ClientToken in self._answers:
            first, answer = self._answers[ClientToken]
            if first != request:
                raise AwsError(
                    "IdempotentParameterMismatch",
                    f"The client token {ClientToken} was used with different request parameters.",
                )
            return copy.deepcopy(answer)
        answer = self._create(**request)
        if ClientToken:
            self._answers[ClientToken] = (copy.deepcopy(request), copy.deepcopy(answer))
        return answer

    def _create(
        self,
        LaunchTemplateConfigs: list[dict[str, Any]],
        TargetCapacitySpecification: dict[str, Any],
        Type: str = "maintain",
        TagSpecifications: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        if Type != "instant":
            raise NotSimulated(f"CreateFleet of type {Type}")
        count = int(TargetCapacitySpecification["TotalTargetCapacity"])
        lifecycle = TargetCapacitySpecification.get("DefaultTargetCapacityType", ON_DEMAND)
        tags = _instance_tags(TagSpecifications or [])
        pools = [p for c in LaunchTemplateConfigs for p in self._pools(c)]
        answer = self._fill(pools, count, lifecycle, tags)
        self._fleets += 1
        answer["FleetId"] = f"fleet-{self._fleets:08x}-0000-4000-8000-000000000000"
        return answer

    def _pools(self, config: dict[str, Any]) -> list[Pool]:
        spec = config["LaunchTemplateSpecification"]
        template = self.templates.find(spec)
        version = spec.get("Version", "$Default")
        default = template.resolve(version)
        pools = []
        for override in config.get("Overrides") or [{}]:
            kind = override.get("InstanceType") or default.instance_type
            az = override.get("AvailabilityZone") or self._az(override.get("SubnetId"))
            pools.append(Pool(template, version, override, kind, az))
        return pools

    def _az(self, subnet: str | None) -> str:
        if subnet is None:
            return next(iter(self.subnets.values()))
        if subnet not in self.subnets:
            raise AwsError("InvalidSubnetID.NotFound", f"The subnet ID '{subnet}' does not exist")
        return self.subnets[subnet]

    def _fill(
        self, pools: list[Pool], count: int, lifecycle: str, tags: dict[str, str]
    ) -> dict[str, Any]:
        """Launch ``count`` in the cheapest pool with capacity; an error for each short one."""
        short = [p for p in pools if not self.world.has_capacity(p.instance_type, p.az, lifecycle)]
        usable = [p for p in pools if p not in short]
        errors = [_error(p, lifecycle) for p in short]
        if not usable:
            return {"Instances": [], "Errors": errors}
        pool = min(usable, key=lambda p: price(p.instance_type))  # stable: first of equals
        image = pool.template.resolve(pool.version).image_id
        ids = [
            self.world.launch(
                pool.instance_type,
                pool.az,
                lifecycle,
                image,
                tags=tags,
                template=pool.template.name,
            ).id
            for _ in range(count)
        ]
        launched = {
            "LaunchTemplateAndOverrides": _overrides(pool),
            "Lifecycle": lifecycle,
            "InstanceIds": ids,
            "InstanceType": pool.instance_type,
        }
        return {"Instances": [launched] if ids else [], "Errors": errors}

    # -- Spot Fleet -----------------------------------------------------------------------

    def spot_fleet(self, target: int, pools: list[tuple[str, str]], image_id: str) -> SpotFleet:
        """A ``maintain`` Spot Fleet over ``pools`` ((type, AZ), preferred first), filled now."""
        fid = f"sfr-{len(self.spot_fleets) + 1:08x}-0000-4000-8000-000000000000"
        fleet = SpotFleet(fid, target, list(pools), image_id, self.world.now())
        self.spot_fleets[fid] = fleet
        self._refill(fleet)
        return fleet

    def _members(self, fleet: SpotFleet) -> list[Ec2Instance]:
        live = (self.world.instances[i] for i in fleet.instances)
        return [i for i in live if i.state in (PENDING, RUNNING)]

    def _refill(self, fleet: SpotFleet) -> None:
        fleet.refilling = False
        if fleet.state != "active":
            return
        fleet.instances = [i.id for i in self._members(fleet)]
        for _ in range(fleet.target - len(fleet.instances)):
            pool = next((p for p in fleet.pools if self.world.has_capacity(*p, SPOT)), None)
            if pool is None:
                self._later(fleet, RETRY_DELAY)
                return
            inst = self.world.launch(
                *pool, SPOT, fleet.image_id, tags={"aws:ec2spot:fleet-request-id": fleet.id}
            )
            fleet.instances.append(inst.id)

    def _later(self, fleet: SpotFleet, delay: float) -> None:
        if not fleet.refilling:
            fleet.refilling = True
            asyncio.get_running_loop().call_later(delay, self._refill, fleet)

    def _lost(self, inst: Ec2Instance) -> None:
        for fleet in self.spot_fleets.values():
            if inst.id in fleet.instances:
                self._later(fleet, REPLACE_DELAY)

    def _fleet(self, fid: str) -> SpotFleet:
        if fid not in self.spot_fleets:
            raise AwsError(
                "InvalidSpotFleetRequestId.NotFound",
                f"The spot fleet request ID '{fid}' does not exist",
            )
        return self.spot_fleets[fid]

    async def describe_spot_fleet_requests(
        self, SpotFleetRequestIds: list[str] | None = None, **_: Any
    ) -> dict[str, Any]:
        ids = SpotFleetRequestIds or list(self.spot_fleets)
        return {"SpotFleetRequestConfigs": [self._config(self._fleet(i)) for i in ids]}

    def _config(self, fleet: SpotFleet) -> dict[str, Any]:
        specs = [
            {"ImageId": fleet.image_id, "InstanceType": kind, "Placement": {"AvailabilityZone": az}}
            for kind, az in fleet.pools
        ]
        return {
            "SpotFleetRequestId": fleet.id,
            "SpotFleetRequestState": fleet.state,
            "ActivityStatus": "fulfilled",
            "CreateTime": self.world.wall(fleet.created),
            "SpotFleetRequestConfig": {
                "IamFleetRole": "arn:aws:iam::123456789012:role/spot-fleet",
                "TargetCapacity": fleet.target,
                "Type": "maintain",
                "AllocationStrategy": "priceCapacityOptimized",
                "LaunchSpecifications": specs,
            },
        }

    async def describe_spot_fleet_instances(
        self,
        SpotFleetRequestId: str,
        NextToken: str | None = None,
        MaxResults: int = 1000,
        **_: Any,
    ) -> dict[str, Any]:
        members = self._members(self._fleet(SpotFleetRequestId))
        start = int(NextToken) if NextToken else 0
        reply: dict[str, Any] = {
            "SpotFleetRequestId": SpotFleetRequestId,
            "ActiveInstances": [_active(i) for i in members[start : start + MaxResults]],
        }
        if start + MaxResults < len(members):
            reply["NextToken"] = str(start + MaxResults)
        return reply

    async def modify_spot_fleet_request(
        self,
        SpotFleetRequestId: str,
        TargetCapacity: int | None = None,
        ExcessCapacityTerminationPolicy: str = "default",
        **_: Any,
    ) -> dict[str, Any]:
        fleet = self._fleet(SpotFleetRequestId)
        if TargetCapacity is not None:
            fleet.target = TargetCapacity
            members = self._members(fleet)
            if ExcessCapacityTerminationPolicy != "noTermination":
                for inst in members[TargetCapacity:]:
                    self.world.terminate(inst)
            self._refill(fleet)
        return {"Return": True}


def _instance_tags(specs: list[dict[str, Any]]) -> dict[str, str]:
    return {
        t["Key"]: t.get("Value", "")
        for s in specs
        if s.get("ResourceType") == "instance"
        for t in s.get("Tags", [])
    }


def _overrides(pool: Pool) -> dict[str, Any]:
    return {
        "LaunchTemplateSpecification": {
            "LaunchTemplateId": pool.template.id,
            "Version": pool.version,
        },
        "Overrides": dict(pool.override),
    }


def _error(pool: Pool, lifecycle: str) -> dict[str, Any]:
    return {
        "LaunchTemplateAndOverrides": _overrides(pool),
        "Lifecycle": lifecycle,
        "ErrorCode": SHORT,
        "ErrorMessage": (
            f"We currently do not have sufficient {pool.instance_type} capacity in the"
            f" Availability Zone you requested ({pool.az}). Our system will be working on"
            " provisioning additional capacity."
        ),
    }


def _active(inst: Ec2Instance) -> dict[str, Any]:
    return {
        "InstanceId": inst.id,
        "InstanceType": inst.instance_type,
        "SpotInstanceRequestId": "sir-" + inst.id[2:10],
        "InstanceHealth": "healthy",
    }
