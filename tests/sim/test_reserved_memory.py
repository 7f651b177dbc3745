"""``ecs_reserved_memory_mib``: every instance registers with less memory than its type has,
and the scaler must size room by the registered size."""

from __future__ import annotations

import pytest

from scaler.sim.engine import Sim
from scaler.sim.policies import EcsNative
from scaler.sim.scenario import ScenarioError, from_dict, to_dict
from tests.sim.shipped_helpers import run_scaler
from tests.sim.workload_scenarios import base


def test_registered_memory_is_the_type_memory_less_the_reserve() -> None:
    sim = Sim(from_dict(base(ecs_reserved_memory_mib=512)), EcsNative(), 1)
    sim.begin()
    assert {i.memory for i in sim.cluster.instances.values()} == {16384 - 512}
    sim.launch("spot-m5.2xlarge-us-east-1a", 1, "test")
    sim.step_until(200)  # registered by now (boot delay 60-120 s)
    bigger = [i for i in sim.cluster.instances.values() if i.type.name == "m5.2xlarge"]
    assert [i.memory for i in bigger] == [32768 - 512]


def test_default_reserve_is_none() -> None:
    scenario = from_dict(base())
    assert scenario.ecs_reserved_memory_mib == 0
    assert "ecs_reserved_memory_mib" not in to_dict(scenario)


def test_a_task_of_the_whole_type_memory_no_longer_fits_it() -> None:
    """A 16 GiB task fits an m5.xlarge by its type, not once 256 MiB are reserved: it needs the
    larger type, and the scaler launches it."""
    raw = base(ecs_reserved_memory_mib=256, hours=0.5)
    raw["services"] = [{"name": "whole", "desired": 2, "cpu": 1024, "memory": 16384}]
    run = run_scaler(from_dict(raw), 1)
    sim, result = run.sim, run.figures
    placed = [t.instance for t in sim.cluster.services["whole"].tasks.values()]
    assert placed and all(i is not None and i.type.name == "m5.2xlarge" for i in placed)
    assert result["availability"] > 0.8


@pytest.mark.parametrize(
    ("value", "line"),
    [
        (-1, "ecs_reserved_memory_mib: must be at least 0 (got -1)"),
        (16384, "ecs_reserved_memory_mib: 16384 MiB leaves m5.xlarge (16384 MiB) no memory"),
        (1.5, "ecs_reserved_memory_mib: expected an integer, got 1.5 (a number)"),
    ],
)
def test_validation(value: object, line: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        from_dict(base(ecs_reserved_memory_mib=value))
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(line), caught.value.problems
