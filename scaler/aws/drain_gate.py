"""Hold recommendation drains until the disruption budget and room allow them.

Each recommended instance waits in :meth:`DrainGate.wait` (the handler holds its message as a
follow-up meanwhile, outside the handler slots). Every ``poll`` seconds (``SCALER_DRAIN_POLL``)
the gate reads the container instances (once for all the waiting ones) and asks
:func:`scaler.plan.drain_budget.admit` which of all the waiting instances may drain now. Under
one lock, so concurrent recommendations never see the same free slot or the same free room: an
admitted instance counts as disrupting from the moment it is admitted until its drain is done
(then its mark says so) or failed.

Counted as disrupting: instances admitted and not yet drained, and DRAINING instances carrying a
reversible scaler mark that still hold tasks (its recommendation drains whose tasks are still
moving). The budget caps the scaler's own recommendation drains: instances drained on a spot
warning, a lifecycle action or by hand neither wait for it nor use it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from scaler.aws.ecs import InstanceDirectory
from scaler.clock import Clock
from scaler.model import ContainerInstance
from scaler.plan.drain_budget import Member, Waiting, admit
from scaler.plan.undrain import parse_mark

log = logging.getLogger(__name__)


@dataclass
class _Wait:
    waiting: Waiting
    decided: asyncio.Future[bool] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class DrainGate:
    def __init__(
        self,
        directory: InstanceDirectory,
        clock: Clock,
        *,
        share: float,
        expire_after: float,
        poll: float,
    ) -> None:
        self._directory = directory
        self._clock = clock
        self._share = share
        self._expire_after = expire_after
        self._poll = poll
        self._lock = asyncio.Lock()
        self._waiting: dict[str, _Wait] = {}
        self._admitted: set[str] = set()
        self._changed = False  # something was admitted since the last read: read afresh
        self._read_at: float | None = None  # monotonic time of the gate's last read

    async def wait(self, instance: ContainerInstance, since: float) -> bool:
        """Wait until ``instance`` may drain (True; call :meth:`done` after the drain), or until
        its recommendation is dropped or it is draining already (False)."""
        iid = instance.ec2_instance_id
        used = (instance.cpu - instance.free_cpu, instance.memory - instance.free_memory)
        entry = self._waiting.get(iid)
        if entry is None:
            entry = _Wait(Waiting(iid, since, max(0, used[0]), max(0, used[1])))
            self._waiting[iid] = entry
        try:
            while True:
                await self._decide()
                try:
                    return await asyncio.wait_for(asyncio.shield(entry.decided), timeout=self._poll)
                except TimeoutError:
                    continue
        except asyncio.CancelledError:  # shutting down: the message goes back to the queue
            if self._waiting.get(iid) is entry:
                del self._waiting[iid]
            self.done(iid)
            raise

    def done(self, instance_id: str) -> None:
        """The drain of an admitted instance is done (or failed)."""
        self._admitted.discard(instance_id)

    async def _decide(self) -> None:
        async with self._lock:
            if not self._waiting:
                return
            mono = self._clock.monotonic()
            if self._changed or self._read_at is None or mono - self._read_at >= self._poll:
                instances = await self._directory.refresh()  # tasks moved, instances came
                self._changed, self._read_at = False, mono
            else:
                instances = self._directory.known()
            by_id = {ci.ec2_instance_id: ci for ci in instances}
            for iid in [i for i in self._waiting if i not in by_id or by_id[i].draining]:
                self._settle(iid, False)  # gone, or drained meanwhile for another reason
            now = self._clock.now().timestamp()
            result = admit(
                [w.waiting for w in self._waiting.values()],
                [self._member(ci) for ci in instances if ci.status in ("ACTIVE", "DRAINING")],
                self._share,
                now,
                self._expire_after,
            )
            for iid, why in result.held.items():
                log.debug("recommendation drain held", extra={"instance_id": iid, "why": why})
            for iid in result.expired:
                log.info(
                    "recommendation dropped: waited too long for the disruption budget or room",
                    extra={"instance_id": iid},
                )
                self._settle(iid, False)
            for iid in result.drain:
                self._admitted.add(iid)
                self._changed = True
                self._settle(iid, True)

    def _settle(self, iid: str, drain: bool) -> None:
        entry = self._waiting.pop(iid, None)
        if entry is not None and not entry.decided.done():
            entry.decided.set_result(drain)

    def _member(self, ci: ContainerInstance) -> Member:
        iid = ci.ec2_instance_id
        mark = parse_mark(ci.drain_mark or "")
        moving = ci.draining and ci.running_tasks + ci.pending_tasks > 0
        disrupting = iid in self._admitted or (moving and mark is not None and mark.reversible)
        return Member(iid, ci.status, ci.free_cpu, ci.free_memory, disrupting)
