"""The spot market: one per (scenario, seed), the same whatever a policy launches.

Each spot pool has its own random streams, seeded from the scenario's name, the seed and the
pool's name and nothing else, so every policy run on a (scenario, seed) meets the same market:

- *everyday reclaims*: a Poisson timeline per pool, drawn lazily as the run goes on, at a rate
  that keeps the pool's ``interruptions_per_hour`` per instance (times the factor of its
  ``rates`` in force: a piecewise-constant rate): each reclaim draws a share (uniform below
  ``2 * EVERYDAY_SHARE``) and takes each instance the policy has in the pool then with that
  probability; with a ``rebalance_share``, that share of them get a rebalance recommendation
  ``rebalance_lead`` ahead: such a reclaim picks its instances its longest lead ahead of its
  time (those in the pool then), and warns them at its time;
- *false recommendations*: a timeline of the same kind per pool, at the pool's
  ``false_recommendations_per_hour`` per instance: rebalance recommendations never followed by a
  warning;
- *storms*: a scenario event that draws its pools from ALL the scenario's spot pools (those of
  one AZ, or the pools it names, if it says), ``share`` of them; each drawn pool gets a reclaim
  window: the instances in it at the storm (``take`` of them: all by default) are warned within
  ``over`` seconds, some of them with
  a rebalance recommendation ``rebalance_lead`` seconds ahead (a number or a uniform range;
  a storm with ``early_recommendations`` is drawn ahead of its time, from a stream of its own,
  so they may come before it), and (for ``lasts`` seconds) spot launched into it is reclaimed
  within ``over`` seconds of booting;
- *shortages*: windows in which launches into a pool fail (after a storm, in an AZ outage, in a
  ``shortage`` event).

A policy with no instance in a reclaimed pool escapes: that is what diversifying is for. Which
of a policy's instances a reclaim takes is drawn from a stream of that reclaim's own, in a fixed
order of the instances, so it never shifts the market's timelines.

:meth:`Market.digest` hashes the timelines drawn over a run (reclaims, storm windows, shortages):
the same for every policy of a run; the figures of two policies differ by what they did alone.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scaler.sim.scenario import Pool, Scenario

EVERYDAY_SHARE = 0.25  # mean share of a pool's instances an everyday reclaim takes


@dataclass(frozen=True)
class Reclaim:
    """A reclaim in one pool: instances there at ``at`` are warned within ``over`` seconds."""

    pool: str
    at: float
    share: float  # each instance is taken with this probability; with ``exact``, this share
    exact: bool = False  # of the instances (at least one), drawn from the reclaim's stream
    over: float = 0.0
    rebalance_share: float = 0.0
    rebalance_lead: float = 0.0  # with ``rebalance_lead_max``, the least lead of a uniform range
    until: float = 0.0  # spot launched into the pool before this is reclaimed too
    cause: str = "everyday"
    key: str = ""  # names the reclaim's own stream
    rebalance_lead_max: float | None = None

    @property
    def longest_lead(self) -> float:
        """How long before its earliest warning the reclaim's first recommendation may come."""
        if self.rebalance_share <= 0:
            return 0.0
        return max(self.rebalance_lead, self.rebalance_lead_max or 0.0)

    def lead(self, rng: random.Random) -> float:
        """One instance's lead: drawn from ``rng`` when it is a range."""
        if self.rebalance_lead_max is None:
            return self.rebalance_lead
        return rng.uniform(self.rebalance_lead, self.rebalance_lead_max)

    def record(self) -> list[Any]:
        extra = [] if self.rebalance_lead_max is None else [self.rebalance_lead_max]
        return [
            "reclaim",
            self.cause,
            self.pool,
            round(self.at, 3),
            round(self.share, 6),
            self.exact,
            self.over,
            self.rebalance_share,
            self.rebalance_lead,
            round(self.until, 3),
            *extra,
        ]


@dataclass(frozen=True)
class FalseAlarm:
    """Rebalance recommendations in one pool at ``at``, never followed by a warning: each
    instance there gets one with probability ``share`` (drawn from the alarm's own stream)."""

    pool: str
    at: float
    share: float
    key: str


def lead_range(lead: float | Sequence[float]) -> tuple[float, float | None]:
    """A lead as given (seconds, or ``[min, max]``) as its least and, for a range, its most."""
    if isinstance(lead, int | float):
        return lead, None  # as given: the digest of a storm keeps its figures
    low, high = lead
    return float(low), float(high)


def arrival(
    rng: random.Random, rate: float, after: float, rates: Sequence[tuple[float, float]] = ()
) -> float:
    """The next arrival after ``after`` of a Poisson process at ``rate`` per second, times the
    factor of ``rates`` ((from, factor) in time order; 1 before the first) in force: one unit
    exponential draw spent over the piecewise-constant rate (inf: none ever)."""
    if not rates:
        return after + rng.expovariate(rate)  # the draw a constant rate always made
    work = rng.expovariate(1.0)
    t = after
    factor = next((f for at, f in reversed(rates) if at <= t), 1.0)
    for at, next_factor in rates:
        if at <= t:
            continue
        if factor > 0 and work / (rate * factor) <= at - t:
            return t + work / (rate * factor)
        work -= rate * factor * (at - t)
        t, factor = at, next_factor
    return t + work / (rate * factor) if factor > 0 else math.inf


