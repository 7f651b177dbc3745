"""Where ``replace-then-drain`` gets its replacement capacity.

A rebalance recommendation often comes minutes before the interruption warning. With
``SCALER_REBALANCE_POLICY=replace-then-drain`` the scaler first asks a :class:`ReplacementSource`
for capacity to take the instance's tasks, and drains once it is ready (or once
``SCALER_REPLACEMENT_TIMEOUT`` passes, whichever comes first), so the tasks move straight onto
running capacity. Until a capacity source is configured, :class:`NoReplacement` answers at once
that none is coming, and the instance is drained right away.

With replicas, only the leader runs the capacity controller: :class:`SharedReplacement` asks it
through the lease table when this replica does not lead (:mod:`scaler.aws.shared_notices`), and
waits for the leader to mark the request ready.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from scaler.clock import Clock, SystemClock
from scaler.model import ContainerInstance
from scaler.notices import REPLACEMENT, NoticeBoard, SharedNotice, shared

if TYPE_CHECKING:
    from scaler.capacity.controller import CapacityController


class ReplacementSource(Protocol):
    async def replace(self, instance: ContainerInstance, reason: str) -> bool:
        """Bring up capacity to replace ``instance``; True once it is ready, False if none comes."""
        ...


class NoReplacement:
    async def replace(self, instance: ContainerInstance, reason: str) -> bool:
        return False


class CapacityReplacement:
    """Replacement through the capacity controller: the instance counts as losing its place,
    the controller tops up, and the answer comes once a plan needs nothing more."""

    def __init__(
        self,
        controller: CapacityController,
        board: NoticeBoard,
        timeout: float,
        clock: Clock | None = None,
    ) -> None:
        self._controller = controller
        self._board = board
        self._timeout = timeout
        self._clock = clock or SystemClock()

    async def replace(self, instance: ContainerInstance, reason: str) -> bool:
        asked_after = self._controller.cycles
        now = self._clock.now().timestamp()
        self._board.warned(instance.ec2_instance_id, now, notice=self._timeout)
        self._controller.wake.set()
        await self._controller.ready_after(asked_after)
        return True


class Requests(Protocol):
    """Where replicas leave replacement requests for the leader (the lease table)."""

    async def publish(self, notice: SharedNotice) -> None: ...

    async def ready(self, request: SharedNotice, poll: float) -> bool: ...


class SharedReplacement:
    """Replacement by whichever replica leads: this one's controller while it leads, else a
    request the leader's controller answers once it has the capacity."""

    def __init__(
        self,
        local: CapacityReplacement,
        controller: CapacityController,
        requests: Requests,
        clock: Clock,
        timeout: float,
        poll: float,
    ) -> None:
        self._local = local
        self._controller = controller
        self._requests = requests
        self._clock = clock
        self._timeout = timeout
        self._poll = poll

    async def replace(self, instance: ContainerInstance, reason: str) -> bool:
        if self._controller.leader.holds():
            return await self._local.replace(instance, reason)
        now = self._clock.now().timestamp()
        request = shared(instance.ec2_instance_id, REPLACEMENT, now, end=now + self._timeout)
        await self._requests.publish(request)
        return await self._requests.ready(request, self._poll)
