"""Simulated EC2 behind real aiobotocore clients, in virtual time: what the scaler's EC2 calls
meet, including AWS's behaviour moto does not model (describe lag, short spot pools)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError, ParamValidationError

from scaler.aws.migration import FleetReader, missing_fleets
from scaler.aws.retiring import describe
from scaler.aws.templates import TemplatePools
from scaler.settings import load_settings
from scaler.sim.cloud.world import SPOT
from tests.sim.cloud.simulated import Account, in_account

TYPES = ["m5.large", "c5.large", "r5.large"]


def _fleet_request(token: str = "t-1", count: int = 2, capacity: str = "spot") -> dict[str, Any]:
    return {
        "Type": "instant",
        "LaunchTemplateConfigs": [
            {
                "LaunchTemplateSpecification": {"LaunchTemplateName": "web", "Version": "$Default"},
                "Overrides": [{"InstanceType": t, "SubnetId": "subnet-a"} for t in TYPES],
            }
        ],
        "TargetCapacitySpecification": {
            "TotalTargetCapacity": count,
            "DefaultTargetCapacityType": capacity,
        },
        "SpotOptions": {"AllocationStrategy": "price-capacity-optimized"},
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": [{"Key": "pool", "Value": "web"}]}
        ],
        "ClientToken": token,
    }


async def _launched(account: Account, **options: Any) -> list[str]:
    account.ec2.template("web", "m5.large", "ami-1")
    reply = await account.aws.ec2.create_fleet(**_fleet_request(**options))
    return [i for entry in reply["Instances"] for i in entry["InstanceIds"]]


def _ids(reply: dict[str, Any]) -> list[str]:
    return [i["InstanceId"] for r in reply["Reservations"] for i in r["Instances"]]


def test_describe_instances_lags_behind_a_launch() -> None:
    async def body(account: Account) -> tuple[list[str], list[str], dict[str, Any]]:
        ids = await _launched(account)
        by_filter = [{"Name": "instance-id", "Values": ids}]
        early = await account.aws.ec2.describe_instances(Filters=by_filter)
        await asyncio.sleep(5)
        later = await account.aws.ec2.describe_instances(Filters=by_filter)
        return ids, _ids(early) + _ids(later), later["Reservations"][0]["Instances"][0]

    ids, seen, first = in_account(body)
    assert len(ids) == 2
    assert seen == ids  # none of them at first, both 5 s later
    assert isinstance(first["LaunchTime"], datetime)
    assert first["State"] == {"Code": 0, "Name": "pending"}
    assert first["InstanceLifecycle"] == "spot"
    assert first["Placement"]["AvailabilityZone"] == "us-east-1a"
    assert {"Key": "pool", "Value": "web"} in first["Tags"]


def test_an_instance_asked_for_by_id_before_it_shows_is_not_found() -> None:
    async def body(account: Account) -> str:
        ids = await _launched(account, count=1)
        with pytest.raises(ClientError) as caught:
            await account.aws.ec2.describe_instances(InstanceIds=ids)
        return str(caught.value.response["Error"]["Code"])

    assert in_account(body) == "InvalidInstanceID.NotFound"


def test_the_describe_lag_is_configurable() -> None:
    async def body(account: Account) -> list[str]:
        ids = await _launched(account, count=1)
        await asyncio.sleep(5)
        return await _filtered(account, [{"Name": "instance-id", "Values": ids}])

    assert in_account(body, describe_lag=30.0) == []


async def _filtered(account: Account, filters: list[dict[str, Any]]) -> list[str]:
    found: list[str] = []
    paginator = account.aws.ec2.get_paginator("describe_instances")
    async for page in paginator.paginate(Filters=filters, PaginationConfig={"PageSize": 5}):
        found += _ids(page)
    return found


def test_filters_and_pages_as_the_scaler_reads_them() -> None:
    async def body(account: Account) -> tuple[int, int, int, int]:
        ids = await _launched(account, count=12)
        await asyncio.sleep(200)  # booted
        account.world.terminate(account.world.instances[ids[0]])
        tagged = [{"Name": "tag:pool", "Values": ["web"]}]
        live = [*tagged, {"Name": "instance-state-name", "Values": ["pending", "running"]}]
        other = [{"Name": "tag:pool", "Values": ["api"]}]
        pages = await account.aws.ec2.describe_instances(Filters=tagged, MaxResults=5)
        return (
            len(await _filtered(account, tagged)),
            len(await _filtered(account, live)),
            len(await _filtered(account, other)),
            len(_ids(pages)),
        )

    assert in_account(body) == (12, 11, 0, 5)


def test_an_unknown_filter_is_refused() -> None:
    async def body(account: Account) -> str:
        with pytest.raises(ClientError) as caught:
            await account.aws.ec2.describe_instances(Filters=[{"Name": "colour", "Values": ["x"]}])
        return str(caught.value.response["Error"]["Message"])

    assert in_account(body) == "The filter 'colour' is invalid"


def test_a_fleet_skips_short_spot_pools_and_says_so() -> None:
    async def body(account: Account) -> tuple[dict[str, Any], list[str]]:
        account.world.short_pools.add(("c5.large", "us-east-1a"))  # the cheapest
        account.ec2.template("web", "m5.large", "ami-1")
        reply = await account.aws.ec2.create_fleet(**_fleet_request(count=3))
        kinds = [
            account.world.instances[i].instance_type for i in reply["Instances"][0]["InstanceIds"]
        ]
        return reply, kinds

    reply, kinds = in_account(body)
    assert kinds == ["m5.large"] * 3  # the cheapest pool with capacity
    [error] = reply["Errors"]
    assert error["ErrorCode"] == "InsufficientInstanceCapacity"
    assert error["Lifecycle"] == "spot"
    assert error["LaunchTemplateAndOverrides"]["Overrides"]["InstanceType"] == "c5.large"


def test_short_spot_pools_leave_on_demand_launches_alone() -> None:
    async def body(account: Account) -> tuple[int, list[Any]]:
        account.world.short_pools.update((t, "us-east-1a") for t in TYPES)
        ids = await _launched(account, count=2, capacity="on-demand")
        account.world.short_on_demand.update((t, "us-east-1a") for t in TYPES)
        reply = await account.aws.ec2.create_fleet(**_fleet_request("t-2", 1, "on-demand"))
        return len(ids), reply["Instances"]

    launched, then = in_account(body)
    assert launched == 2
    assert then == []


def test_a_repeated_client_token_gets_the_first_answer_and_launches_nothing() -> None:
    async def body(account: Account) -> tuple[list[str], list[str], int]:
        first = await _launched(account, token="same")
        again = await _launched(account, token="same")
        return first, again, len(account.world.instances)

    first, again, count = in_account(body)
    assert first == again
    assert count == 2


def test_launch_template_versions_resolve_default_latest_and_numbers() -> None:
    async def body(account: Account) -> list[tuple[int, str, bool]]:
        template = account.ec2.template("web", "m5.large", "ami-1")
        account.ec2.template("web", "m5.large", "ami-2")
        template.default = 1
        found = []
        for version in ("$Default", "$Latest", "2"):
            reply = await account.aws.ec2.describe_launch_template_versions(
                LaunchTemplateId=template.id, Versions=[version]
            )
            v = reply["LaunchTemplateVersions"][0]
            found.append(
                (v["VersionNumber"], v["LaunchTemplateData"]["ImageId"], v["DefaultVersion"])
            )
        return found

    assert in_account(body) == [(1, "ami-1", True), (2, "ami-2", False), (2, "ami-2", False)]


def test_an_unknown_launch_template_or_version_is_not_found() -> None:
    async def body(account: Account) -> list[str]:
        account.ec2.template("web", "m5.large", "ami-1")
        codes = []
        for name, version in (("nope", "$Default"), ("web", "7")):
            with pytest.raises(ClientError) as caught:
                await account.aws.ec2.describe_launch_template_versions(
                    LaunchTemplateName=name, Versions=[version]
                )
            codes.append(str(caught.value.response["Error"]["Code"]))
        return codes

    assert in_account(body) == [
        "InvalidLaunchTemplateName.NotFoundException",
        "InvalidLaunchTemplateId.VersionNotFound",
    ]


def test_instance_types_are_described_and_an_unknown_one_fails_the_call() -> None:
    async def body(account: Account) -> tuple[dict[str, Any], str]:
        reply = await account.aws.ec2.describe_instance_types(InstanceTypes=["m5.xlarge"])
        with pytest.raises(ClientError) as caught:
            await account.aws.ec2.describe_instance_types(InstanceTypes=["m5.large", "zz.huge"])
        return reply["InstanceTypes"][0], str(caught.value.response["Error"]["Code"])

    described, code = in_account(body)
    assert described["VCpuInfo"]["DefaultVCpus"] == 4
    assert described["MemoryInfo"]["SizeInMiB"] == 16384
    assert code == "InvalidInstanceType"


def test_tags_and_terminations_show_in_what_the_scaler_reads() -> None:
    async def body(account: Account) -> list[tuple[str | None, str]]:
        ids = await _launched(account)
        await asyncio.sleep(200)
        await account.aws.ec2.create_tags(
            Resources=[ids[0]], Tags=[{"Key": "scaler:retiring", "Value": "consolidation"}]
        )
        reply = await account.aws.ec2.terminate_instances(InstanceIds=[ids[0]])
        assert reply["TerminatingInstances"][0]["CurrentState"]["Name"] == "shutting-down"
        facts = await describe(account.aws, ids)
        await asyncio.sleep(60)
        gone = await describe(account.aws, ids)
        return [(facts[i].retiring, facts[i].state) for i in ids] + [("", gone[ids[0]].state)]

    assert in_account(body) == [
        ("consolidation", "shutting-down"),
        (None, "running"),
        ("", "terminated"),
    ]


def test_terminating_an_unknown_instance_fails_the_whole_call() -> None:
    async def body(account: Account) -> tuple[str, int]:
        ids = await _launched(account, count=1)
        with pytest.raises(ClientError) as caught:
            await account.aws.ec2.terminate_instances(InstanceIds=[ids[0], "i-0000000000000dead"])
        return str(caught.value.response["Error"]["Code"]), len(account.world.live())

    assert in_account(body) == ("InvalidInstanceID.NotFound", 1)


def test_a_spot_fleet_keeps_its_target_and_can_be_lowered_without_terminating() -> None:
    async def body(account: Account) -> tuple[int, int, float, int]:
        fleet = account.ec2.spot_fleet(3, [("m5.large", "us-east-1a")], "ami-1")
        account.world.terminate(account.world.instances[fleet.instances[0]])
        await asyncio.sleep(31)
        page = await account.aws.ec2.describe_spot_fleet_instances(SpotFleetRequestId=fleet.id)
        await account.aws.ec2.modify_spot_fleet_request(
            SpotFleetRequestId=fleet.id,
            TargetCapacity=1,
            ExcessCapacityTerminationPolicy="noTermination",
        )
        reply = await account.aws.ec2.describe_spot_fleet_requests(SpotFleetRequestIds=[fleet.id])
        target = reply["SpotFleetRequestConfigs"][0]["SpotFleetRequestConfig"]["TargetCapacity"]
        return (
            len(page["ActiveInstances"]),
            len(account.world.instances),
            target,
            len(account.world.live()),
        )

    assert in_account(body) == (3, 4, 1, 3)


def test_a_spot_fleet_without_capacity_replaces_once_the_pool_has_some() -> None:
    async def body(account: Account) -> tuple[int, int]:
        fleet = account.ec2.spot_fleet(2, [("m5.large", "us-east-1a")], "ami-1")
        account.world.short_pools.add(("m5.large", "us-east-1a"))
        account.world.terminate(account.world.instances[fleet.instances[0]])
        await asyncio.sleep(100)
        short = len(account.world.live())
        account.world.short_pools.clear()
        await asyncio.sleep(200)
        return short, len(account.world.live())

    assert in_account(body) == (1, 2)


def test_spot_prices_page_as_the_snapshot_reads_them() -> None:
    async def body(account: Account) -> list[tuple[str, str, float]]:
        paginator = account.aws.ec2.get_paginator("describe_spot_price_history")
        found = []
        async for page in paginator.paginate(
            InstanceTypes=["m5.large"],
            ProductDescriptions=["Linux/UNIX"],
            Filters=[{"Name": "availability-zone", "Values": ["us-east-1b"]}],
        ):
            for e in page["SpotPriceHistory"]:
                assert isinstance(e["Timestamp"], datetime)
                found.append((e["InstanceType"], e["AvailabilityZone"], float(e["SpotPrice"])))
        return found

    assert in_account(body) == [("m5.large", "us-east-1b", pytest.approx(0.0336))]


def test_botocore_refuses_a_misspelt_parameter_before_ec2_sees_it() -> None:
    async def body(account: Account) -> int:
        with pytest.raises(ParamValidationError):
            await account.aws.ec2.terminate_instances(InstanceId=["i-1"])
        return sum(account.simulated.calls.values())

    assert in_account(body) == 0


def test_a_page_size_ec2_refuses_fails_as_against_aws() -> None:
    async def body(account: Account) -> tuple[str, str]:
        with pytest.raises(ClientError) as caught:
            await account.aws.ec2.describe_instances(MaxResults=3)
        error = caught.value.response["Error"]
        return str(error["Code"]), str(error["Message"])

    code, message = in_account(body)
    assert code == "InvalidParameterValue"
    assert "maxResults" in message


def test_launches_are_on_demand_or_spot_as_asked() -> None:
    async def body(account: Account) -> set[str]:
        ids = await _launched(account, count=1)
        ids += await _launched(account, token="t-2", count=1, capacity="on-demand")
        return {account.world.instances[i].lifecycle for i in ids}

    assert in_account(body) == {SPOT, "on-demand"}


def test_the_shipped_template_pools_launch_and_see_through_the_describe_lag() -> None:
    async def body(account: Account) -> tuple[int, list[str], list[str]]:
        account.ec2.template("ecs-node", "m5.large", "ami-1")
        account.world.short_pools.add(("c5.large", "us-east-1a"))
        settings = load_settings(
            cluster="arn:aws:ecs:us-east-1:123456789012:cluster/prod",
            queue_url="http://q",
            spot_templates="spot=ecs-node",
            fleet_instance_types="c5.large,m5.large",
            fleet_subnets="subnet-a",
        )
        pools = TemplatePools(account.aws, settings)
        launched = await pools.launch("spot", 2, "token-1", 0.0)
        at_once = await pools.groups(0.0)
        await asyncio.sleep(5)
        later = await pools.groups(5.0)
        return launched, _listed(at_once), _listed(later)

    launched, at_once, later = in_account(body)
    assert launched == 2
    assert at_once == ["*", "*"]  # from CreateFleet's answer: DescribeInstances lags
    assert later == ["us-east-1a", "us-east-1a"]  # DescribeInstances shows them now


def _listed(groups: list[dict[str, Any]]) -> list[str]:
    return [m["AvailabilityZone"] for g in groups for m in g["Instances"]]


def test_a_client_token_reused_for_another_request_is_refused() -> None:
    async def body(account: Account) -> str:
        await _launched(account, token="same", count=1)
        with pytest.raises(ClientError) as caught:
            await account.aws.ec2.create_fleet(**_fleet_request("same", count=3))
        return str(caught.value.response["Error"]["Code"])

    assert in_account(body) == "IdempotentParameterMismatch"


def test_the_shipped_fleet_reader_reads_a_spot_fleet() -> None:
    async def body(account: Account) -> tuple[float, bool, int, int]:
        fleet = account.ec2.spot_fleet(3, [("m5.large", "us-east-1a")], "ami-1")
        await asyncio.sleep(10)
        read = await FleetReader(account.aws).read((fleet.id,))
        assert read is not None
        [found] = read.fleets
        return found.target, found.maintain, len(found.instances), len(read.facts)

    assert in_account(body) == (3.0, True, 3, 3)


def test_an_unknown_spot_fleet_is_not_found() -> None:
    async def body(account: Account) -> list[str]:
        return await missing_fleets(account.aws, ("sfr-00000000-0000-4000-8000-00000000dead",))

    assert in_account(body) == [
        "SCALER_MIGRATE_SPOT_FLEETS: Spot Fleet request"
        " 'sfr-00000000-0000-4000-8000-00000000dead' not found"
    ]


def test_a_terminated_instance_is_gone_from_answers_an_hour_later() -> None:
    async def body(account: Account) -> tuple[list[str], list[str]]:
        ids = await _launched(account, count=1)
        await asyncio.sleep(10)
        await account.aws.ec2.terminate_instances(InstanceIds=ids)
        by_id = [{"Name": "instance-id", "Values": ids}]
        await asyncio.sleep(3500)
        still = await _filtered(account, by_id)
        await asyncio.sleep(200)
        return still, await _filtered(account, by_id)

    still, later = in_account(body)
    assert len(still) == 1
    assert later == []
