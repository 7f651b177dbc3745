"""Simulated Spot Fleet, mixed into :class:`~.ec2.Ec2`.

A Spot Fleet (made by the world, :meth:`SpotFleets.spot_fleet`) of type ``maintain`` keeps its
target capacity: an instance it loses is replaced ``REPLACE_DELAY`` later, in the first of its
pools with spot capacity (tried again ``RETRY_DELAY`` later when none has any).
``ModifySpotFleetRequest`` sets the target; a lower one terminates the excess unless
``ExcessCapacityTerminationPolicy`` is ``noTermination``. Its instances are tagged
``aws:ec2spot:fleet-request-id``, as EC2 tags them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from scaler.sim.cloud.transport import AwsError, Operations
from scaler.sim.cloud.world import PENDING, RUNNING, SPOT, Ec2Instance, World

REPLACE_DELAY = 30.0  # seconds before a Spot Fleet replaces a lost instance
RETRY_DELAY = 120.0  # seconds before a Spot Fleet without capacity tries again


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


class SpotFleets(Operations):
    """Spot Fleets, over the world of the EC2 they are mixed into."""

    world: World

    def __init__(self) -> None:
        self.spot_fleets: dict[str, SpotFleet] = {}
        self.world.on_terminated.append(self._lost)
        super().__init__()

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


def _active(inst: Ec2Instance) -> dict[str, Any]:
    return {
        "InstanceId": inst.id,
        "InstanceType": inst.instance_type,
        "SpotInstanceRequestId": "sir-" + inst.id[2:10],
        "InstanceHealth": "healthy",
    }