class Market:
    """The market's draws for a (scenario, seed); see the module docstring."""

    def __init__(self, scenario: Scenario, seed: int) -> None:
        self.base = f"market:{scenario.name}:{seed}"
        self.spot = [p for p in scenario.pools if p.capacity == "spot"]
        self._everyday = {p.name: self.stream(p.name, "everyday") for p in self.spot}
        self._false = {p.name: self.stream(p.name, "false") for p in self.spot}
        self._alarms: dict[str, int] = {}
        self._counts: dict[str, int] = {}
        self._storms = 0
        self.timeline: dict[str, list[list[Any]]] = {p.name: [] for p in scenario.pools}

    def stream(self, *parts: object) -> random.Random:
        return random.Random(":".join([self.base, *map(str, parts)]))

    # -- everyday reclaims ---------------------------------------------------------------------

    def next_everyday(self, pool: Pool, after: float, horizon: float) -> Reclaim | None:
        """The pool's next everyday reclaim after ``after`` (None: none before ``horizon``)."""
        if pool.interruptions_per_hour <= 0:
            return None
        rng = self._everyday[pool.name]
        rate = pool.interruptions_per_hour / EVERYDAY_SHARE / 3600
        at = arrival(rng, rate, after, pool.rates)
        share = rng.uniform(0, 2 * EVERYDAY_SHARE)
        if at >= horizon:
            return None
        if pool.rebalance_share <= 0:
            return self._reclaim(Reclaim(pool.name, at, share, cause="everyday"))
        low, high = lead_range(pool.rebalance_lead)
        reclaim = Reclaim(
            pool.name,
            at,
            share,
            rebalance_share=pool.rebalance_share,
            rebalance_lead=low,
            rebalance_lead_max=high,
            cause="everyday",
        )
        return self._reclaim(reclaim)

    def next_false(self, pool: Pool, after: float, horizon: float) -> FalseAlarm | None:
        """The pool's next false recommendations after ``after`` (None: none before
        ``horizon``)."""
        if pool.false_recommendations_per_hour <= 0:
            return None
        rng = self._false[pool.name]
        rate = pool.false_recommendations_per_hour / EVERYDAY_SHARE / 3600
        at = arrival(rng, rate, after, pool.rates)
        share = rng.uniform(0, 2 * EVERYDAY_SHARE)
        if at >= horizon:
            return None
        n = self._alarms.get(pool.name, 0)
        self._alarms[pool.name] = n + 1
        self.timeline[pool.name].append(
            ["recommendation", "false", pool.name, round(at, 3), round(share, 6)]
        )
        return FalseAlarm(pool.name, at, share, f"{pool.name}:false:{n}")

    # -- storms -----------------------------------------------------------------------------

    def storm(
        self,
        now: float,
        *,
        share: float,
        over: float,
        rebalance_share: float,
        rebalance_lead: float | Sequence[float],
        lasts: float,
        az: str | None,
        pools: Sequence[str] | None = None,
        take: float = 1.0,
        key: str | None = None,
    ) -> list[Reclaim]:
        """``share`` of the spot pools (of ``az``, of ``pools``, if given), drawn whatever a
        policy uses; from the stream ``key`` names (by default, the storm's rank in the run)."""
        if key is None:
            self._storms += 1
        rng = self.stream("storm", self._storms if key is None else key)
        low, high = lead_range(rebalance_lead)
        candidates = sorted(
            p.name
            for p in self.spot
            if (az is None or p.az == az) and (pools is None or p.name in pools)
        )
        count = min(len(candidates), max(1, round(share * len(candidates))))
        chosen = sorted(rng.sample(candidates, count)) if candidates else []
        return [
            self._reclaim(
                Reclaim(
                    name,
                    now,
                    take,
                    True,
                    over,
                    rebalance_share,
                    low,
                    now + lasts,
                    cause="storm",
                    rebalance_lead_max=high,
                )
            )
            for name in chosen
        ]

    def shortage(self, pool: str, start: float, end: float, cause: str) -> None:
        self.timeline[pool].append(["shortage", cause, round(start, 3), round(end, 3)])

    def _reclaim(self, reclaim: Reclaim) -> Reclaim:
        n = self._counts.get(reclaim.pool, 0)
        self._counts[reclaim.pool] = n + 1
        keyed = Reclaim(**{**reclaim.__dict__, "key": f"{reclaim.pool}:{n}"})
        self.timeline[reclaim.pool].append(keyed.record())
        return keyed

    def victims(self, reclaim: Reclaim) -> random.Random:
        """The stream that picks a reclaim's instances and their times (policy-dependent)."""
        return self.stream("reclaim", reclaim.key)

    def digest(self) -> str:
        """A hash of every timeline drawn so far: of what was drawn, not of the order a policy
        met it in (an oracle handles reclaims earlier than the others do)."""
        canonical = {p: sorted(records, key=json.dumps) for p, records in self.timeline.items()}
        text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]
