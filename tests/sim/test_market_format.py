"""The market side of the scenario format: interruption rates that change over time, rebalance
leads drawn from a range (and storms announced before they strike), recommendations in everyday
interruptions (some never followed by one), capacity shortages as events of their own. Each new
key changes the market as documented; the market stays the same for every policy."""

from __future__ import annotations

import copy
import math
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from scaler.events import InstanceStateChange, RebalanceRecommendation, Signal, SpotInterruption
from scaler.sim.builtin import builtin
from scaler.sim.engine import Sim
from scaler.sim.market import arrival
from scaler.sim.run import simulate
from scaler.sim.scenario import Scenario, from_dict, load

SPOT = ("spot-a", "spot-b")


def raw(**market: Any) -> dict[str, Any]:
    """Two spot pools of 20 instances each and an on-demand pool, no services, two hours."""
    pools: list[dict[str, Any]] = [
        {
            "name": name,
            "capacity": "spot",
            "instance_type": "m5.xlarge",
            "az": az,
            "price": 0.06,
            "interruptions_per_hour": 0.25,
            "initial": 20,
        }
        for name, az in zip(SPOT, ("us-east-1a", "us-east-1b"), strict=True)
    ]
    pools.append(
        {"name": "od-a", "capacity": "on-demand", "instance_type": "m5.xlarge", "az": "us-east-1a"}
    )
    data: dict[str, Any] = {
        "name": "market-format",
        "hours": 2.0,
        "instance_types": [
            {"name": "m5.xlarge", "vcpu": 4, "memory_mib": 16384, "on_demand_price": 0.192}
        ],
        "pools": pools,
        "services": [],
        "events": [],
    }
    data.update(market)
    return data


class Listener:
    """Launches nothing; hears every signal, with its virtual time."""

    name = "listener"

    def __init__(self) -> None:
        self.warned: dict[str, float] = {}
        self.advised: dict[str, float] = {}

    def start(self, sim: Sim) -> None:
        self.sim = sim

    def on_signal(self, sim: Sim, signal: Signal) -> None:
        if isinstance(signal, SpotInterruption):
            self.warned.setdefault(signal.instance_id, sim.now - sim.signal_delay)
        elif isinstance(signal, RebalanceRecommendation):
            self.advised.setdefault(signal.instance_id, sim.now - sim.signal_delay)
        elif isinstance(signal, InstanceStateChange):
            pass


def run(data: dict[str, Any], seed: int = 1) -> tuple[Sim, Listener]:
    listener = Listener()
    sim = Sim(from_dict(data), listener, seed)
    sim.run()
    return sim, listener


def reclaim_times(sim: Sim, pool: str) -> list[float]:
    return [row[3] for row in sim.market.timeline[pool] if row[0] == "reclaim"]


# -- files without the new keys --------------------------------------------------------------


def test_files_without_the_new_keys_keep_their_market() -> None:
    """Digests measured before the new keys existed (the market is the same for any policy)."""
    example = load(Path(__file__).resolve().parents[2] / "scenarios" / "example.toml")
    stormy = builtin("storm", seed=2)
    busy = replace(
        stormy,
        pools=tuple(
            replace(p, interruptions_per_hour=0.05) if p.capacity == "spot" else p
            for p in stormy.pools
        ),
    )
    scenarios = {"storm": builtin("storm", seed=3), "example": example, "busy": busy}
    digests = {name: Sim(s, Listener(), 3).run()["market_digest"] for name, s in scenarios.items()}
    assert digests == {
        "storm": "814704643d2c37dc",
        "example": "7313d283e5c632e6",
        "busy": "6243451caa2ae04f",
    }


# -- rates that change over time --------------------------------------------------------------


