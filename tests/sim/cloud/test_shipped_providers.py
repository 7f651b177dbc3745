"""Capacity providers in the shipped scaler's world: each provider of the scenario is an Auto
Scaling group (ECS names it), which holds the provider's initial instances and launches into
the provider's pools only, and the scaler tops a bound service up through its provider's group
without warning that no pool of its serves it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from scaler.sim.cloud.autoscaling import AutoScaling
from scaler.sim.cloud.driver import LoopDriver
from scaler.sim.cloud.ec2 import Ec2
from scaler.sim.cloud.engine_world import EngineWorld
from scaler.sim.cloud.shipped import capacity_settings, provider_groups, run_shipped
from scaler.sim.cloud.vloop import run
from scaler.sim.engine import Sim
from tests.sim.cloud.simulated import Idle
from tests.sim.test_provider_demand import two_providers

UNSERVED = "whose groups are not the scaler's pools"


def test_each_provider_is_a_group_the_scaler_tops_up_through() -> None:
    groups = provider_groups(two_providers())
    assert {p: (g.name, g.spot, g.initial) for p, g in groups.items()} == {
        "cp-a": ("asg-cp-a", True, 2),
        "cp-b": ("asg-cp-b", True, 4),
    }
    settings = capacity_settings(two_providers())
    assert settings["spot_pools"] == "asg-cp-a,asg-cp-b"
    assert "spot_templates" not in settings  # every pool is a provider's


def test_a_providers_group_launches_into_its_providers_pool() -> None:
    async def main() -> set[str]:
        driver = LoopDriver(Sim(two_providers(), Idle(), 1))
        world = EngineWorld(driver)
        world.providers["asg-cp-b"] = "cp-b"
        ec2 = Ec2(world)
        autoscaling = AutoScaling(world, ec2)
        ec2.template("asg-cp-b-nodes", "m5.xlarge", "image-1")
        stop = asyncio.Event()
        running = asyncio.create_task(driver.run(stop))
        group = autoscaling.group(
            "asg-cp-b", "asg-cp-b-nodes", min_size=0, max_size=4, desired=1, azs=["us-east-1a"]
        )
        await asyncio.sleep(200.0)
        stop.set()
        driver.poke()
        await running
        return {world.launched[i] for i in group.members}

    assert run(main()) == {"spot-b"}, "spot-a has the same type and AZ, but is cp-a's"


def test_the_scaler_grows_the_bound_services_providers_group(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        outcome = run_shipped(two_providers(), 1, capacity=True)
    assert outcome.calls.get("autoscaling:SetDesiredCapacity", 0) >= 1
    assert set(outcome.launched.values()) == {"spot-a"}
    assert not [r for r in caplog.records if UNSERVED in r.getMessage()]
    engine: Any = outcome.engine
    web = engine.cluster.services["web"]
    assert web.unplaced == 0
