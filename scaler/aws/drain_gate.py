"""Hold recommendation drains until the disruption budget and room allow them.

Each recommended instance waits in :meth:`DrainGate.wait` (the handler holds its message as a
follow-up meanwhile, outside the handler slots). Every ``poll`` seconds (``SCALER_DRAIN_POLL``)
the gate reads the container instances (once for all the waiting ones) and asks
:func:`scaler.plan.drain_budget.admit` which of all the waiting instances may drain now. Under
one lock, so concurrent recommendations never see the same free slot or the same free room: an
admitted instance counts as disrupting from the moment it is admitted until its drain is done
(then its mark says so) or failed.

Counted as disrupting: instances admitted and not yet drained, DRAINING instances carrying a
reversible scaler mark that still hold tasks (its recommendation drains whose tasks are still
moving), and the instances of the shared budget's slots in use. The budget caps the scaler's own
recommendation drains: instances drained on a spot warning, a lifecycle action or by hand neither
wait for it nor use it.

Replicas share the budget (:mod:`scaler.plan.budget_slots`): an instance the gate would admit
must also take a slot of the budget in the store (:mod:`scaler.aws.budget_slots`), read only
when something would be admitted. The slots other replicas' drains hold count as disrupting;
one that finds no slot free stays held (``budget taken by another replica``). A store that
cannot be read or written holds every drain until it can: the budget is never guessed. An
admitted drain that did not happen frees its slot in :meth:`DrainGate.done`; one that did keeps
it until its tasks have moved.

An admitted instance may wait minutes before its drain (its services' surge), while spot takes
instances and the budget shrinks. :meth:`DrainGate.confirm`, just before the drain, reads the
cluster afresh and lets it go only if the budget still holds it
(:func:`scaler.plan.drain_budget.still_within`); otherwise its admission and slot are given
back and it waits again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from scaler.aws.budget_slots import BudgetSlots, Unshared
from scaler.aws.ecs import InstanceDirectory
from scaler.clock import Clock
from scaler.model import ContainerInstance
from scaler.plan.budget_slots import Slot, busy_indices, candidates, in_use
from scaler.plan.drain_budget import Admission, Member, Waiting, admit, still_within
from scaler.plan.undrain import parse_mark

log = logging.getLogger(__name__)
ANOTHER = "budget taken by another replica"


@dataclass
class _Wait:
    waiting: Waiting
    decided: asyncio.Future[bool] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass(frozen=True)
class _View:
    """The cluster as the gate read it for one decision."""

    instances: Sequence[ContainerInstance]
    now: float  # epoch seconds
    seen_at: float  # epoch seconds at the start of the read of ``instances``

    def moved(self) -> dict[str, bool]:
        """Instance id -> DRAINING with no task left to move."""
        return {
            ci.ec2_instance_id: ci.draining and ci.running_tasks + ci.pending_tasks == 0
            for ci in self.instances
        }


class DrainGate:
    def __init__(
        self,
        directory: InstanceDirectory,
        clock: Clock,
        *,
        share: float,
        expire_after: float,
        poll: float,
        slots: BudgetSlots | None = None,
        skew: float = 0.0,
    ) -> None:
        self._directory = directory
        self._clock = clock
        self._share = share
        self._expire_after = expire_after
        self._poll = poll
        self._slots: BudgetSlots = slots or Unshared()
        self._skew = skew  # clock skew allowed between replicas (a slot's ``taken``)
        self._lock = asyncio.Lock()
        self._waiting: dict[str, _Wait] = {}
        self._admitted: dict[str, Slot] = {}  # admitted, drain not yet done -> its slot
        self._changed = False  # something was admitted since the last read: read afresh
        self._read_at: float | None = None  # monotonic time of the gate's last read
        self._seen_at = float("-inf")  # epoch time of the gate's last read

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
            self._admitted.pop(iid, None)  # its slot: taken again on redelivery, or expires
            raise

    async def confirm(self, instance_id: str) -> bool:
        """Whether the admitted ``instance_id`` may drain now (the cluster read afresh); if
        not, its admission and slot are given back (:meth:`wait` again)."""
        async with self._lock:
            if instance_id not in self._admitted:
                return False
            self._changed = True  # a fresh read: instances may have gone since the admission
            view = await self._read()
            slots = await self._read_slots()
            if slots is not None:
                others = set(self._others(slots, view))
                members = [
                    self._member(ci, others)
                    for ci in view.instances
                    if ci.status in ("ACTIVE", "DRAINING")
                ]
                if still_within(instance_id, members, self._share):
                    return True
            log.info(
                "recommendation drain held again: the disruption budget shrank since it was"
                " admitted",
                extra={"instance_id": instance_id},
            )
        await self.done(instance_id, False)
        return False

    async def done(self, instance_id: str, draining: bool) -> None:
        """The admitted instance's drain is over: made, or found made already (``draining``:
        its slot is kept until its tasks have moved), or not made (failed, gone, dry run: its
        slot is freed at once)."""
        slot = self._admitted.pop(instance_id, None)
        if slot is None or draining:
            return
        try:
            await self._slots.release(slot)
        except Exception as exc:
            log.warning(
                "disruption budget slot not freed; it frees itself when it expires",
                extra={"instance_id": instance_id, "error": repr(exc)},
            )

    async def _decide(self) -> None:
        async with self._lock:
            if not self._waiting:
                return
            view = await self._read()
            by_id = {ci.ec2_instance_id: ci for ci in view.instances}
            for iid in [i for i in self._waiting if i not in by_id or by_id[i].draining]:
                self._settle(iid, False)  # gone, or drained meanwhile for another reason
            result, slots = await self._shared_admission(view)
            for iid, why in result.held.items():
                log.debug("recommendation drain held", extra={"instance_id": iid, "why": why})
            for iid in result.expired:
                log.info(
                    "recommendation dropped: waited too long for the disruption budget or room",
                    extra={"instance_id": iid},
                )
                self._settle(iid, False)
            if slots is not None:  # None: the store cannot be read, every drain waits
                await self._take_slots(result, slots, view)

    async def _shared_admission(self, view: _View) -> tuple[Admission, list[Slot] | None]:
        """What to admit, counting the slots other drains hold (read only when something
        would be admitted without them), and those slots."""
        result = self._admit(view, ())
        if not result.drain:
            return result, []
        slots = await self._read_slots()
        others = self._others(slots or [], view)
        return (self._admit(view, others) if others else result), slots

    async def _take_slots(self, result: Admission, slots: list[Slot], view: _View) -> None:
        """Admit each instance of ``result`` that gets a slot; the others stay held."""
        busy = busy_indices(slots, view.now, view.moved(), view.seen_at, self._skew)
        for iid in result.drain:
            slot = await self._take(iid, slots, busy, result.budget, view.now)
            if slot is None:
                log.debug("recommendation drain held", extra={"instance_id": iid, "why": ANOTHER})
                continue
            busy.add(slot.index)
            self._admitted[iid] = slot
            self._changed = True
            self._settle(iid, True)

    async def _read(self) -> _View:
        mono, began = self._clock.monotonic(), self._clock.now().timestamp()
        if self._changed or self._read_at is None or mono - self._read_at >= self._poll:
            instances = await self._directory.refresh()  # tasks moved, instances came
            self._changed, self._read_at, self._seen_at = False, mono, began
        else:
            instances = self._directory.known()
        return _View(instances, self._clock.now().timestamp(), self._seen_at)

    def _admit(self, view: _View, others: Sequence[str]) -> Admission:
        extra = set(others)
        return admit(
            [w.waiting for w in self._waiting.values()],
            [
                self._member(ci, extra)
                for ci in view.instances
                if ci.status in ("ACTIVE", "DRAINING")
            ],
            self._share,
            view.now,
            self._expire_after,
        )

    def _others(self, slots: Sequence[Slot], view: _View) -> list[str]:
        """The instances of the slots in use, other than those waiting here."""
        moved = view.moved()
        return [
            s.instance_id
            for s in slots
            if s.instance_id not in self._waiting
            and in_use(s, view.now, moved, view.seen_at, self._skew)
        ]

    async def _read_slots(self) -> list[Slot] | None:
        try:
            return await self._slots.read()
        except Exception as exc:
            log.warning("disruption budget slots not read", extra={"error": repr(exc)})
            return None

    async def _take(
        self, iid: str, slots: Sequence[Slot], busy: set[int], budget: int, now: float
    ) -> Slot | None:
        for index, seen in candidates(iid, slots, busy, budget):
            try:
                slot = await self._slots.take(index, iid, seen, now)
            except Exception as exc:
                log.warning(
                    "disruption budget slot not taken",
                    extra={"instance_id": iid, "error": repr(exc)},
                )
                return None
            if slot is not None:
                return slot
        return None

    def _settle(self, iid: str, drain: bool) -> None:
        entry = self._waiting.pop(iid, None)
        if entry is not None and not entry.decided.done():
            entry.decided.set_result(drain)

    def _member(self, ci: ContainerInstance, others: set[str]) -> Member:
        iid = ci.ec2_instance_id
        mark = parse_mark(ci.drain_mark or "")
        moving = ci.draining and ci.running_tasks + ci.pending_tasks > 0
        disrupting = (
            iid in self._admitted
            or iid in others
            or (moving and mark is not None and mark.reversible)
        )
        return Member(iid, ci.status, ci.free_cpu, ci.free_memory, disrupting)
