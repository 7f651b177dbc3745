"""The built-in market scenarios: az-storm, long-lead, dry-market. Each runs under every policy on
one market per seed, and its market has the shape its name promises."""

from __future__ import annotations

from typing import Any

import pytest

from scaler.cli import BUILTINS, EXTRA_POLICIES, POLICY_NAMES
from scaler.sim.builtin import AZS, NAMES, builtin
from scaler.sim.builtin_market import NAMES as MARKET
from scaler.sim.builtin_market import SIZE
from scaler.sim.engine import Sim
from scaler.sim.run import simulate
from scaler.sim.scenario import Scenario


def small(name: str, seed: int = 1) -> Scenario:
    return builtin(name, instances=36, tasks=120, services=8, seed=seed)


def test_they_are_built_in_and_known_to_the_command_line() -> None:
    assert set(MARKET) <= set(NAMES) and set(MARKET) <= set(BUILTINS)
    scenario = builtin("long-lead")
    assert sum(p.initial for p in scenario.pools) == SIZE[0]
    assert sum(s.desired for s in scenario.services) == pytest.approx(SIZE[1], abs=SIZE[2])


@pytest.mark.parametrize("name", MARKET)
def test_every_policy_runs_on_one_market(name: str) -> None:
    policies = [*POLICY_NAMES, *EXTRA_POLICIES]  # the shipped scaler, the oracle, the models
    assert len(policies) >= 4
    report = simulate(small(name).with_hours(2.0), policies, 1)
    for policy, figures in report["results"].items():
        assert 0.9 < figures["availability"] <= 1.0, (policy, figures["availability"])
    assert len({f["market_digest"] for f in report["results"].values()}) == 1, report


class Bystander:
    """A policy that does nothing: the market as it comes, with no instance moved out of it."""

    name = "bystander"

    def start(self, sim: Sim) -> None:
        pass

    def on_signal(self, sim: Sim, signal: object) -> None:
        pass


def trace(name: str, seed: int) -> tuple[Sim, list[dict[str, Any]]]:
    records: list[dict[str, Any]] = []
    sim = Sim(small(name, seed), Bystander(), seed, trace=records.append)
    sim.run()
    return sim, records


@pytest.mark.parametrize("seed", [1, 2])
def test_az_storm_interrupts_one_az_for_hours(seed: int) -> None:
    sim, _ = trace("az-storm", seed)
    storms = [
        r for rows in sim.market.timeline.values() for r in rows if r[:2] == ["reclaim", "storm"]
    ]
    assert storms, "the storm reclaims"
    assert {sim.pools[r[2]].az for r in storms} == {AZS[0]}
    assert {r[2] for r in storms} == {p.name for p in sim.market.spot if p.az == AZS[0]}
    assert all(r[9] - r[3] >= 2 * 3600 for r in storms), "spot launched there is reclaimed"


@pytest.mark.parametrize("seed", [1, 2])
def test_long_lead_recommends_most_interruptions_well_ahead(seed: int) -> None:
    _, records = trace("long-lead", seed)
    warned = {r["instance"]: r["t"] for r in records if r["what"] == "warning"}
    advised: dict[str, float] = {}
    for r in records:
        if r["what"] == "recommendation":
            advised.setdefault(r["instance"], r["t"])
    ahead = [i for i, t in warned.items() if i in advised and 600 <= t - advised[i] <= 1800]
    assert len(ahead) >= 0.6 * len(warned) > 0, (len(ahead), len(warned))
    spot = [p for p in small("long-lead", seed).pools if p.capacity == "spot"]
    assert all(p.false_recommendations_per_hour > 0 for p in spot), "some are never followed"


@pytest.mark.parametrize("seed", [1, 2])
def test_dry_market_takes_every_spot_pool_for_an_hour_as_interruptions_go_on(seed: int) -> None:
    sim, _ = trace("dry-market", seed)
    for pool in sim.market.spot:
        assert ["shortage", "shortage", 1800.0, 5400.0] in sim.market.timeline[pool.name]
    during = [
        r
        for rows in sim.market.timeline.values()
        for r in rows
        if r[0] == "reclaim" and 1800 <= r[3] < 5400
    ]
    assert during, "everyday interruptions go on in the shortage"
