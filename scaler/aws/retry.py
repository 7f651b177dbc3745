"""Retry throttled AWS calls with jittered exponential backoff.

botocore already retries a throttled call a few times inside one API call. A burst of spot
warnings can still exhaust ECS's shared modify bucket (100 burst, 40/s refill for
UpdateContainerInstancesState, RunTask, StopTask...), so calls whose failure would cost an
interruption notice are wrapped once more: each retry waits a random time between 0 and
``min(cap, base * 2**attempt)`` ("full jitter"), so many callers do not retry in lock step.
Only throttling is retried here; any other error is the caller's to handle.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from scaler.aws.clients import error_code

log = logging.getLogger(__name__)
T = TypeVar("T")

THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
    }
)


def is_throttling(exc: BaseException) -> bool:
    return error_code(exc) in THROTTLING_CODES


@dataclass
class Backoff:
    attempts: int = 5
    base: float = 0.2
    cap: float = 5.0
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def delay(self, attempt: int) -> float:
        return self.rng.uniform(0, min(self.cap, self.base * 2**attempt))

    async def call(
        self,
        operation: str,
        call: Callable[[], Awaitable[T]],
        on_retry: Callable[[str], None] | None = None,
    ) -> T:
        """``await call()``, retrying throttling errors up to ``attempts`` times in all."""
        for attempt in range(self.attempts):
            try:
                return await call()
            except Exception as exc:
                if not is_throttling(exc) or attempt == self.attempts - 1:
                    raise
                wait = self.delay(attempt)
                log.info("throttled; retrying", extra={"operation": operation, "retry_in_s": wait})
                if on_retry:
                    on_retry(operation)
                await self.sleep(wait)
        raise AssertionError("unreachable")
