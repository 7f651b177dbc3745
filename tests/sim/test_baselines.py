"""The baselines as configured: ``ecs-native`` (a capacity provider with managed scaling over a
mixed-instances Auto Scaling group with Capacity Rebalancing) and ``ecs-scaler`` (the homegrown
tool: merged Spot Fleets, on-demand stand-ins for reclaimed spot)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from scaler.ecs.cluster import ACTIVE, DRAINING, LAUNCHING, Instance, InstanceType, ServiceSpec
from scaler.sim.builtin import builtin
from scaler.sim.engine import Sim
from scaler.sim.policies import POLICIES, EcsNative, EcsScaler
from scaler.sim.scenario import Pool, Scenario

A, B = "us-east-1a", "us-east-1b"
XLARGE = InstanceType("m5.xlarge", 4, 16384, 0.192)
Probe = Callable[[Sim], None]


def cluster(hours: float = 1.0, **settings: Any) -> Scenario:
    """Two instances in each AZ's cheapest spot pool, a dearer spot pool and an on-demand pool
    in each AZ, and one service whose tasks fit on three of the four instances."""
    pools = (
        Pool("spot-a", "spot", XLARGE.name, A, 0.06, initial=2),
        Pool("spot-a2", "spot", XLARGE.name, A, 0.07),
        Pool("spot-b", "spot", XLARGE.name, B, 0.06, initial=2),
        Pool("spot-b2", "spot", XLARGE.name, B, 0.07),
        Pool("od-a", "on-demand", XLARGE.name, A),
        Pool("od-b", "on-demand", XLARGE.name, B),
    )
    web = ServiceSpec("web", 8, 1024, 2048, start_delay=20.0, health_delay=40.0)
    return Scenario("baselines", hours, {XLARGE.name: XLARGE}, pools, (web,), **settings)


def run(
    scenario: Scenario, policy: EcsNative | EcsScaler, probes: dict[float, Probe]
) -> tuple[Sim, dict[str, Any]]:
    sim = Sim(scenario, policy, seed=5)
    sim.begin()
    for t, probe in probes.items():
        sim.at(t, probe, sim)
    sim.step_until(sim.horizon)
    return sim, sim.finish()


def victim(sim: Sim, pool: str = "spot-a") -> Instance:
    return sorted((i for i in sim.cluster.instances.values() if i.pool == pool), key=str)[0]


def launched(sim: Sim) -> list[Instance]:
    """Every instance launched after the start, gone or not, in launch order."""
    seen = {**sim.terminated, **sim.cluster.instances}.values()
    return sorted((i for i in seen if i.launched_at > 0), key=lambda i: i.launched_at)


def reclaim(target: list[str]) -> Probe:
    def go(sim: Sim) -> None:
        target.append(victim(sim).id)
        sim._warn(target[0])

    return go


def test_the_auto_scaling_group_replaces_a_reclaimed_instance_in_another_pool() -> None:
    gone: list[str] = []
    count: list[int] = []
    probes = {600.0: reclaim(gone), 900.0: lambda sim: count.append(len(sim.cluster.instances))}
    sim, figures = run(cluster(), EcsNative(), probes)
    assert gone[0] not in sim.cluster.instances
    new = launched(sim)
    assert len(new) == 1, "the tasks fit on three instances: only the health replacement"
    assert new[0].launched_at >= 600 + sim.notice, "replaced once EC2 terminates the instance"
    assert (new[0].az, new[0].pool) == (A, "spot-a2"), "same AZ (balance), another pool"
    assert count == [4], "the group is back at its desired capacity"
    assert figures["interrupted_tasks"] == 0, "the agent drained it at the warning"


def test_capacity_rebalancing_launches_the_replacement_before_it_drains() -> None:
    seen: dict[str, Any] = {}

    def recommend(sim: Sim) -> None:
        seen["at_risk"] = victim(sim).id
        sim._recommend(seen["at_risk"])

    def watch(sim: Sim) -> None:
        drain = sim.cluster.drain

        def watched(inst: Instance) -> bool:
            if inst.id == seen.get("at_risk"):
                seen["ready"] = [i.status for i in launched(sim)]
                seen["drained_at"] = sim.now
            return drain(inst)

        sim.cluster.drain = watched  # type: ignore[method-assign]

    def early(sim: Sim) -> None:
        at_risk = sim.instance(seen["at_risk"])
        seen["early"] = (at_risk and at_risk.status, [i.status for i in launched(sim)])

    sim, figures = run(cluster(), EcsNative(), {0.0: watch, 600.0: recommend, 605.0: early})
    assert seen["early"] == (ACTIVE, [LAUNCHING]), "a replacement first, the instance serving"
    assert seen["ready"] == [ACTIVE], "drained only once its replacement was InService"
    assert seen["at_risk"] not in sim.cluster.instances, "terminated once empty"
    assert seen["at_risk"] not in sim.doomed and len(sim.cluster.instances) == 4
    assert launched(sim)[0].pool != "spot-a", "the replacement avoids the at-risk pool"
    assert figures["interrupted_tasks"] == 0 and figures["availability"] == 1.0


def _spare(target: int) -> int:
    sim, _ = run(cluster(target_capacity=target), EcsNative(), {})
    busy = sum(1 for i in sim.cluster.instances.values() if i.tasks)
    return len(sim.cluster.instances) - busy


def test_a_target_capacity_below_100_keeps_spare_room() -> None:
    assert _spare(100) == 0
    assert _spare(50) == 4, "four instances hold tasks: ceil(4 * 100 / 50) = 8 instances"


def test_the_on_demand_base_is_kept_and_replacements_are_spot() -> None:
    gone: list[str] = []
    sim, _ = run(cluster(on_demand_base=1, hours=2.0), EcsNative(), {1800.0: reclaim(gone)})
    on_demand = [i for i in sim.cluster.instances.values() if i.capacity == "on-demand"]
    assert len(on_demand) == 1, "the base stays, even where scale-in could take it"
    after = [i for i in launched(sim) if i.launched_at > 1800]
    assert [i.capacity for i in after] == ["spot"]


def _on_demand_launched(sim: Sim) -> list[Instance]:
    return [i for i in launched(sim) if i.capacity == "on-demand"]


def test_ecs_scaler_launches_on_demand_for_a_reclaim_and_returns_to_spot() -> None:
    gone: list[str] = []
    sim, _ = run(cluster(hours=2.0), EcsScaler(), {600.0: reclaim(gone)})
    on_demand = _on_demand_launched(sim)
    assert [(i.az, i.launched_at >= 600 + sim.notice) for i in on_demand] == [(A, True)]
    assert on_demand[0].id not in sim.cluster.instances, "drained back to spot"
    spot = [i for i in launched(sim) if i.capacity == "spot"]
    assert [i.pool for i in spot] == ["spot-a2"], "the fleet replenished in another pool"


def test_ecs_scaler_launches_no_on_demand_for_a_refresh() -> None:
    base = builtin("ami-roll", seed=7)
    calm = tuple(replace(p, interruptions_per_hour=0.0) for p in base.pools)
    scenario = replace(base, pools=calm, hours=3.0)
    sim = Sim(scenario, POLICIES["ecs-scaler"](), 7)
    figures = sim.run()
    assert figures["out_of_date_instances"] < 48, "the refresh terminated instances"
    assert _on_demand_launched(sim) == []
    assert not [i for i in sim.cluster.instances.values() if i.status == DRAINING]
