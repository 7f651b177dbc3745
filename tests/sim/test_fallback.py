"""Falling back to on-demand when spot is dry, measured in the simulator: a cluster with 19 spot
pools, every one of which stops launching in a storm."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from scaler.ecs.cluster import InstanceType, ServiceSpec
from scaler.sim.engine import Sim
from scaler.sim.policies import ScalerPolicy
from scaler.sim.scenario import Event, Pool, Scenario

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


class Recording(Sim):
    """The simulator, noting when a spot launch was first refused and the first on-demand one."""

    refused_at: float | None = None
    on_demand_at: float | None = None

    def launch_any(self, pool_names: Sequence[str], count: int, why: str = "") -> str | None:
        got = super().launch_any(pool_names, count, why)
        if got is None and self.refused_at is None:
            self.refused_at = self.now
        if got is not None and self.pools[got].capacity == "on-demand" and count > 0:
            self.on_demand_at = self.on_demand_at if self.on_demand_at is not None else self.now
        return got


@pytest.mark.parametrize("seed", SEEDS)
def test_first_on_demand_launch_comes_right_after_spot_refuses(seed: int) -> None:
    sim = Recording(dry_spot(), ScalerPolicy(), seed)
    sim.run()
    assert sim.refused_at is not None and sim.on_demand_at is not None
    assert sim.on_demand_at - sim.refused_at <= 1.0  # the plan right after: no wait for a tick