def test_an_arrival_spends_one_draw_over_the_piecewise_rate() -> None:
    work = random.Random(5).expovariate(1.0)  # about 0.975

    def at(rates: tuple[tuple[float, float], ...], after: float = 0.0) -> float:
        return arrival(random.Random(5), 1.0, after, rates)

    assert at(((0.0, 0.0), (100.0, 2.0)), 10.0) == pytest.approx(100.0 + work / 2)
    spent = ((0.0, 0.0), (100.0, 2.0), (100.0 + work / 4, 0.5))  # half of it at 2, then 0.5
    assert at(spent, 10.0) == pytest.approx(100.0 + work / 4 + work)
    assert at(((50.0, 0.0),)) == pytest.approx(work), "a factor of 1 before the first at"
    assert at(((0.0, 1.0), (work / 2, 0.0))) == math.inf, "none once the factor stays 0"


def test_rates_of_factor_one_leave_the_market_as_it_was() -> None:
    plain = run(raw())[0].market.digest()
    data = raw()
    data["pools"][0]["rates"] = [{"at": 0, "factor": 1.0}]
    assert run(data)[0].market.digest() == plain


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_pool_rate_multiplies_its_interruptions_from_its_at(seed: int) -> None:
    data = raw()
    data["pools"][0]["rates"] = [{"at": 0, "factor": 0.0}, {"at": 3600, "factor": 5.0}]
    sim, _ = run(data, seed)
    times = reclaim_times(sim, "spot-a")
    assert times and all(t >= 3600 for t in times), times
    assert len(times) > len(reclaim_times(sim, "spot-b")), "five times the rate, half the time"


def test_market_rates_apply_to_every_spot_pool_and_a_pool_of_its_own_wins() -> None:
    data = raw(market={"rates": [{"at": 0, "factor": 0.0}]})
    data["pools"][1]["rates"] = [{"at": 0, "factor": 1.0}]
    sim, _ = run(data)
    assert reclaim_times(sim, "spot-a") == []
    assert reclaim_times(sim, "spot-b") == reclaim_times(run(raw())[0], "spot-b")


# -- rebalance leads from a range, storms announced before they strike ------------------------


def storm(**params: Any) -> dict[str, Any]:
    data = raw()
    for pool in data["pools"]:
        pool["interruptions_per_hour"] = 0.0
    data["events"] = [
        {"at": 3600, "type": "storm", "share": 1.0, "over": 300, "pools": ["spot-a"], **params}
    ]
    return data


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_an_announced_storm_recommends_before_it_strikes(seed: int) -> None:
    data = storm(rebalance_share=1.0, rebalance_lead=[600, 1800], early_recommendations=True)
    _, heard = run(data, seed)
    assert len(heard.warned) == 20 and set(heard.advised) == set(heard.warned)
    assert all(t >= 3600 for t in heard.warned.values())
    leads = [heard.warned[i] - heard.advised[i] for i in heard.warned]
    assert all(600 - 1e-6 <= lead <= 1800 + 1e-6 for lead in leads), leads
    assert min(heard.advised.values()) < 3600, "recommendations come before the storm's at"
    assert max(leads) - min(leads) > 300, "leads are drawn from the range"


def test_a_storm_lead_range_without_announcing_starts_at_the_storm() -> None:
    _, heard = run(storm(rebalance_share=1.0, rebalance_lead=[600, 1800]))
    assert heard.advised and min(heard.advised.values()) >= 3600


# -- recommendations in everyday interruptions ------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_everyday_interruptions_come_with_recommendations_ahead(seed: int) -> None:
    data = raw(market={"rebalance_share": 1.0, "rebalance_lead": [600, 1200]})
    _, heard = run(data, seed)
    assert heard.warned
    for instance, warned in heard.warned.items():
        assert instance in heard.advised, "every warning had a recommendation"
        assert 600 - 1e-6 <= warned - heard.advised[instance] <= 1200 + 1e-6


def test_a_pool_rebalance_share_of_its_own() -> None:
    data = raw()
    data["pools"][0].update(rebalance_share=1.0, rebalance_lead=900, interruptions_per_hour=0.5)
    data["pools"][1]["interruptions_per_hour"] = 0.5
    data["hours"] = 4.0
    sim, heard = run(data)
    pool = {i: sim.terminated[i].pool for i in heard.warned}
    assert any(p == "spot-a" for p in pool.values()) and any(p == "spot-b" for p in pool.values())
    for instance, warned in heard.warned.items():
        if pool[instance] == "spot-a":
            assert warned - heard.advised[instance] == pytest.approx(900)
        else:
            assert instance not in heard.advised


