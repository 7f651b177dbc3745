"""The capacity controller runs at its clock's time, so a virtual clock can drive it.

Reader and actuator are in-process stand-ins for the ports (:mod:`scaler.capacity.ports`): the
controller is the thing under test, not AWS.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from scaler.aws.lease import Always
from scaler.aws.replaced import Replacements
from scaler.capacity.controller import CapacityController
from scaler.capacity.observed import Observed
from scaler.capacity.ports import Leader
from scaler.capacity.troubles import LAUNCH_GRACE
from scaler.clock import ManualClock
from scaler.metrics import Metrics
from scaler.model import ContainerInstance
from scaler.notices import NoticeBoard
from scaler.plan.capacity import CapacityPlan, CapacityPolicy, CapacitySnapshot, PoolView

POOL = PoolView("spot-asg", "spot", "*", 2048, 4096, 0.1, 1, max_size=5)


class Reader:
    def __init__(self) -> None:
        self.read_at: list[float] = []

    @property
    def groups(self) -> dict[str, str]:
        return {POOL.name: POOL.capacity}

    async def validate(self) -> None:
        return None

    async def read(self, now: float) -> Observed:
        self.read_at.append(now)
        snap = CapacitySnapshot(now, (), (POOL,), ())
        return Observed(snap, max_size={POOL.name: 5}, desired={POOL.name: 2}, live={POOL.name: 1})

    async def failed_launches(self, owing: dict[str, float]) -> dict[str, str]:
        return {}

    async def unchanged(self, now: float) -> bool:
        return False


class Actuator:
    def __init__(self) -> None:
        self.leader: Leader = Always()
        self.asked: dict[str, tuple[int, float]] = {}
        self.shortfalls: dict[str, float] = {}
        self.acted = 0
        self.replacements = Replacements()

    async def apply(self, plan: CapacityPlan, observed: Observed, now: float) -> None:
        return None

    async def give_back(self, plan: CapacityPlan, observed: Observed, now: float) -> None:
        return None

    async def grow(
        self,
        name: str,
        count: int,
        observed: Observed,
        now: float,
        reason: str,
        alternatives: tuple[str, ...] = (),
    ) -> int:
        return 0

    def removable(self, observed: Observed, nodes: Iterable[str]) -> list[str]:
        return list(nodes)

    async def mark_retiring(self, node: str, reason: str) -> bool:
        return False

    async def drain(self, ci: ContainerInstance, reason: str) -> bool:
        return False

    async def empty(self, ci: ContainerInstance | None) -> bool:
        return False

    async def retire(self, node: str, pool: str, reason: str, observed: Observed) -> bool:
        return False

    async def terminate(self, node: str, reason: str, now: float) -> bool:
        return False

    async def lower_fleet(self, fleet: str, target: float) -> bool:
        return False


def _controller(clock: ManualClock) -> tuple[CapacityController, Reader, Actuator]:
    reader, actuator = Reader(), Actuator()
    policy = CapacityPolicy()
    controller = CapacityController(
        reader, actuator, NoticeBoard(), policy, Metrics(), 60.0, clock=clock
    )
    return controller, reader, actuator


async def test_a_cycle_reads_at_its_clocks_time() -> None:
    clock = ManualClock(datetime(2031, 5, 1, tzinfo=UTC))
    controller, reader, _ = _controller(clock)
    await controller.cycle()
    clock.advance(90.0)
    await controller.cycle()
    start = datetime(2031, 5, 1, tzinfo=UTC).timestamp()
    assert reader.read_at == [start, start + 90.0]


async def test_a_group_slow_to_launch_is_avoided_after_the_grace_in_virtual_time() -> None:
    clock = ManualClock(datetime(2031, 5, 1, tzinfo=UTC))
    controller, _, actuator = _controller(clock)
    asked_at = clock.now().timestamp()
    actuator.asked[POOL.name] = (2, asked_at)
    await controller.cycle()
    assert POOL.name in actuator.asked, "within the grace: still waited for"
    clock.advance(LAUNCH_GRACE + 1.0)
    await controller.cycle()
    assert POOL.name not in actuator.asked
    now = clock.now().timestamp()
    assert controller.memory.cooling(POOL.name, now, CapacityPolicy().pool_cooldown)
