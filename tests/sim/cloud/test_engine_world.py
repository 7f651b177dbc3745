"""The world over the engine: one set of instances. A launch through the world is the engine's
(booted, registered, billed), the engine's changes show in the EC2 records, and a terminate
through the world is the engine's."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from scaler.sim.builtin import builtin
from scaler.sim.cloud.autoscaling import AutoScaling
from scaler.sim.cloud.driver import LoopDriver
from scaler.sim.cloud.ec2 import Ec2
from scaler.sim.cloud.engine_world import EngineWorld, Origin
from scaler.sim.cloud.vloop import run
from scaler.sim.cloud.world import PENDING, RUNNING, SHUTTING_DOWN, TERMINATED, Ec2Instance
from scaler.sim.engine import Sim
from scaler.sim.scenario import Pool, Scenario
from tests.sim.cloud.simulated import Idle

SCENARIO = builtin("storm", instances=24, tasks=120, services=6).with_hours(1.0)
SPOT_A = "spot-m5.xlarge-us-east-1a"


def _tagged(pool: Pool) -> Origin:
    return Origin("ami-start", {"scaler:pool": pool.capacity}, "nodes")


def in_world(body: Callable[[EngineWorld], Awaitable[Any]], scenario: Scenario = SCENARIO) -> Any:
    async def main() -> Any:
        driver = LoopDriver(Sim(scenario, Idle(), 3))
        world = EngineWorld(driver, _tagged)
        stop = asyncio.Event()
        running = asyncio.create_task(driver.run(stop))
        await asyncio.sleep(0)
        try:
            return await body(world)
        finally:
            stop.set()
            driver.poke()
            await running

    return run(main())


def test_the_instances_the_run_starts_with_are_running_tagged_ec2_instances() -> None:
    async def body(world: EngineWorld) -> list[Ec2Instance]:
        return list(world.instances.values())

    records = in_world(body)
    assert len(records) == 24
    assert {r.state for r in records} == {RUNNING}
    assert {r.tags["scaler:pool"] for r in records} == {"spot"}
    assert all(r.launched < 0 and r.template == "nodes" for r in records)


def test_a_launch_is_the_engines_pending_until_it_registers_then_running() -> None:
    async def body(world: EngineWorld) -> tuple[str, str, Any, float, int]:
        booted: list[str] = []
        world.on_running.append(lambda i: booted.append(i.id))
        inst = world.launch("m5.xlarge", "us-east-1a", "spot", "ami-1", tags={"k": "v"})
        first = inst.state
        model = world.sim.instance(inst.id)
        await asyncio.sleep(130.0)
        return first, inst.state, model and model.pool, inst.launched, len(booted)

    first, later, pool, launched, booted = in_world(body)
    assert (first, later, pool, booted) == (PENDING, RUNNING, SPOT_A, 1)
    assert launched >= 0


def test_a_terminate_through_the_world_is_the_engines() -> None:
    async def body(world: EngineWorld) -> tuple[str, bool, str]:
        lost: list[str] = []
        world.on_terminated.append(lambda i: lost.append(i.id))
        inst = next(iter(world.instances.values()))
        world.terminate(inst)
        state = inst.state
        gone = world.sim.instance(inst.id) is None
        await asyncio.sleep(60.0)
        return state, gone and lost == [inst.id], inst.state

    assert in_world(body) == (SHUTTING_DOWN, True, TERMINATED)


def test_an_instance_the_engine_loses_is_shut_down_in_ec2() -> None:
    async def body(world: EngineWorld) -> str:
        inst = next(iter(world.instances.values()))
        model = world.sim.instance(inst.id)
        assert model is not None
        world.sim.terminate(model)  # as a spot notice's end or an AZ outage does
        return inst.state

    assert in_world(body) == SHUTTING_DOWN


def test_capacity_is_the_engines_and_none_where_the_scenario_has_no_pool() -> None:
    async def body(world: EngineWorld) -> list[bool]:
        before = world.has_capacity("m5.xlarge", "us-east-1a", "spot")
        world.sim.unavailable_until[SPOT_A] = 600.0  # the market's shortage
        return [
            before,
            world.has_capacity("m5.xlarge", "us-east-1a", "spot"),
            world.has_capacity("m5.xlarge", "us-east-1b", "spot"),
            world.has_capacity("c5.xlarge", "us-east-1a", "on-demand"),
        ]

    assert in_world(body) == [True, False, True, False]


def test_the_price_is_the_pools() -> None:
    async def body(world: EngineWorld) -> float:
        return world.price("c5.xlarge", "us-east-1a", "spot")

    assert in_world(body) == 0.0514


def test_an_auto_scaling_group_replaces_a_member_the_engine_loses() -> None:
    async def body(world: EngineWorld) -> tuple[int, int, bool, bool]:
        ec2 = Ec2(world)
        autoscaling = AutoScaling(world, ec2)
        ec2.template("web", "m5.xlarge", "ami-1")
        group = autoscaling.group(
            "web", "web", min_size=0, max_size=4, desired=2, azs=["us-east-1a", "us-east-1b"]
        )
        await asyncio.sleep(200.0)  # launched and registered
        first = [m.instance.id for m in group.members.values()]
        registered = all(world.sim.instance(i) is not None for i in first)
        model = world.sim.instance(first[0])
        assert model is not None
        world.sim.terminate(model)  # lost, as at a spot notice's end
        await asyncio.sleep(200.0)
        live = [m.instance.id for m in group.members.values() if m.instance.state == RUNNING]
        in_engine = all(world.sim.instance(i) is not None for i in live)
        return len(first), len(live), registered, in_engine and first[0] not in live

    assert in_world(body) == (2, 2, True, True)


def test_an_on_demand_pool_costs_its_types_on_demand_price_in_the_scenario() -> None:
    types = dict(SCENARIO.instance_types)
    types["m5.xlarge"] = dataclasses.replace(types["m5.xlarge"], on_demand_price=0.25)
    dearer = dataclasses.replace(SCENARIO, instance_types=types)

    async def body(world: EngineWorld) -> float:
        return world.price("m5.xlarge", "us-east-1b", "on-demand")

    assert in_world(body, dearer) == 0.25


def test_cpu_use_is_the_models() -> None:
    async def body(world: EngineWorld) -> tuple[float, float, float]:
        iid = next(iter(world.instances))
        model = world.sim.instance(iid)
        assert model is not None
        return world.cpu(iid, 0.0), 100.0 * model.load, world.cpu("i-none", 0.0)

    measured, modelled, unknown = in_world(body)
    assert measured == modelled > 0.0
    assert unknown == 0.0
