"""Throttling, and jittered exponential backoff for the scaler's own waits.

AWS calls are retried by ONE layer: botocore's, inside each call (see
:mod:`scaler.aws.clients`: ``max_attempts`` HTTP attempts in all, jittered exponential backoff,
urgent calls on clients of their own). The scaler does not retry a throttled call around
botocore's retries: that multiplied the attempts of one call (botocore's attempts times the
wrapper's) and hammered the very bucket that was throttling it.

:class:`Backoff` spaces the scaler's own retries of whole steps (start-up, trying again to reach
AWS): each wait is a random time between 0 and ``min(cap, base * 2**attempt)`` ("full jitter"),
so many replicas do not retry in lock step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from scaler.aws.clients import THROTTLING_CODES as THROTTLING_CODES
from scaler.aws.clients import error_code


def is_throttling(exc: BaseException) -> bool:
    return error_code(exc) in THROTTLING_CODES


@dataclass
class Backoff:
    base: float = 0.2
    cap: float = 5.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        return self.rng.uniform(0, min(self.cap, self.base * 2**attempt))
