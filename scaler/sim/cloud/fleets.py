"""Simulated EC2 Fleet (``instant``), mixed into :class:`~.ec2.Ec2`.

``CreateFleet`` of type ``instant`` launches at once and answers with what it launched and,
per pool it could not launch in, an error: a spot pool the world marks short
(:attr:`World.short_pools`) is an ``InsufficientInstanceCapacity`` entry, while the request's
other pools still launch (price-capacity-optimized: the cheapest pool with capacity, at the
world's price of each, takes the whole request here). A repeated ``ClientToken`` answers what
the first call answered and launches nothing more, as EC2's idempotency does; the token of
another request is refused (``IdempotentParameterMismatch``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from scaler.sim.cloud.launch_templates import LaunchTemplate, Templates
from scaler.sim.cloud.transport import AwsError, NotSimulated, Operations
from scaler.sim.cloud.world import ON_DEMAND, World

SHORT = "InsufficientInstanceCapacity"


@dataclass
class Pool:
    """One launch template override: where and what an EC2 Fleet may launch."""

    template: LaunchTemplate
    version: str
    override: dict[str, Any]
    instance_type: str
    az: str


class Fleets(Operations):
    """EC2 Fleet, over the world of the EC2 it is mixed into."""

    world: World
    templates: Templates
    subnets: dict[str, str]

    def __init__(self) -> None:
        self._answers: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}  # token -> first
        self._fleets = 0
        super().__init__()

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
        # stable: the first of equals
        pool = min(usable, key=lambda p: self.world.price(p.instance_type, p.az, lifecycle))
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
