"""The roll's surge step through its port: what is raised, drained and set back each cycle."""

from __future__ import annotations

from collections.abc import Sequence

from scaler.aws.lease import Always
from scaler.capacity.observed import Observed
from scaler.capacity.ports import Leader
from scaler.capacity.roll import PreDrainSurge, RollMemory
from scaler.ecs.health import TaskHealth
from scaler.plan.capacity import CapacitySnapshot, NodeView, ServiceView
from scaler.plan.roll import Deployment, RollPolicy, SurgeMark


class Port:
    """Services as a dict; each change applied to it (the marks too)."""

    def __init__(self, services: dict[str, Deployment] | None) -> None:
        self.services = services
        self.leader: Leader = Always()
        self.calls: list[tuple[str, str, int | None]] = []

    async def read(self, names: Sequence[str]) -> dict[str, Deployment] | None:
        return None if self.services is None else dict(self.services)

    async def raise_count(self, service: str, mark: SurgeMark, why: str) -> bool:
        assert self.services is not None
        old = self.services[service]
        self.services[service] = Deployment(
            service,
            mark.raised,
            old.running,
            0,
            old.min_healthy_percent,
            old.max_percent,
            mark=mark,
        )
        self.calls.append(("raise", service, mark.raised))
        return True

    async def set_back(self, service: str, desired: int | None, why: str) -> bool:
        self.calls.append(("back", service, desired))
        return True


def _observed(now: float, status: str = "ACTIVE", tasks: int = 2) -> Observed:
    node = NodeView("i-old", "g", "az1", "spot", status, 2048, 4096, 0, 0, tasks=tasks)
    web = ServiceView("web", 4, 256, 256, {"i-old": tasks} if tasks else {})
    return Observed(CapacitySnapshot(now, (node,), (), (web,)))


WEB = Deployment("web", 4, 4, 0, 50, 200)


async def test_an_instance_drains_once_its_service_surged_and_is_set_back_after() -> None:
    port, memory = Port({"web": WEB}), RollMemory()
    step = PreDrainSurge(port, memory, RollPolicy())
    assert await step.step(["i-old"], _observed(0.0)) == []
    assert port.calls == [("raise", "web", 6)] and memory.waiting == {"i-old": 0.0}
    assert port.services is not None
    mark = port.services["web"].mark
    extra = (TaskHealth("HEALTHY", 0.0),) * 4 + (TaskHealth("UNKNOWN", 30.0),) * 2
    port.services["web"] = Deployment("web", 6, 6, 0, 50, 200, mark=mark, tasks=extra)
    assert await step.step([], _observed(60.0)) == []  # running, not healthy yet
    healthy = (TaskHealth("HEALTHY", 0.0),) * 6
    port.services["web"] = Deployment("web", 6, 6, 0, 50, 200, mark=mark, tasks=healthy)
    assert await step.step([], _observed(90.0)) == ["i-old"]
    assert await step.step([], _observed(120.0, "DRAINING", tasks=0)) == []
    assert port.calls[-1] == ("back", "web", 4)


async def test_a_failed_read_drains_nothing_until_the_wait_is_over() -> None:
    memory = RollMemory()
    step = PreDrainSurge(Port(None), memory, RollPolicy(surge_wait=600.0))
    assert await step.step(["i-old"], _observed(0.0)) == []
    assert await step.step([], _observed(300.0)) == []
    assert await step.step([], _observed(600.0)) == ["i-old"]
    assert memory.waiting == {}


async def test_off_it_drains_at_once_and_settles_surges_marked_before() -> None:
    marked = Deployment("web", 6, 6, 0, 50, 200, mark=SurgeMark(4, 2, "i-gone", 0.0))
    port = Port({"web": marked})
    step = PreDrainSurge(port, RollMemory(), RollPolicy(surge=False))
    assert await step.step(["i-old"], _observed(0.0)) == ["i-old"]
    assert port.calls == [("back", "web", 4)]


async def test_while_the_roll_is_paused_a_waiting_drain_waits_past_its_wait() -> None:
    memory = RollMemory()
    step = PreDrainSurge(Port(None), memory, RollPolicy(surge_wait=600.0))
    assert await step.step(["i-old"], _observed(0.0)) == []
    assert await step.step([], _observed(700.0), hold=True) == []  # a spot storm
    assert memory.waiting == {"i-old": 0.0}
    assert await step.step([], _observed(800.0)) == ["i-old"]
    port = Port({"web": WEB})
    step = PreDrainSurge(port, RollMemory(), RollPolicy(surge_wait=600.0))
    assert await step.step(["i-old"], _observed(0.0), hold=True) == []
    assert await step.step([], _observed(700.0), hold=True) == []
    assert port.calls == []  # nothing raised while paused
