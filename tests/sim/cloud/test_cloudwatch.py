"""Simulated CloudWatch behind real aiobotocore clients, in virtual time: the CPU use the
scaler reads (:func:`scaler.aws.cpu.measured_cpu`), from the world's callback."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from botocore.exceptions import ClientError

from scaler.aws.cpu import _query, measured_cpu
from scaler.sim.cloud.world import ON_DEMAND
from tests.sim.cloud.simulated import Account, in_account


def test_measured_cpu_reads_the_worlds_series_and_leaves_young_instances_out() -> None:
    async def body(account: Account) -> tuple[dict[str, float], str]:
        old = account.world.launch("m5.large", "us-east-1a", ON_DEMAND, "ami-1")
        account.cloudwatch.cpu = lambda iid, at: 80.0 if iid == old.id else 10.0
        await asyncio.sleep(900)
        young = account.world.launch("m5.large", "us-east-1a", ON_DEMAND, "ami-1")
        await asyncio.sleep(100)
        ids = [old.id, young.id]
        return await measured_cpu(account.aws.cloudwatch, ids, account.world.wall()), old.id

    shares, old = in_account(body)
    assert shares == {old: pytest.approx(0.8)}  # the young one has no datapoint yet


def test_series_are_per_period_newest_first() -> None:
    async def body(account: Account) -> tuple[list[datetime], list[float]]:
        inst = account.world.launch("m5.large", "us-east-1a", ON_DEMAND, "ami-1")
        account.cloudwatch.cpu = lambda _iid, at: at / 100
        await asyncio.sleep(3600)
        reply = await account.aws.cloudwatch.get_metric_data(
            MetricDataQueries=[_query(0, inst.id, 600)],
            StartTime=account.world.wall(1800),
            EndTime=account.world.wall(3600),
        )
        result = reply["MetricDataResults"][0]
        return result["Timestamps"], result["Values"]

    stamps, values = in_account(body)
    assert values == [30.0, 24.0, 18.0]
    assert stamps == sorted(stamps, reverse=True)
    assert all(isinstance(s, datetime) for s in stamps)


def test_more_than_500_queries_are_refused_as_cloudwatch_refuses_them() -> None:
    async def body(account: Account) -> tuple[str, str]:
        queries = [_query(n, f"i-{n:017x}", 600) for n in range(501)]
        with pytest.raises(ClientError) as caught:
            await account.aws.cloudwatch.get_metric_data(
                MetricDataQueries=queries,
                StartTime=account.world.wall(0),
                EndTime=account.world.wall(600),
            )
        error = caught.value.response["Error"]
        return str(error["Code"]), str(error["Message"])

    code, message = in_account(body)
    assert code == "ValidationError"
    assert "greater than 500" in message
