"""Faults the simulated AWS can inject, drawn from a seed: what a campaign throws at the scaler.

A :class:`Faults` plan is a few windows of trouble over a run, each of one kind:

- ``throttle``: a share of calls is answered with the service's throttling error (a burst of
  other clients sharing the account's buckets);
- ``errors``: a share of calls fails with HTTP 500 ``InternalError`` before doing anything;
- ``lost``: a share of calls does what it asks, then its answer is lost (HTTP 503 to the
  client, whose retry asks again: every write must be safe to repeat);
- ``slow``: calls take twenty times their usual latency.

Within a window each call is hit with probability ``share`` (5% to 30%: trouble a client with
botocore's five attempts and a queue's redelivery can ride out, not a regional outage, which no
scaler survives), drawn from the plan's own stream, so a seed replays exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

KINDS = ("throttle", "errors", "lost", "slow")
SLOWER = 20.0


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    kind: str


@dataclass
class Faults:
    windows: tuple[Window, ...] = ()
    share: float = 0.3
    seed: int = 0
    hits: dict[str, int] = field(default_factory=dict)  # kind -> calls hit
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(f"faults:{self.seed}")

    @classmethod
    def draw(
        cls,
        seed: int,
        horizon: float,
        count: int = 4,
        longest: float = 300.0,
        busy: tuple[float, float] | None = None,
    ) -> Faults:
        """``count`` windows of random kinds, up to ``longest`` seconds each, within
        ``horizon``; most of them within ``busy`` (a storm, say), if given."""
        rng = random.Random(f"fault-plan:{seed}")
        windows = []
        for _ in range(count):
            lo, hi = busy if busy is not None and rng.random() < 0.7 else (0.0, horizon)
            start = rng.uniform(lo, hi)
            windows.append(Window(start, start + rng.uniform(10, longest), rng.choice(KINDS)))
        return cls(tuple(sorted(windows, key=lambda w: w.start)), rng.uniform(0.05, 0.3), seed)

    def hit(self, now: float) -> str | None:
        """The fault this call meets, if any (windows that overlap do not add up: the first
        open one decides)."""
        window = next((w for w in self.windows if w.start <= now < w.end), None)
        if window is None or self._rng.random() >= self.share:
            return None
        self.hits[window.kind] = self.hits.get(window.kind, 0) + 1
        return window.kind
