"""A desired count raised moments ago is not a placement failure: the shipped scaler reads it as
tasks without a place until ECS's scheduler has tried (a few seconds later), and packs them into
the free room first, so a scale-out the cluster already holds launches nothing."""

from __future__ import annotations

from scaler.sim.scenario import from_dict
from tests.sim.shipped_helpers import run_scaler
from tests.sim.workload_scenarios import base, live


def test_a_scale_out_the_free_room_holds_launches_nothing() -> None:
    """8 m5.xlarge (32 vCPU) run 8 vCPU of tasks; web grows by a task (0.5 vCPU) every 3 s for
    two minutes, so capacity cycles read raised counts ECS has not placed yet. Before the
    reader told those apart, it launched for them as for tasks ECS could not place."""
    raw = base(hours=0.5)
    raw["events"] = [
        {"at": 600.0 + 3 * i, "type": "scale", "services": ["web"], "desired": 8 + i}
        for i in range(1, 41)
    ]
    run = run_scaler(from_dict(raw), 5, {"headroom": 0.0})
    assert live(run.sim, "web") == 8 + 40
    assert not [r for r in run.trace if r["what"] == "launch"]
