"""Handle each event once, however often it is delivered.

EventBridge and SQS deliver at least once, so the same event (same ``id``) can arrive twice, even
at the same moment. :class:`Deduplicator` remembers event ids for a while:

- the first delivery *claims* the id and does the work;
- a delivery that arrives while the first is still working waits for it: if the first succeeded,
  the copy is a duplicate (deleted without acting); if it failed, the copy does the work itself;
- a delivery after success, within the TTL, is a duplicate.

Memory stays bounded: expired ids are pruned as new ones are added. Idempotent actions (draining
an already DRAINING instance is a success) cover what the memory cannot: another process, or a
redelivery after the TTL.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from scaler.clock import Clock


class Deduplicator:
    def __init__(self, clock: Clock, ttl: float) -> None:
        self._clock = clock
        self._ttl = ttl
        self._done: OrderedDict[str, float] = OrderedDict()  # id -> expiry, oldest first
        self._working: dict[str, asyncio.Future[bool]] = {}

    async def claim(self, event_id: str) -> bool:
        """True if the caller should do the work for ``event_id``; False for a duplicate."""
        while True:
            if self._is_done(event_id):
                return False
            working = self._working.get(event_id)
            if working is None:
                self._working[event_id] = asyncio.get_running_loop().create_future()
                return True
            if await asyncio.shield(working):
                return False

    def working(self, event_id: str) -> bool:
        """Another delivery of ``event_id`` is being handled right now."""
        return event_id in self._working

    def finish(self, event_id: str, *, succeeded: bool) -> None:
        """Record the outcome of a claimed id and wake any copies waiting on it."""
        working = self._working.pop(event_id, None)
        if succeeded:
            self._remember(event_id)
        if working is not None and not working.done():
            working.set_result(succeeded)

    def _is_done(self, event_id: str) -> bool:
        expiry = self._done.get(event_id)
        return expiry is not None and expiry > self._clock.monotonic()

    def _remember(self, event_id: str) -> None:
        now = self._clock.monotonic()
        self._done[event_id] = now + self._ttl
        self._done.move_to_end(event_id)
        while self._done and next(iter(self._done.values())) <= now:
            self._done.popitem(last=False)

    def __len__(self) -> int:
        return len(self._done)
