"""Coalesce many small requests into few batched API calls.

ECS drains 10 container instances per ``UpdateContainerInstancesState`` call and SQS deletes 10
messages per ``DeleteMessageBatch``; a burst of N events should cost about N/10 calls, not N.
A :class:`Batcher` holds submitted items for a short *window* (or until *max_size* are waiting),
then hands them to one ``flush`` call. Each submitter awaits its own item's result, so the caller
still sees per-item success or failure. Equal items submitted while a batch is open share one slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")

# flush(items) -> {item: result or the exception that item failed with}
Flush = Callable[[Sequence[K]], Awaitable[dict[K, R | BaseException]]]


class Batcher(Generic[K, R]):
    def __init__(self, flush: Flush[K, R], *, max_size: int, window: float) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._flush = flush
        self._max_size = max_size
        self._window = window
        self._pending: dict[K, asyncio.Future[R]] = {}
        self._timer: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, item: K) -> R:
        """Queue ``item`` for the next batch and wait for its result."""
        future = self._pending.get(item)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            future.add_done_callback(_retrieve)  # a cancelled submitter must not leak a warning
            self._pending[item] = future
            if len(self._pending) >= self._max_size:
                self._start_flush()
            elif self._timer is None:
                self._timer = asyncio.create_task(self._flush_after_window())
        return await asyncio.shield(future)

    async def _flush_after_window(self) -> None:
        await asyncio.sleep(self._window)
        self._timer = None
        self._start_flush()

    def _start_flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, {}
        if batch:
            task = asyncio.create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: dict[K, asyncio.Future[R]]) -> None:
        try:
            results = await self._flush(list(batch))
        except Exception as exc:  # the whole call failed: every item fails with it
            results = dict.fromkeys(batch, exc)
        for item, future in batch.items():
            if future.done():
                continue
            result = results.get(item, LookupError(f"no result for {item!r}"))
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def close(self) -> None:
        """Flush what is waiting and wait for every batch in flight."""
        self._start_flush()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
