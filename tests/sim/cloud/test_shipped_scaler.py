"""The shipped scaler (scaler.loop.Scaler, as `scaler run` builds it) in the simulated world:
it hears the storm through its queue, drains through ECS's API, and the engine's ECS model moves
the tasks; on the same market as the engine left alone, and the same at every run."""

from __future__ import annotations

from typing import Any

from scaler.sim.builtin import builtin
from scaler.sim.cloud.shipped import run_shipped
from scaler.sim.engine import Sim
from tests.sim.cloud.simulated import Idle

SCENARIO = builtin("storm", instances=24, tasks=120, services=6).with_hours(1.0)
SEED = 3


def _idle() -> dict[str, Any]:
    return Sim(SCENARIO, Idle(), SEED).run()


def test_the_shipped_scaler_drains_the_storm_through_the_api() -> None:
    shipped, idle = run_shipped(SCENARIO, SEED), _idle()
    assert shipped.figures["market_digest"] == idle["market_digest"], "the same market"
    assert shipped.signals > 0
    assert shipped.calls.get("ecs:UpdateContainerInstancesState", 0) >= 1
    assert shipped.calls.get("sqs:DeleteMessageBatch", 0) >= 1
    assert idle["interrupted_tasks"] > 0
    assert shipped.figures["interrupted_tasks"] < idle["interrupted_tasks"]
    assert shipped.figures["availability"] > idle["availability"]


def test_a_shipped_run_replays_exactly() -> None:
    assert run_shipped(SCENARIO, SEED) == run_shipped(SCENARIO, SEED)


def test_steady_state_reads_are_few() -> None:
    """Nothing happens for two hours: the scaler reads each task definition once and the
    container instances every few minutes, not every minute (AWS bills and throttles reads)."""
    quiet = builtin("steady", instances=24, tasks=120, services=6).with_hours(2.0)
    calls = run_shipped(quiet, SEED).calls
    assert calls.get("ecs:DescribeTaskDefinition", 0) <= 6 + 2
    assert calls.get("ecs:ListContainerInstances", 0) <= 2 * 15
