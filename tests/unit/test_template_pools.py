"""Template pools: the EC2 Fleet request, and instances shown as an Auto Scaling group's."""

from __future__ import annotations

from typing import Any, cast

from scaler.aws.clients import AwsClients
from scaler.aws.templates import TemplatePools, _member
from scaler.settings import load_settings


def _pools(**extra: Any) -> TemplatePools:
    settings = load_settings(
        cluster="arn:aws:ecs:us-east-1:123456789012:cluster/prod",
        queue_url="http://q",
        spot_templates="spot=lt-0abc",
        on_demand_templates="od=ecs-node",
        **extra,
    )
    return TemplatePools(cast(AwsClients, None), settings)


def test_a_spot_request_spreads_over_every_type_and_subnet() -> None:
    pools = _pools(fleet_instance_types="m5.large,m6i.large", fleet_subnets="subnet-a,subnet-b")
    request = pools._request("spot", 3, "tok", ("lt-0abc", "7"))
    assert request["Type"] == "instant"
    assert request["SpotOptions"] == {"AllocationStrategy": "price-capacity-optimized"}
    assert request["TargetCapacitySpecification"] == {
        "TotalTargetCapacity": 3,
        "DefaultTargetCapacityType": "spot",
    }
    (config,) = request["LaunchTemplateConfigs"]
    assert config["LaunchTemplateSpecification"] == {"LaunchTemplateId": "lt-0abc", "Version": "7"}
    assert len(config["Overrides"]) == 4
    assert {"InstanceType": "m6i.large", "SubnetId": "subnet-b"} in config["Overrides"]
    tags = {t["Key"]: t["Value"] for t in request["TagSpecifications"][0]["Tags"]}
    assert request["TagSpecifications"][1] == {
        "ResourceType": "fleet",
        "Tags": [{"Key": "scaler:cluster", "Value": "prod"}],
    }
    assert tags == {
        "scaler:cluster": "prod",
        "scaler:pool": "spot",
        "scaler:launch-template-id": "lt-0abc",
        "scaler:launch-template-version": "7",
    }


def test_on_demand_uses_the_templates_own_type_and_network() -> None:
    request = _pools()._request("od", 1, "tok", ("lt-0def", "2"))
    assert request["OnDemandOptions"] == {"AllocationStrategy": "lowest-price"}
    assert "SpotOptions" not in request
    assert "Overrides" not in request["LaunchTemplateConfigs"][0]


def test_each_launch_has_a_token_of_its_own() -> None:
    from scaler.aws.templates import new_token

    first, second = new_token(), new_token()
    assert first != second and len(first) <= 64
    assert _pools()._request("spot", 2, first, ("lt-0abc", "1"))["ClientToken"] == first


def test_pool_instances_look_like_a_groups() -> None:
    pools = _pools(fleet_instance_types="c5.xlarge")
    raw = {
        "InstanceId": "i-1",
        "InstanceType": "c5.xlarge",
        "Placement": {"AvailabilityZone": "us-east-1b"},
        "State": {"Name": "pending"},
        "Tags": [
            {"Key": "scaler:launch-template-id", "Value": "lt-0abc"},
            {"Key": "scaler:launch-template-version", "Value": "3"},
        ],
    }
    group = pools._group("spot", [raw])
    assert group["DesiredCapacity"] == 1 and group["MaxSize"] == 50
    assert group["LaunchTemplate"] == {"LaunchTemplateId": "lt-0abc", "Version": "$Default"}
    assert group["MixedInstancesPolicy"]["LaunchTemplate"]["Overrides"] == [
        {"InstanceType": "c5.xlarge"}
    ]
    assert _member(raw) == {
        "InstanceId": "i-1",
        "AvailabilityZone": "us-east-1b",
        "InstanceType": "c5.xlarge",
        "LifecycleState": "Pending",
        "LaunchTemplate": {"LaunchTemplateId": "lt-0abc", "Version": "3"},
    }
    assert pools._group("od", [])["LaunchTemplate"] == {
        "LaunchTemplateName": "ecs-node",
        "Version": "$Default",
    }


def test_a_launch_counts_until_shown_and_for_ten_minutes_at_most() -> None:
    from scaler.aws.templates import LAUNCH_MEMORY, RecentLaunches

    recent = RecentLaunches()
    reply = {
        "Instances": [
            {
                "InstanceIds": ["i-1", "i-2"],
                "InstanceType": "c5.xlarge",
                "LaunchTemplateAndOverrides": {"Overrides": {"AvailabilityZone": "us-east-1b"}},
            }
        ]
    }
    assert recent.note("spot", reply, at=100.0) == 2
    missing = recent.missing(set(), now=110.0)["spot"]
    assert [m["InstanceId"] for m in missing] == ["i-1", "i-2"]
    assert missing[0]["LifecycleState"] == "Pending"
    assert missing[0]["AvailabilityZone"] == "us-east-1b"
    assert [m["InstanceId"] for m in recent.missing({"i-1"}, now=120.0)["spot"]] == ["i-2"]
    assert recent.missing(set(), now=100.0 + LAUNCH_MEMORY) == {}
    assert recent.unseen == {}
    recent.note("spot", {"Instances": [{"InstanceIds": ["i-3"]}]}, at=200.0)
    assert recent.missing(set(), now=200.0)["spot"][0]["AvailabilityZone"] == "*"
