"""The leader lease against DynamoDB (moto over HTTP): one leader at a time, takeover on expiry."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import pytest

from scaler import testbed
from scaler.aws.clients import AwsClients, AwsTarget
from scaler.aws.errors import AwsFailure
from scaler.aws.lease import DynamoLease
from scaler.clock import Clock, ManualClock
from scaler.lease import LeaseTerms
from scaler.loop import Scaler
from scaler.metrics import Metrics
from tests.integration.helpers import lease_table, scaler_for, settings_for, wait_for

TABLE = "scaler-lease"
TERMS = LeaseTerms(duration=30.0, margin=5.0)


def _table(aws: testbed.LocalAws) -> None:
    lease_table(aws, TABLE)


@asynccontextmanager
async def _replicas(aws: testbed.LocalAws, clocks: list[Clock]) -> AsyncIterator[list[DynamoLease]]:
    _table(aws)
    target = AwsTarget(region=testbed.REGION, endpoint_url=aws.endpoint, max_attempts=1)
    async with AwsClients(target, Metrics()) as clients:
        yield [
            DynamoLease(clients.dynamodb, TABLE, "prod", f"r{n}", TERMS, clock, Metrics())
            for n, clock in enumerate(clocks)
        ]


def _leaders(replicas: list[DynamoLease]) -> list[str]:
    return [r.me for r in replicas if r.holds()]


async def test_one_of_two_replicas_leads(local_aws: testbed.LocalAws) -> None:
    clock = ManualClock()
    async with _replicas(local_aws, [clock, clock]) as (a, b):
        await a.tick()
        await b.tick()
        assert _leaders([a, b]) == ["r0"]
        for _ in range(10):  # renewals keep it
            clock.advance(TERMS.renew_every)
            await b.tick()
            await a.tick()
            assert _leaders([a, b]) == ["r0"]
        assert a.term == 1


async def test_a_killed_leader_is_replaced_within_the_lease(local_aws: testbed.LocalAws) -> None:
    clock = ManualClock()
    async with _replicas(local_aws, [clock, clock]) as (a, b):
        await a.tick()
        killed_at = clock.monotonic()  # a stops renewing: it was killed
        waited = 0.0
        while not b.holds():
            assert not (a.holds() and b.holds())
            clock.advance(TERMS.renew_every)
            waited += TERMS.renew_every
            await b.tick()
        assert clock.monotonic() - killed_at <= TERMS.duration + TERMS.renew_every
        assert not a.holds()  # a would have stopped acting by itself before b took over
        assert b.term == 2


async def test_a_leader_that_gives_up_is_replaced_at_once(local_aws: testbed.LocalAws) -> None:
    clock = ManualClock()
    async with _replicas(local_aws, [clock, clock]) as (a, b):
        await a.tick()
        await a.give_up()  # SIGTERM
        await b.tick()
        assert _leaders([a, b]) == ["r1"]


async def test_a_leader_that_cannot_renew_stops_acting_before_another_takes_over(
    local_aws: testbed.LocalAws,
) -> None:
    clock = ManualClock()
    async with _replicas(local_aws, [clock, clock]) as (a, b):
        await a.tick()
        lost = ""
        for _ in range(40):
            clock.advance(1.0)
            await b.tick()  # a is cut off from the table: it never renews
            assert len(_leaders([a, b])) <= 1
            if not a.holds() and not lost:
                lost = f"a stopped at {clock.monotonic()}"
        assert lost and b.holds()


@pytest.mark.parametrize("seed", range(4))
async def test_never_two_leaders_under_random_pauses_and_skew(
    local_aws: testbed.LocalAws, seed: int
) -> None:
    """Three replicas whose clocks differ by less than the margin, each ticking or stalling at
    random (a stall is a pause: a GC, a slow network, a stopped container): at no moment do
    two act as leader, and someone leads most of the time."""
    rng = random.Random(seed)
    base = ManualClock()
    skews = [0.0, rng.uniform(0, TERMS.margin * 0.9), -rng.uniform(0, TERMS.margin * 0.9)]
    clocks: list[Clock] = [_Skewed(base, s) for s in skews]
    async with _replicas(local_aws, clocks) as replicas:
        led = 0
        for _ in range(150):
            base.advance(rng.uniform(0.5, 4.0))
            for r in rng.sample(replicas, len(replicas)):
                if rng.random() < 0.8:  # the rest of the time, r is stalled
                    await r.tick()
            assert len(_leaders(replicas)) <= 1, _leaders(replicas)
            led += bool(_leaders(replicas))
        assert led > 100


class _Skewed:
    """A replica's clock: the same passage of time, a wall clock ``skew`` seconds off."""

    def __init__(self, base: ManualClock, skew: float) -> None:
        self._base = base
        self._skew = skew

    def now(self) -> datetime:
        return self._base.now() + timedelta(seconds=self._skew)

    def monotonic(self) -> float:
        return self._base.monotonic()


def _leading(scaler: Scaler) -> bool:
    return scaler.metrics.registry.get_sample_value("scaler_leader") == 1.0


async def test_two_whole_scalers_share_a_cluster_with_one_leader(
    local_aws: testbed.LocalAws,
) -> None:
    testbed.create_cluster(local_aws, "prod", size=2)
    queues = testbed.create_queues(local_aws, "events")
    _table(local_aws)
    settings = settings_for(queues.url, lease_table=TABLE, lease_duration=3, lease_margin=1)
    first, second = scaler_for(local_aws, settings), scaler_for(local_aws, settings)
    stops = [asyncio.Event(), asyncio.Event()]
    runs = [
        asyncio.create_task(s.run(stop)) for s, stop in zip((first, second), stops, strict=True)
    ]
    try:
        await wait_for(lambda: _leading(first) or _leading(second))
        await asyncio.sleep(2)  # a few renewals: still one
        assert [_leading(first), _leading(second)].count(True) == 1
        leader, other = (0, 1) if _leading(first) else (1, 0)
        stops[leader].set()  # SIGTERM: the leader gives the lease up
        await runs[leader]
        scalers = (first, second)
        await wait_for(lambda: _leading(scalers[other]), limit=5)
        assert not _leading(scalers[leader])
    finally:
        for stop in stops:
            stop.set()
        await asyncio.gather(*runs)


async def test_an_unknown_lease_table_is_refused_naming_the_variable(
    local_aws: testbed.LocalAws,
) -> None:
    testbed.create_cluster(local_aws, "prod", size=1)
    queues = testbed.create_queues(local_aws, "events")
    scaler = scaler_for(local_aws, settings_for(queues.url, lease_table="missing"))
    with pytest.raises(AwsFailure) as raised:
        await asyncio.wait_for(scaler.run(asyncio.Event()), timeout=10)
    assert raised.value.problem.line.startswith("SCALER_LEASE_TABLE: table 'missing' not found; ")
