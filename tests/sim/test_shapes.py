"""Scale-out by task shape, measured in the simulator: a cluster whose largest tasks (9-10 GiB)
do not fit its cheapest instance type (8 GiB) triples its demand."""

from __future__ import annotations

from typing import Any

import pytest

from scaler.ecs.cluster import STOPPED, InstanceType, ServiceSpec
from scaler.sim.cloud.shipped import run_shipped
from scaler.sim.engine import Sim
from scaler.sim.policies import POLICIES
from scaler.sim.scenario import Event, Pool, Scenario

SEEDS = (3, 7, 11)
NEED_AT = 600.0  # demand triples then
TYPES = {
    t.name: t
    for t in (
        InstanceType("m5.large", 2, 8192, 0.096),
        InstanceType("m5.xlarge", 4, 16384, 0.192),
        InstanceType("m5.2xlarge", 8, 32768, 0.384),
    )
}
AZS = ("us-east-1a", "us-east-1b")


def big_tasks() -> Scenario:
    pools = [
        Pool(
            f"spot-{t}-{az}",
            "spot",
            t,
            az,
            round(TYPES[t].on_demand_price * 0.35, 4),
            initial=3 if t == "m5.xlarge" else 0,
        )
        for t in TYPES
        for az in AZS
    ]
    pools += [Pool(f"od-m5.xlarge-{az}", "on-demand", "m5.xlarge", az) for az in AZS]
    services = (
        ServiceSpec("web", 12, 512, 1024),
        ServiceSpec("api", 6, 1024, 2048),
        ServiceSpec("batch", 3, 1024, 10240),
        ServiceSpec("report", 2, 2048, 9216),
    )
    return Scenario(
        "big-tasks",
        1.5,
        dict(TYPES),
        tuple(pools),
        services,
        (Event(NEED_AT, "scale", {"factor": 3.0}),),
    )


def _placed(sim: Sim) -> bool:
    for state in sim.cluster.services.values():
        live = [t for t in state.tasks.values() if t.state != STOPPED and t.instance is not None]
        if state.unplaced or len(live) < state.spec.desired:
            return False
    return True


def _run(policy: str, seed: int) -> tuple[float | None, int, int]:
    """(seconds from the need until every task is placed, or None; peak live instances;
    instances launched)."""
    seen: dict[str, Any] = {"placed_at": None, "peak": 0}

    def probe(sim: Sim) -> None:
        seen["peak"] = max(seen["peak"], len(sim.cluster.instances))
        if sim.now > NEED_AT and seen["placed_at"] is None and _placed(sim):
            seen["placed_at"] = sim.now - NEED_AT
        sim.at(sim.now + 15, probe, sim)

    def prepare(sim: Sim) -> None:
        sim.at(15, probe, sim)

    if policy == "scaler":
        sim = run_shipped(big_tasks(), seed, capacity=True, prepare=prepare).engine
        assert sim is not None
    else:
        sim = Sim(big_tasks(), POLICIES[policy](), seed)
        prepare(sim)
        sim.run()
    launched = len(sim.cluster.instances) + len(sim.terminated)
    return seen["placed_at"], seen["peak"], launched


@pytest.mark.parametrize("seed", SEEDS)
def test_tasks_larger_than_the_cheapest_type_are_placed_within_ten_minutes(seed: int) -> None:
    placed_at, peak, _ = _run("scaler", seed)
    _, native_peak, _ = _run("ecs-native", seed)
    assert placed_at is not None and placed_at <= 600
    assert peak <= 1.2 * native_peak
