"""The rebalance planner's fast placement prediction answers exactly as the placement model does
on the predicted free room: the same instances, in the same order, for a stop or a surge."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from scaler.ecs.cluster import ACTIVE, RUNNING, STOPPED, Cluster, Instance, ServiceState, Task
from scaler.ecs.placement import Spread, likely, spread_fields, what_if
from scaler.plan.cooldown import Cooling
from scaler.plan.predicted_room import PredictedRoom
from scaler.plan.rebalance import RebalancePolicy
from tests.unit.test_plan_rebalance_reference import cases


def modelled(
    active: list[Instance],
    room: PredictedRoom,
    task: Task,
    service: ServiceState,
    surge: bool,
) -> list[Instance]:
    """:func:`likely` on every ACTIVE instance given the predicted room; for a stop, ``task``
    stopped and its room back on its instance."""
    free = {i.id: (room.free_cpu[n], room.free_mem[n]) for n, i in enumerate(active)}
    source = task.instance
    assert source is not None
    if not surge:
        cpu, mem = free[source.id]
        free[source.id] = (cpu + task.service.cpu, mem + task.service.memory)
    state = task.state
    task.state = state if surge else STOPPED
    try:
        with what_if(active, free):
            return likely(active, service, Spread(service, spread_fields(service.spec)))
    finally:
        task.state = state


@settings(max_examples=300, deadline=None)
@given(cases(), st.data())
def test_a_prediction_is_what_the_placement_model_says(
    case: tuple[Cluster, RebalancePolicy, Cooling, int, int], data: st.DataObject
) -> None:
    cluster = case[0]
    active = [i for i in cluster.instances.values() if i.status == ACTIVE]
    tasks = [
        (t, s)
        for s in cluster.services.values()
        for t in s.tasks.values()
        if t.state == RUNNING and t.instance is not None and t.instance.status == ACTIVE
    ]
    if not tasks:
        return
    room = PredictedRoom(active)
    for _ in range(data.draw(st.integers(1, 8), label="steps")):
        if data.draw(st.booleans(), label="a move planned"):
            inst = data.draw(st.sampled_from(active))
            cpu, mem = data.draw(st.sampled_from([(256, 512), (1024, 4096), (2048, 8192)]))
            room.take(inst, cpu, mem)
            continue
        task, service = data.draw(st.sampled_from(tasks))
        surge = data.draw(st.booleans(), label="surge")
        assert task.instance is not None
        expected = modelled(active, room, task, service, surge)
        assert room.likely(task, task.instance, service, surge) == expected