def test_false_recommendations_are_never_followed() -> None:
    data = raw(market={"false_recommendations_per_hour": 0.2})
    for pool in data["pools"]:
        pool["interruptions_per_hour"] = 0.0
    sim, heard = run(data)
    assert len(heard.advised) >= 5 and not heard.warned
    rows = [r for pool in SPOT for r in sim.market.timeline[pool] if r[0] == "recommendation"]
    assert rows and all(r[1] == "false" for r in rows)


# -- shortages --------------------------------------------------------------------------------


class Launcher:
    """Launches one instance into each spot pool every ten minutes; notes which launches fail."""

    name = "launcher"

    def __init__(self) -> None:
        self.failed: list[tuple[float, str]] = []

    def start(self, sim: Sim) -> None:
        for t in range(0, 7200, 600):
            sim.at(float(t), self.launch, sim)

    def launch(self, sim: Sim) -> None:
        for pool in (*SPOT, "od-a"):
            if not sim.launch(pool, 1):
                self.failed.append((sim.now, pool))

    def on_signal(self, sim: Sim, signal: Signal) -> None:
        pass


def test_a_shortage_event_refuses_launches_into_its_pools_for_its_duration() -> None:
    data = raw()
    data["events"] = [{"at": 1800, "type": "shortage", "duration": 1800, "az": "us-east-1a"}]
    policy = Launcher()
    sim = Sim(from_dict(data), policy, 1)
    sim.run()
    assert policy.failed == [(1800.0, "spot-a"), (2400.0, "spot-a"), (3000.0, "spot-a")]
    assert ["shortage", "shortage", 1800.0, 3600.0] in sim.market.timeline["spot-a"]


@pytest.mark.parametrize("capacity", [{}, {"capacity": "any"}, {"capacity": "on-demand"}])
def test_a_shortage_of_named_pools_of_any_capacity(capacity: dict[str, str]) -> None:
    data = raw()
    data["events"] = [
        {"at": 600, "type": "shortage", "duration": 600, "pools": ["od-a", "spot-b"], **capacity}
    ]
    policy = Launcher()
    Sim(from_dict(data), policy, 1).run()
    spot_too = capacity.get("capacity") != "on-demand"
    assert policy.failed == [*([(600.0, "spot-b")] if spot_too else []), (600.0, "od-a")]


# -- one market for every policy --------------------------------------------------------------


def everything() -> Scenario:
    data = raw(
        market={
            "rates": [{"at": 0, "factor": 1.0}, {"at": 1800, "factor": 4.0}],
            "rebalance_share": 0.7,
            "rebalance_lead": [300, 900],
            "false_recommendations_per_hour": 0.05,
        }
    )
    data["events"] = [
        {
            "at": 2400,
            "type": "storm",
            "share": 0.5,
            "over": 300,
            "rebalance_share": 0.8,
            "rebalance_lead": [600, 1800],
            "early_recommendations": True,
        },
        {"at": 4000, "type": "shortage", "duration": 900},
    ]
    data["services"] = [{"name": "web", "desired": 30, "cpu": 1024, "memory": 2048}]
    return from_dict(data)


@pytest.mark.parametrize("seed", [1, 2])
def test_every_policy_meets_the_same_market_with_the_new_keys(seed: int) -> None:
    digests = {}
    for name, figures in simulate(everything(), ["scaler", "ecs-native", "ecs-scaler"], seed)[
        "results"
    ].items():
        digests[name] = figures["market_digest"]
    digests["listener"] = Sim(everything(), Listener(), seed).run()["market_digest"]
    assert len(set(digests.values())) == 1, digests


def test_the_new_keys_are_part_of_the_digest() -> None:
    plain = copy.deepcopy(raw())
    assert run(plain)[0].market.digest() != Sim(everything(), Listener(), 1).run()["market_digest"]
