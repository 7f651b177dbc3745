"""Virtual time: an asyncio event loop whose clock jumps to the next timer instead of waiting.

The simulated world runs the scaler's own coroutines (intake, handler, drainer, controllers)
unchanged. Every ``asyncio.sleep``, ``wait_for`` and ``timeout`` reads the loop's clock, so a loop
whose ``time()`` is virtual and whose selector, instead of blocking, moves that time forward by
the timeout it was given runs hours of waiting in milliseconds, in the same order every time.

There is no I/O in the simulated world: the selector refuses every file descriptor (so a socket
opened by mistake fails at once rather than hanging), the loop has no self-pipe (nothing may call
it from another thread), and a loop with nothing ready and no timer pending is a deadlock, raised
as :class:`Deadlock` rather than waited on forever. A run seeds the global ``random`` (and
restores it after), so code that jitters with it replays too.

Why a loop of our own: ``async-solipsism`` and ``looptime`` do the same, but the first replaces
sockets with in-memory pipes the simulator does not need, and the second is a pytest plugin; the
forty lines here are all the simulator needs, and they keep it free of another dependency.
"""

from __future__ import annotations

import asyncio
import gc
import random
import selectors
from collections.abc import Coroutine, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

T = TypeVar("T")


class Deadlock(RuntimeError):
    """Every task waits on something no timer will ever bring."""


class _Timeless(selectors.BaseSelector):
    """A selector without file descriptors: ``select(t)`` is time passing, ``t`` seconds."""

    def __init__(self, loop: VirtualLoop) -> None:
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        raise RuntimeError(f"no I/O in the simulated world (asked to watch {fileobj!r})")

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        raise KeyError(fileobj)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise Deadlock("every task is waiting and no timer is pending")
        self._loop.advance(timeout)
        return []

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return {}

    def close(self) -> None:
        pass


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time, starting at 0."""

    def __init__(self) -> None:
        self._now = 0.0
        super().__init__(_Timeless(self))

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += max(0.0, seconds)

    # no self-pipe: nothing outside the loop's own thread may wake it
    def _make_self_pipe(self) -> None:
        pass

    def _close_self_pipe(self) -> None:
        pass

    def _write_to_self(self) -> None:
        pass

    def _process_self_data(self, data: bytes) -> None:
        pass


# young-generation threshold of the garbage collector during a run (Python's default: 700)
GC_YOUNG = 50_000


def run(main: Coroutine[Any, Any, T], seed: object = 0) -> T:
    """Run ``main`` to completion on a fresh :class:`VirtualLoop`.

    Code outside the world draws from the global ``random`` (botocore's retry jitter, the
    scaler's own backoff): it is seeded with ``seed`` for the run, and left as it was after.

    A run holds a large heap that lives as long as it does (the cluster, its tasks, the
    scaler's caches) and allocates fast: at the default thresholds the garbage collector's
    full collections scan it again and again (about a seventh of a 500-instance run's CPU).
    The run collects less often (:data:`GC_YOUNG`), and the thresholds are restored after."""
    saved, thresholds = random.getstate(), gc.get_threshold()
    random.seed(f"vloop:{seed}")
    gc.set_threshold(GC_YOUNG, *thresholds[1:])
    try:
        with asyncio.Runner(loop_factory=VirtualLoop) as runner:
            return runner.run(main)
    finally:
        random.setstate(saved)
        gc.set_threshold(*thresholds)


class LoopClock:
    """The running loop's (virtual) time as a :class:`scaler.clock.Clock`: ``monotonic()`` is
    the loop's time, ``now()`` that many seconds after ``start``."""

    def __init__(self, start: datetime) -> None:
        self._start = start

    def now(self) -> datetime:
        return self._start + timedelta(seconds=asyncio.get_running_loop().time())

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()
