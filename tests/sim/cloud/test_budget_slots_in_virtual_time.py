"""The shipped disruption-budget slots, unchanged, on the simulated DynamoDB: its conditions
mean there what they mean in DynamoDB (no more slots than the budget, takeover on expiry or as
seen, the same instance again, release by the holder only)."""

from __future__ import annotations

import asyncio

from scaler.aws.budget_slots import DynamoSlots
from scaler.aws.clients import AwsClients, AwsTarget
from scaler.metrics import Metrics
from scaler.plan.budget_slots import Slot
from scaler.sim.cloud.dynamodb import Dynamodb
from scaler.sim.cloud.transport import SimulatedAws
from scaler.sim.cloud.vloop import run

TARGET = AwsTarget("us-east-1", "https://aws.simulated.invalid", credentials=("SIM", "SIM"))
T0 = 1_800_000_000.0


async def _story() -> list[object]:
    dynamodb = Dynamodb()
    dynamodb.table("scaler-leases")
    world = SimulatedAws({"dynamodb": dynamodb})
    async with AwsClients(TARGET, Metrics(), world.install) as aws:
        a, b = (DynamoSlots(aws.dynamodb, "scaler-leases", "prod", me, 900) for me in "ab")
        tries = [h.take(i, f"i-{h.me}{i}", None, T0) for h in (a, b) for i in range(2)]
        won = [s for s in await asyncio.gather(*tries) if s is not None]
        first = won[0]
        seen = next(s for s in await b.read() if s.index == first.index)
        told: list[object] = [
            sorted(s.index for s in won),  # two slots, whoever won each
            await b.take(first.index, "i-x", None, T0 + 1),  # in use, seen as nothing: refused
            (await b.take(first.index, "i-y", seen, T0 + 2)) is not None,  # taken over as seen
            await a.take(first.index, "i-z", seen, T0 + 3),  # seen too late: refused
            (await a.take(first.index, "i-y", None, T0 + 4)) is not None,  # the same instance
        ]
        await b.release(Slot(first.index, "i-y", "b", T0 + 2, T0 + 902))  # not b's any more
        return [
            *told,
            await b.take(first.index, "i-w", None, T0 + 5),  # so still held
            (await b.take(first.index, "i-w", None, T0 + 905)) is not None,  # expired
            {s.index: s.instance_id for s in await a.read()}[first.index],
        ]


def test_slots_hold_on_the_simulated_dynamodb() -> None:
    assert run(_story(), seed=0) == [[0, 1], None, True, None, True, None, True, "i-w"]
