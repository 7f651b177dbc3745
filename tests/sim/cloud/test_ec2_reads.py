"""The simulated EC2 keeps each instance's description while its state and tags are the same; a
change between two DescribeInstances calls shows on the next exactly as an EC2 that never
described the instance before answers it."""

from __future__ import annotations

import asyncio
from typing import Any

from scaler.sim.cloud.ec2 import Ec2
from tests.sim.cloud.simulated import Account, in_account
from tests.sim.cloud.test_ec2 import _launched


async def _same(account: Account, **params: Any) -> list[dict[str, Any]]:
    """``account``'s EC2's described instances, which are an EC2's that never described them."""
    seen = await account.ec2.answer("DescribeInstances", params)
    assert seen == await Ec2(account.world).answer("DescribeInstances", params)
    return [i for r in seen["Reservations"] for i in r["Instances"]]


def test_tags_and_state_changed_between_two_describes_show_on_the_next() -> None:
    async def body(account: Account) -> list[tuple[str, list[dict[str, str]]]]:
        ids = await _launched(account)
        await asyncio.sleep(5)
        await _same(account)
        await _same(account, Filters=[{"Name": "tag:pool", "Values": ["web"]}])
        tags = [{"Key": "drain", "Value": "yes"}, {"Key": "pool", "Value": "old"}]
        await account.aws.ec2.create_tags(Resources=ids[:1], Tags=tags)
        await account.aws.ec2.terminate_instances(InstanceIds=ids[1:])
        await _same(account, Filters=[{"Name": "tag:pool", "Values": ["web"]}])
        await _same(account, Filters=[{"Name": "tag-key", "Values": ["drain"]}])
        return [(i["State"]["Name"], i["Tags"]) for i in await _same(account)]

    changed, terminated = in_account(body)
    assert changed == (
        "pending",
        [{"Key": "pool", "Value": "old"}, {"Key": "drain", "Value": "yes"}],
    )
    assert terminated == ("shutting-down", [{"Key": "pool", "Value": "web"}])


def test_a_description_changed_by_its_reader_does_not_change_the_next() -> None:
    async def body(account: Account) -> dict[str, Any]:
        await _launched(account, count=1)
        await asyncio.sleep(5)
        (first,) = await _same(account)
        first["State"] = {"Code": 48, "Name": "terminated"}
        (second,) = await _same(account)
        return second

    assert in_account(body)["State"]["Name"] == "pending"
