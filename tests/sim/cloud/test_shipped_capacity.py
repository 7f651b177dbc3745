"""The shipped scaler with capacity in the simulated world: when the storm reclaims spot, it
launches replacements with EC2 Fleet (its template pools, configured from the scenario), and the
engine boots, registers, bills and counts them, on the same market as the engine left alone."""

from __future__ import annotations

import dataclasses
from typing import Any

from scaler.sim.builtin import builtin
from scaler.sim.cloud.shipped import capacity_settings, run_shipped, template_pools
from scaler.sim.engine import Sim
from scaler.sim.scenario import Event
from tests.sim.cloud.simulated import Idle

SCENARIO = builtin("storm", instances=24, tasks=120, services=6).with_hours(1.0)
SEED = 0  # a seed whose storm leaves tasks without room: replacements are needed


def _engine_alone() -> dict[str, Any]:
    return Sim(SCENARIO, Idle(), SEED).run()


def test_the_operator_configuration_is_a_template_pool_per_type_and_capacity() -> None:
    settings = capacity_settings(SCENARIO)
    assert settings["spot_templates"] == (
        "spot-c5.xlarge=spot-c5.xlarge-nodes,spot-m5.xlarge=spot-m5.xlarge-nodes,"
        "spot-m5.2xlarge=spot-m5.2xlarge-nodes"
    )
    assert settings["on_demand_templates"].startswith("on-demand-")
    assert "fleet_instance_types" not in settings  # each fleet launches its template's type
    assert settings["fleet_subnets"] == "subnet-us-east-1a,subnet-us-east-1b,subnet-us-east-1c"
    types = {kind for _, kind, _ in template_pools(SCENARIO).values()}
    assert types == {p.instance_type for p in SCENARIO.pools}


def test_the_scaler_replaces_reclaimed_spot_through_ec2_fleet() -> None:
    topped, alone = run_shipped(SCENARIO, SEED, capacity=True), run_shipped(SCENARIO, SEED)
    assert topped.figures["market_digest"] == _engine_alone()["market_digest"], "the same market"
    assert alone.calls.get("ec2:CreateFleet", 0) == 0
    assert topped.calls.get("ec2:CreateFleet", 0) >= 1
    assert topped.launched, "CreateFleet launched instances in the engine"
    assert set(topped.launched.values()) <= {p.name for p in SCENARIO.pools}
    assert topped.figures["cost_usd"] > alone.figures["cost_usd"], "the engine bills them"
    assert topped.figures["availability"] > alone.figures["availability"]


def test_a_run_with_capacity_replays_exactly() -> None:
    assert run_shipped(SCENARIO, SEED, capacity=True) == run_shipped(SCENARIO, SEED, capacity=True)


def test_without_spot_the_scaler_falls_back_to_the_engines_on_demand_pools() -> None:
    no_spot = Event(890, "shortage", {"duration": 3600})  # every spot pool, from the storm on
    scenario = dataclasses.replace(SCENARIO, events=(no_spot, *SCENARIO.events))
    topped = run_shipped(scenario, SEED, capacity=True)
    alone = run_shipped(scenario, SEED)
    on_demand = {p.name for p in SCENARIO.pools if p.capacity == "on-demand"}
    assert topped.launched and set(topped.launched.values()) <= on_demand
    assert topped.figures["on_demand_share"] > 0.0
    assert topped.figures["availability"] > alone.figures["availability"]


def test_the_rebalancer_keeps_the_worlds_time() -> None:
    """The task rebalancer plans every SCALER_REBALANCE_INTERVAL of the world's (virtual) time:
    an hour brings about an hour's worth of plans, each reading the measured CPU once."""
    quiet = builtin("steady", instances=24, tasks=120, services=6).with_hours(1.0)
    settings = {"task_rebalance": True, "load_source": "measured", "rebalance_interval": 300}
    settings["consolidate"] = False  # its plans read the measured CPU too
    calls = run_shipped(quiet, SEED, settings, capacity=True).calls
    assert 10 <= calls.get("cloudwatch:GetMetricData", 0) <= 14
