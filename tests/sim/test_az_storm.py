"""A storm aimed at one AZ, measured in the simulator with the shipped scaler: once several of
its pools are interrupted together, replacements go to the other AZs instead of back into the
storm, pool after pool."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from scaler.ecs.cluster import Instance
from scaler.sim.builtin import AZS, builtin
from scaler.sim.engine import Policy, Sim
from scaler.sim.scenario import Event, Pool, Scenario
from tests.sim.shipped_helpers import ShippedRun, run_scaler

SEEDS = (7, 11, 23)
START, LASTS = 900.0, 1800.0
STORMY = AZS[0]


class Recording(Sim):
    """The simulator, noting every spot instance launched into the stormy AZ during the storm."""

    def __init__(self, scenario: Scenario, policy: Policy, seed: int, **options: Any) -> None:
        super().__init__(scenario, policy, seed, **options)
        self.into_storm: list[float] = []

    def _launch_one(self, pool: Pool) -> Instance:
        inst = super()._launch_one(pool)
        if inst.capacity == "spot" and inst.az == STORMY and START <= self.now < START + LASTS:
            self.into_storm.append(self.now)
        return inst


def storm_in_one_az(seed: int) -> ShippedRun:
    storm = Event(
        START,
        "storm",
        {"share": 1.0, "over": 300, "unavailable_for": 0, "az": STORMY, "lasts": LASTS},
    )
    busier = Event(START, "scale", {"factor": 1.3})  # and demand grows: replacements are needed
    scenario = replace(
        builtin("storm", seed=seed, instances=24, tasks=120, services=6),
        hours=1.5,
        events=(storm, busier),
    )
    # Consolidation on: were it to give back room in the first quarter hour (no spot trouble
    # seen yet), the storm's first replacements (and the 30% more demand) would launch before
    # several of the AZ's pools were interrupted, into the storm (seed 11). The quiet period
    # after the start keeps the room until the storm is seen.
    return run_scaler(scenario, seed, {"consolidate": True}, engine=Recording)


@pytest.mark.parametrize("seed", SEEDS)
def test_replacements_leave_the_stormy_az(seed: int) -> None:
    run = storm_in_one_az(seed)
    sim, figures = run.sim, run.figures
    assert isinstance(sim, Recording)
    assert sim.into_storm == [], f"spot launched into the storm at {sim.into_storm}"
    during = [r for r in run.trace if r["what"] == "launch" and START <= r["t"] < START + LASTS]
    assert during, "replacements were launched during the storm"
    assert figures["availability"] >= 0.99
