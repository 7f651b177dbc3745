"""Rolling a new image through the cluster, in the simulator: the ami-roll scenario's done-when
figures, the pause during a spot storm, and the baseline's instance refresh."""

from __future__ import annotations

from dataclasses import replace

import pytest

from scaler.ecs.cluster import Instance
from scaler.plan.roll import RollPolicy
from scaler.sim.builtin import builtin
from scaler.sim.engine import Sim
from scaler.sim.policies import POLICIES, ScalerPolicy
from scaler.sim.scenario import Event


@pytest.mark.slow
@pytest.mark.parametrize("seed", [7, 11, 23])
def test_ami_roll_replaces_every_instance_within_budget_and_available(seed: int) -> None:
    scenario = builtin("ami-roll", seed=seed)
    figures = Sim(scenario, POLICIES["scaler-rolling"](), seed).run()
    assert figures["out_of_date_instances"] == 0
    assert figures["availability"] >= 0.9995
    assert figures["peak_disrupted_share"] <= RollPolicy().max_disrupted
    assert figures["interrupted_tasks"] == 0


def test_without_a_roll_out_of_date_instances_stay() -> None:
    scenario = builtin("ami-roll", seed=7).with_hours(1.0)
    figures = Sim(scenario, POLICIES["scaler"](), 7).run()
    assert figures["out_of_date_instances"] == 48, "the plain scaler leaves images alone"


def test_the_baseline_instance_refresh_replaces_every_instance() -> None:
    scenario = builtin("ami-roll", seed=7)
    figures = Sim(scenario, POLICIES["ecs-native"](), 7).run()
    assert figures["out_of_date_instances"] == 0
    assert figures["availability"] < 0.9995, "terminate-first refresh dips min-50% services"


class Watched(ScalerPolicy):
    """The rolling scaler, recording when it drains an instance while spot is in trouble."""

    def __init__(self) -> None:
        super().__init__(roll=RollPolicy())
        self.during_storm: list[tuple[float, str]] = []
        self.drained: list[float] = []

    def start(self, sim: Sim) -> None:
        super().start(sim)
        drain = sim.drain

        def watched(instances: list[Instance], why: str = "") -> int:
            for inst in instances:
                if inst.id not in sim.doomed:
                    self.drained.append(sim.now)
                    if sim.doomed:
                        self.during_storm.append((sim.now, inst.id))
            return drain(instances, why)

        sim.drain = watched  # type: ignore[method-assign]


def test_the_roll_pauses_while_a_spot_storm_is_under_way() -> None:
    storm = Event(2400, "storm", {"share": 0.3, "over": 300, "unavailable_for": 1800})
    base = builtin("ami-roll", seed=7)
    scenario = replace(base, events=(*base.events, storm))
    policy = Watched()
    sim = Sim(scenario, policy, 7)
    figures = sim.run()
    assert not policy.during_storm, "no roll drain while instances are under a spot notice"
    trouble = policy.memory.last_spot_trouble()
    assert trouble is not None and trouble >= 2400
    pause = RollPolicy().pause_after
    assert not [t for t in policy.drained if trouble < t < trouble + pause], "quiet period kept"
    assert [t for t in policy.drained if t < 2400], "the roll was under way before the storm"
    assert [t for t in policy.drained if t > trouble + pause], "and went on after it"
    assert figures["out_of_date_instances"] == 0
