"""Services bound to capacity providers, in the simulator: demand on one provider grows that
provider's pool, though another provider's instances have room, and its tasks land on its
provider's instances only, under the shipped scaler and under ECS's own managed scaling."""

from __future__ import annotations

from collections import Counter

import pytest

from scaler.ecs.cluster import STOPPED, InstanceType, ServiceSpec
from scaler.sim.cloud.shipped import run_shipped
from scaler.sim.engine import Sim
from scaler.sim.policies import POLICIES
from scaler.sim.scenario import Event, Pool, Scenario

M5 = InstanceType("m5.xlarge", 4, 16384, 0.192)
AZ = "us-east-1a"


def two_providers() -> Scenario:
    """cp-a: 2 instances, full with web's 8 tasks; cp-b: 4 empty ones. web doubles at 5 min."""
    pools = (
        Pool("spot-a", "spot", M5.name, AZ, 0.07, initial=2, capacity_provider="cp-a"),
        Pool("spot-b", "spot", M5.name, AZ, 0.05, initial=4, capacity_provider="cp-b"),
    )
    web = ServiceSpec("web", 8, 1024, 2048, capacity_providers=("cp-a",))
    return Scenario(
        "two-providers",
        0.5,
        {M5.name: M5},
        pools,
        (web,),
        (Event(300.0, "scale", {"factor": 2.0}),),
    )


def _run(policy: str) -> Sim:
    if policy == "scaler":
        engine = run_shipped(two_providers(), 1, capacity=True).engine
        assert engine is not None
        return engine
    sim = Sim(two_providers(), POLICIES[policy](), seed=1)
    sim.run()
    return sim


@pytest.mark.parametrize("policy", ["scaler", "ecs-native"])
def test_demand_bound_to_one_provider_grows_its_pool_only(policy: str) -> None:
    sim = _run(policy)
    launched = Counter(i.pool for i in [*sim.cluster.instances.values(), *sim.terminated.values()])
    assert launched["spot-a"] >= 4  # 16 tasks of a quarter of an instance each
    assert launched["spot-b"] == 4  # the initial ones: none launched
    web = sim.cluster.services["web"]
    live = [t for t in web.tasks.values() if t.state != STOPPED]
    assert len(live) == 16 and web.unplaced == 0
    assert {t.instance.provider for t in live if t.instance} == {"cp-a"}
