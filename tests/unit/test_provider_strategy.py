"""How a service's capacity provider strategy and an instance's provider are read from ECS's
answers (moto always reports a launch type, so the cluster's default is checked here)."""

from __future__ import annotations

from typing import Any

import pytest

from scaler.aws.services import Providers, ec2_providers, on_fargate, strategy

CP_A = [{"capacityProvider": "cp-a", "weight": 1, "base": 0}]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"capacityProviderStrategy": CP_A}, ("cp-a",)),  # its own strategy wins
        ({"capacityProviderStrategy": CP_A, "launchType": "EC2"}, ("cp-a",)),
        ({}, ("cp-b",)),  # neither a strategy nor a launch type: the cluster's default
        ({"launchType": "EC2"}, ()),
        ({"launchType": "FARGATE", "capacityProviderStrategy": []}, ()),
    ],
)
def test_a_services_providers(raw: dict[str, Any], expected: tuple[str, ...]) -> None:
    assert strategy(raw, ("cp-b",)) == expected


def test_fargate_providers_need_no_ec2_room() -> None:
    assert on_fargate({}, ("FARGATE", "FARGATE_SPOT"))
    assert on_fargate({"launchType": "FARGATE"}, ())
    assert not on_fargate({}, ("cp-a",))
    assert not on_fargate({"launchType": "EC2"}, ())
    assert ec2_providers(("cp-b", "FARGATE", "cp-a", "cp-b")) == ("cp-a", "cp-b")


def test_an_instances_provider_is_ecs_word_else_its_groups() -> None:
    providers = Providers(groups={"cp-a": "group-a"})
    named = {"attributes": [{"name": "ecs.capacity-provider-name", "value": "cp-x"}]}
    assert providers.of(named, "group-a") == "cp-x"
    assert providers.of({"capacityProviderName": "cp-y"}) == "cp-y"
    assert providers.of({}, "group-a") == "cp-a"
    assert providers.of({}, "group-b") == providers.of({}) == ""
