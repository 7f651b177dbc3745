"""One spot market per (scenario, seed): every policy meets the same reclaims, storms and
shortages, whatever it launched; a policy with nothing in a reclaimed pool escapes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from scaler.ecs.cluster import InstanceType
from scaler.events import InstanceStateChange, Signal, SpotInterruption
from scaler.sim.builtin import builtin
from scaler.sim.engine import Sim
from scaler.sim.policies import POLICIES
from scaler.sim.scenario import Event, Pool, Scenario

HOME = "spot-m5.2xlarge-us-east-1c"  # a pool the built-in cluster does not start in


class OnePool:
    """Keeps four instances in one spot pool (launching again when one goes), nothing else."""

    name = "one-pool"

    def start(self, sim: Sim) -> None:
        sim.launch(HOME, 4, "home")

    def on_signal(self, sim: Sim, signal: Signal) -> None:
        if isinstance(signal, InstanceStateChange) and signal.instance_id.startswith("i-"):
            gone = sim.terminated.get(signal.instance_id)
            if gone is not None and gone.pool == HOME:
                sim.launch(HOME, 1, "replace")


def busy_storm(seed: int) -> Scenario:
    """The built-in storm, with everyday reclaims frequent enough to happen in two hours."""
    base = builtin("storm", seed=seed)
    pools = tuple(
        replace(p, interruptions_per_hour=0.05) if p.capacity == "spot" else p for p in base.pools
    )
    return replace(base, pools=pools)


def _sim(scenario: Scenario, policy: str, seed: int) -> tuple[Sim, dict[str, object]]:
    sim = Sim(scenario, OnePool() if policy == "one-pool" else POLICIES[policy](), seed)
    return sim, sim.run()


def _used(sim: Sim) -> set[str]:
    return {i.pool for i in [*sim.cluster.instances.values(), *sim.terminated.values()]}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_policies_that_launch_differently_meet_the_same_market(seed: int) -> None:
    scenario = busy_storm(seed)
    runs = {p: _sim(scenario, p, seed) for p in ("ecs-scaler", "ecs-native", "one-pool")}
    digests = {p: figures["market_digest"] for p, (_, figures) in runs.items()}
    assert len(set(digests.values())) == 1, digests
    (homegrown, _), (native, _), (one, _) = runs.values()
    assert _used(homegrown) != _used(one), "the policies launched into different pools"
    assert homegrown.market.timeline == native.market.timeline == one.market.timeline
    shared = _used(homegrown) & _used(native)
    timeline = homegrown.market.timeline
    reclaims = [r for pool in shared for r in timeline[pool] if r[0] == "reclaim"]
    assert reclaims, "pools both policies used were reclaimed"


def test_the_digest_depends_on_the_seed() -> None:
    digests = {_sim(busy_storm(seed), "one-pool", seed)[1]["market_digest"] for seed in (1, 2)}
    assert len(digests) == 2


XL = InstanceType("m5.xlarge", 4, 16384, 0.192)


def two_pools() -> Scenario:
    pools = (
        Pool("spot-a", "spot", XL.name, "us-east-1a", 0.06, initial=2),
        Pool("spot-b", "spot", XL.name, "us-east-1b", 0.06),
    )
    storm = Event(600.0, "storm", {"share": 0.5, "over": 60.0})
    return Scenario("two-pools", 1.0, {XL.name: XL}, pools, (), (storm,))


class Quiet:
    name = "quiet"

    def __init__(self) -> None:
        self.warned: list[str] = []

    def start(self, sim: Sim) -> None:
        pass

    def on_signal(self, sim: Sim, signal: Signal) -> None:
        if isinstance(signal, SpotInterruption):
            self.warned.append(signal.instance_id)


def test_a_storm_draws_from_every_pool_and_a_policy_elsewhere_escapes() -> None:
    hit: dict[str, list[int]] = {"spot-a": [], "spot-b": []}
    for seed in range(1, 11):
        policy = Quiet()
        sim = Sim(two_pools(), policy, seed)
        sim.run()
        [drawn] = [p for p, rows in sim.market.timeline.items() if rows and rows[0][0] == "reclaim"]
        hit[drawn].append(len(policy.warned))
    assert hit["spot-a"] and hit["spot-b"], "the storm hits either pool, whatever is used"
    assert set(hit["spot-a"]) == {2}, "a storm in the policy's pool takes its instances"
    assert set(hit["spot-b"]) == {0}, "a storm elsewhere passes the policy by"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_storm_takes_its_share_of_each_drawn_pool(seed: int) -> None:
    pools = (Pool("spot-a", "spot", XL.name, "us-east-1a", 0.06, initial=4),)
    storm = Event(600.0, "storm", {"share": 1.0, "take": 0.5, "over": 60.0, "pools": ["spot-a"]})
    policy = Quiet()
    Sim(Scenario("take", 1.0, {XL.name: XL}, pools, (), (storm,)), policy, seed).run()
    assert len(policy.warned) == 2
