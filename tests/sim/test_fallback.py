"""Falling back to on-demand when spot is dry, measured in the simulator with the shipped scaler:
a cluster with 19 spot pools, every one of which stops launching in a storm."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from scaler.ecs.cluster import InstanceType, ServiceSpec
from scaler.sim.cloud.ec2 import Ec2
from scaler.sim.scenario import Event, Pool, Scenario
from tests.sim.shipped_helpers import run_scaler

SEEDS = (3, 7, 11)
AZS = ("us-east-1a", "us-east-1b", "us-east-1c")
TYPES = {
    t.name: t
    for t in (
        InstanceType("m5.xlarge", 4, 16384, 0.192),
        InstanceType("m5a.xlarge", 4, 16384, 0.172),
        InstanceType("m6i.xlarge", 4, 16384, 0.192),
        InstanceType("c5.xlarge", 4, 8192, 0.17),
        InstanceType("c6i.xlarge", 4, 8192, 0.17),
        InstanceType("r5.xlarge", 4, 32768, 0.252),
        InstanceType("m5.2xlarge", 8, 32768, 0.384),
    )
}


def dry_spot() -> Scenario:
    """19 spot pools (the cluster starts on three of them, m5.xlarge in each AZ) and an
    on-demand pool per AZ; at 15 minutes a storm reclaims two of the three pools the cluster runs
    in (the market draws which) and no spot pool launches for 20 minutes."""
    spot = [
        Pool(
            f"spot-{t}-{az}",
            "spot",
            t,
            az,
            round(TYPES[t].on_demand_price * (0.3 + 0.01 * n), 4),
            initial=4 if t == "m5.xlarge" else 0,
        )
        for n, t in enumerate(TYPES)
        for az in AZS
    ][:19]
    od = [Pool(f"od-m5.xlarge-{az}", "on-demand", "m5.xlarge", az) for az in AZS]
    services = tuple(
        ServiceSpec(f"svc-{n}", 12, 512, 1024, min_healthy_percent=50) for n in range(6)
    )
    home = [p.name for p in spot if p.initial]
    storm = Event(
        900,
        "storm",
        {
            "share": 0.6,
            "over": 120,
            "unavailable_for": 1200,
            "all_spot_pools": True,
            "pools": home,
        },
    )
    return Scenario("dry-spot", 1.0, dict(TYPES), tuple(spot + od), services, (storm,))


class Recording(Ec2):
    """EC2, noting when a spot fleet request first launched nothing, and the first on-demand
    one that launched something (loop time, the simulator's seconds)."""

    refused_at: float | None = None
    on_demand_at: float | None = None

    async def create_fleet(self, ClientToken: str = "", **request: Any) -> dict[str, Any]:
        answer = await super().create_fleet(ClientToken, **request)
        now = asyncio.get_running_loop().time()
        kind = request["TargetCapacitySpecification"].get("DefaultTargetCapacityType")
        if kind == "spot" and not answer["Instances"] and Recording.refused_at is None:
            Recording.refused_at = now
        if kind == "on-demand" and answer["Instances"] and Recording.on_demand_at is None:
            Recording.on_demand_at = now
        return answer


@pytest.mark.parametrize("seed", SEEDS)
def test_first_on_demand_launch_comes_right_after_spot_refuses(seed: int) -> None:
    Recording.refused_at = Recording.on_demand_at = None
    run = run_scaler(dry_spot(), seed, ec2=Recording)
    refused, on_demand = Recording.refused_at, Recording.on_demand_at
    assert refused is not None and on_demand is not None
    # the same plan goes on to on-demand: the lag is the simulated AWS calls' latency (1.4-1.9 s
    # at these seeds), far from the 30 s to the next capacity plan
    assert 0 <= on_demand - refused <= 5.0
    assert run.figures["availability"] >= 0.95
