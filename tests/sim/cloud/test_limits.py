"""Latency and throttling in the simulated AWS: token buckets at AWS's rates, and the client's
own botocore retries (as the scaler configures them) riding them out in virtual time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from botocore.exceptions import ClientError

from scaler.aws.clients import AwsClients, AwsTarget
from scaler.metrics import Metrics
from scaler.sim.cloud.limits import Bucket, Limits
from scaler.sim.cloud.transport import Operations, SimulatedAws
from scaler.sim.cloud.vloop import run

TARGET = AwsTarget("us-east-1", "https://aws.simulated.invalid", credentials=("SIM", "SIM"))


class Drains(Operations):
    """Just enough ECS to be called: every state change succeeds."""

    def __init__(self) -> None:
        self.done = 0

    async def update_container_instances_state(self, **_: Any) -> dict[str, Any]:
        self.done += 1
        return {"containerInstances": [], "failures": []}


def _burst(calls: int, limits: Limits, attempts: int = 5) -> tuple[int, int, int, float, str]:
    async def main() -> tuple[int, int, int, float, str]:
        ecs, metrics = Drains(), Metrics()
        world = SimulatedAws({"ecs": ecs}, limits)
        target = AwsTarget(TARGET.region, TARGET.endpoint_url, attempts, credentials=("S", "S"))
        async with AwsClients(target, metrics, world.install) as aws:

            async def drain(i: int) -> bool:
                try:
                    await aws.urgent_ecs.update_container_instances_state(
                        cluster="prod", containerInstances=[f"ci-{i}"], status="DRAINING"
                    )
                except ClientError:
                    return False
                return True

            ok = sum(await asyncio.gather(*(drain(i) for i in range(calls))))
        throttled = sum(limits.throttled.values())
        return ok, ecs.done, throttled, asyncio.get_running_loop().time(), metrics.render().decode()

    return run(main())


def test_a_bucket_holds_its_burst_then_refills() -> None:
    bucket = Bucket(burst=100, refill=40)
    assert sum(bucket.take(0.0) for _ in range(150)) == 100
    assert sum(bucket.take(1.0) for _ in range(150)) == 40


def test_a_burst_beyond_the_bucket_is_throttled_and_retried_by_botocore() -> None:
    ok, done, throttled, ended, text = _burst(300, Limits(seed=1))
    assert throttled > 0, "300 drains at once exceed the 100-call burst"
    assert done == ok
    # botocore's standard retry quota (500 tokens, 5 a throttled retry) lets about a hundred
    # throttled calls try again; the rest fail, as against AWS: why drains go ten a call
    assert 150 < ok < 300
    assert ended > 1.0, "the retries waited (virtual) backoff time"
    assert "scaler_throttle_retries_total" in text


def test_without_retries_a_throttled_call_fails_as_it_does_against_aws() -> None:
    ok, _, throttled, _, _ = _burst(150, Limits(seed=1, latency=False), attempts=1)
    assert ok == 100
    assert throttled == 50


@pytest.mark.parametrize("seed", [1, 2])
def test_latency_and_throttling_replay(seed: int) -> None:
    assert _burst(200, Limits(seed=seed))[:4] == _burst(200, Limits(seed=seed))[:4]
