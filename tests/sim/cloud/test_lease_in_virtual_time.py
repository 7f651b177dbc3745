"""The shipped DynamoDB lease, unchanged, on the simulated DynamoDB in virtual time: two
replicas never lead at once, a crashed leader's lease passes on once it expires, and a leader
that gives up hands over at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from scaler.aws.clients import AwsClients, AwsTarget
from scaler.aws.lease import DynamoLease
from scaler.lease import LeaseTerms
from scaler.metrics import Metrics
from scaler.sim.cloud.dynamodb import Dynamodb
from scaler.sim.cloud.transport import SimulatedAws
from scaler.sim.cloud.vloop import LoopClock, run

START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TARGET = AwsTarget("us-east-1", "https://aws.simulated.invalid", credentials=("SIM", "SIM"))
TERMS = LeaseTerms()
Timeline = list[tuple[float, str | None]]


async def _replicas(crash_at: float, give_up: bool, horizon: float) -> tuple[Timeline, int]:
    """Two replicas race for the lease; the first leader stops renewing at ``crash_at`` (giving
    the lease up, or not: then it still believes it leads until its own margin runs out, which
    must end before the other can take the lease); who leads, sampled every second."""
    loop, dynamodb = asyncio.get_running_loop(), Dynamodb()
    dynamodb.table("scaler-leases")
    world = SimulatedAws({"dynamodb": dynamodb})
    async with AwsClients(TARGET, Metrics(), world.install) as aws:
        leases = [
            DynamoLease(
                aws.dynamodb, "scaler-leases", "prod", me, TERMS, LoopClock(START), Metrics()
            )
            for me in ("a", "b")
        ]
        stops = [asyncio.Event(), asyncio.Event()]
        runs = [
            asyncio.create_task(lease.run_forever(stop))
            for lease, stop in zip(leases, stops, strict=True)
        ]
        timeline: Timeline = []
        both = 0
        while loop.time() < horizon:
            await asyncio.sleep(1)
            holding = [lease.me for lease in leases if lease.holds()]
            both += len(holding) > 1
            timeline.append((loop.time(), holding[0] if holding else None))
            first = timeline[0][1] if timeline else None
            if loop.time() >= crash_at and first is not None:
                leader = next(lease for lease in leases if lease.me == first)
                i = leases.index(leader)
                if not runs[i].done():
                    runs[i].cancel()
                    if give_up:
                        await leader.give_up()
        for stop in stops:
            stop.set()
        await asyncio.gather(*runs, return_exceptions=True)
        return timeline, both


def test_two_replicas_never_lead_together_and_a_crash_passes_the_lease_on() -> None:
    timeline, both = run(_replicas(crash_at=60, give_up=False, horizon=240))
    assert both == 0
    first = timeline[0][1]
    assert first in ("a", "b")
    after = [(t, who) for t, who in timeline if who is not None and who != first]
    assert after, "the other replica took over"
    assert after[0][0] >= 60 + TERMS.duration - TERMS.renew_every - 1, "only once it expired"


def test_a_leader_that_gives_up_hands_over_within_a_renewal() -> None:
    timeline, both = run(_replicas(crash_at=60, give_up=True, horizon=120))
    assert both == 0
    first = timeline[0][1]
    after = [t for t, who in timeline if who is not None and who != first]
    assert after and after[0] <= 60 + TERMS.renew_every + 1


def test_lease_runs_replay_exactly() -> None:
    assert run(_replicas(60, False, 200)) == run(_replicas(60, False, 200))
