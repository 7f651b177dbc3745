"""Capacity providers in the simulated ECS, through real clients: the cluster names its
providers, DescribeCapacityProviders gives each one's Auto Scaling group, a bound service carries
its strategy (and no launch type), and its tasks stay on its provider's instances through a
drain, as ECS places them. The production readers (:mod:`scaler.aws.services`) read them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError, ParamValidationError

from scaler.aws.clients import AwsClients, AwsTarget
from scaler.aws.ecs import describe_container_instances, list_container_instance_arns
from scaler.aws.services import read_providers, read_services
from scaler.ecs.cluster import InstanceType, ServiceSpec
from scaler.metrics import Metrics
from scaler.sim.cloud.autoscaling import AutoScaling
from scaler.sim.cloud.driver import LoopDriver
from scaler.sim.cloud.ec2 import Ec2
from scaler.sim.cloud.ecs import Ecs
from scaler.sim.cloud.engine_world import EngineWorld
from scaler.sim.cloud.transport import SimulatedAws
from scaler.sim.cloud.vloop import run
from scaler.sim.engine import Sim
from scaler.sim.scenario import Pool, Scenario
from tests.sim.cloud.simulated import Idle

TARGET = AwsTarget("us-east-1", "https://aws.simulated.invalid", credentials=("SIM", "SIM"))
M5 = InstanceType("m5.xlarge", 4, 16384, 0.192)
A, B = "us-east-1a", "us-east-1b"


def two_providers(web_min_healthy: int = 100) -> Scenario:
    """cp-a: 3 instances in A; cp-b: 3 in B. web (8 tasks of a quarter instance) is bound to
    cp-a, api to cp-b; batch (no tasks) to none."""
    pools = (
        Pool("spot-a", "spot", M5.name, A, 0.07, initial=3, capacity_provider="cp-a"),
        Pool("spot-b", "spot", M5.name, B, 0.05, initial=3, capacity_provider="cp-b"),
    )
    web = ServiceSpec(
        "web", 8, 1024, 2048, min_healthy_percent=web_min_healthy, capacity_providers=("cp-a",)
    )
    api = ServiceSpec("api", 2, 512, 1024, capacity_providers=("cp-b",))
    batch = ServiceSpec("batch", 0, 512, 1024)
    return Scenario("two-providers", 1.0, {M5.name: M5}, pools, (web, api, batch))


def _in_cluster(
    world: Scenario,
    body: Callable[[Any, Ecs, AutoScaling], Awaitable[Any]],
) -> Any:
    async def main() -> Any:
        sim = Sim(world, Idle(), seed=1)
        driver = LoopDriver(sim)
        stop = asyncio.Event()
        driving = asyncio.create_task(driver.run(stop))
        instances = EngineWorld(driver)
        ec2 = Ec2(instances)
        autoscaling = AutoScaling(instances, ec2)
        ecs = Ecs(driver, "prod")
        aws_world = SimulatedAws({"ecs": ecs, "autoscaling": autoscaling, "ec2": ec2})
        async with AwsClients(TARGET, Metrics(), aws_world.install) as aws:
            await asyncio.sleep(300)  # the services are placed and running
            try:
                return await body(aws.ecs, ecs, autoscaling)
            finally:
                stop.set()
                driver.poke()
                await driving

    return run(main())


def _group(ecs: Ecs, autoscaling: AutoScaling, provider: str, az: str) -> str:
    """An empty Auto Scaling group of m5.xlarge in ``az``, made ``provider``'s group."""
    autoscaling.ec2.template(f"{provider}-nodes", M5.name, "image-1")
    group = autoscaling.group(
        f"{provider}-asg", f"{provider}-nodes", min_size=0, max_size=10, desired=0, azs=[az]
    )
    ecs.groups[provider] = group.arn
    return group.name


# -- what ECS says -----------------------------------------------------------------------------


def test_the_cluster_names_the_scenarios_providers() -> None:
    async def body(client: Any, ecs: Ecs, autoscaling: AutoScaling) -> dict[str, Any]:
        reply = await client.describe_clusters(clusters=["prod"])
        return dict(reply["clusters"][0])

    cluster = _in_cluster(two_providers(), body)
    assert cluster["capacityProviders"] == ["cp-a", "cp-b"]
    assert cluster["defaultCapacityProviderStrategy"] == []


def test_a_provider_is_described_with_its_group_and_an_unknown_one_is_a_failure() -> None:
    async def body(client: Any, ecs: Ecs, autoscaling: AutoScaling) -> tuple[Any, str]:
        name = _group(ecs, autoscaling, "cp-a", A)
        arn = autoscaling.groups[name].arn
        reply = await client.describe_capacity_providers(
            capacityProviders=["cp-a", "cp-b", "cp-none"]
        )
        return reply, arn

    reply, arn = _in_cluster(two_providers(), body)
    by_name = {p["name"]: p for p in reply["capacityProviders"]}
    assert sorted(by_name) == ["cp-a", "cp-b"]
    a, b = by_name["cp-a"], by_name["cp-b"]
    assert a["autoScalingGroupProvider"]["autoScalingGroupArn"] == arn
    assert a["capacityProviderArn"].endswith(":capacity-provider/cp-a")
    assert a["status"] == "ACTIVE"
    for provider in (a, b):
        group = provider["autoScalingGroupProvider"]
        assert group["managedScaling"]["status"] in ("ENABLED", "DISABLED")
        assert group["managedTerminationProtection"] in ("ENABLED", "DISABLED")
    unheld = b["autoScalingGroupProvider"]["autoScalingGroupArn"]
    assert unheld.endswith(":autoScalingGroupName/cp-b"), "a group the world does not hold"
    assert [f["reason"] for f in reply["failures"]] == ["MISSING"]
    assert reply["failures"][0]["arn"].endswith("cp-none")


def test_a_bound_service_has_its_strategy_and_no_launch_type() -> None:
    async def body(client: Any, ecs: Ecs, autoscaling: AutoScaling) -> dict[str, Any]:
        reply = await client.describe_services(cluster="prod", services=["web", "batch"])
        return {s["serviceName"]: s for s in reply["services"]}

    services = _in_cluster(two_providers(), body)
    web, batch = services["web"], services["batch"]
    assert web["capacityProviderStrategy"] == [{"capacityProvider": "cp-a", "weight": 1, "base": 0}]
    assert "launchType" not in web
    assert batch["launchType"] == "EC2"
    assert "capacityProviderStrategy" not in batch


def test_the_production_readers_read_the_providers_and_the_bound_service() -> None:
    async def body(client: Any, ecs: Ecs, autoscaling: AutoScaling) -> tuple[Any, Any, str]:
        name = _group(ecs, autoscaling, "cp-a", A)
        providers = await read_providers(client, "prod")
        specs = await read_services(client, "prod", [], providers=providers)
        return providers, specs, name

    providers, specs, name = _in_cluster(two_providers(), body)
    assert dict(providers.groups) == {"cp-a": name, "cp-b": "cp-b"}  # cp-b: no group held
    assert providers.default == ()
    by_name = {s.name: s for s in specs}
    assert by_name["web"].capacity_providers == ("cp-a",)
    assert by_name["web"].launch_type == "EC2"
    assert by_name["api"].capacity_providers == ("cp-b",)
    assert by_name["batch"].capacity_providers == ()


def test_more_names_than_ecs_takes_are_refused() -> None:
    async def body(client: Any, ecs: Ecs, autoscaling: AutoScaling) -> None:
        names = [f"cp-{i}" for i in range(101)]
        await client.describe_capacity_providers(capacityProviders=names)

    with pytest.raises(ClientError, match="InvalidParameterException"):
        _in_cluster(two_providers(), body)


def test_names_that_are_no_list_are_refused_before_anything_is_sent() -> None:
    async def body(client: Any, ecs: Ecs, autoscaling: AutoScaling) -> None:
        await client.describe_capacity_providers(capacityProviders="cp-a")

    with pytest.raises(ParamValidationError, match="capacityProviders"):
        _in_cluster(two_providers(), body)


# -- where ECS places ------------------------------------------------------------------------


async def _placement(client: Any) -> tuple[dict[str, str], dict[str, int], list[str]]:
    """Container instance ARN -> its provider; web's running and pending counts; the container
    instances web's tasks are on."""
    arns = await list_container_instance_arns(client, "prod")
    described = await describe_container_instances(client, "prod", arns)
    provider = {ci.arn: ci.capacity_provider for ci in described}
    web = (await client.describe_services(cluster="prod", services=["web"]))["services"][0]
    counts = {"running": web["runningCount"], "pending": web["pendingCount"]}
    task_arns = (await client.list_tasks(cluster="prod", serviceName="web"))["taskArns"]
    tasks = (
        (await client.describe_tasks(cluster="prod", tasks=task_arns))["tasks"] if task_arns else []
    )
    return (
        provider,
        counts,
        [t["containerInstanceArn"] for t in tasks if "containerInstanceArn" in t],
    )


async def _drain(client: Any, arn: str) -> None:
    await client.update_container_instances_state(
        cluster="prod", containerInstances=[arn], status="DRAINING"
    )


def test_a_bound_service_stays_on_its_provider_through_drains() -> None:
    async def body(client: Any, ecs: Ecs, autoscaling: AutoScaling) -> list[Any]:
        web = (await client.describe_services(cluster="prod", services=["web"]))["services"][0]
        bound = {s["capacityProvider"] for s in web["capacityProviderStrategy"]}
        provider, _, on = await _placement(client)
        seen: list[Any] = [(bound, sorted({provider[i] for i in on}))]
        ours = sorted(a for a, p in provider.items() if p in bound)
        for drained in ours[:2]:  # the first with room left on cp-a, the second without
            await _drain(client, drained)
            await asyncio.sleep(600)
            provider, counts, on = await _placement(client)
            seen.append((sorted({provider[i] for i in on}), drained in on, counts))
        return seen

    first, (after_one, on_drained, counts_one), (after_two, _, counts_two) = _in_cluster(
        two_providers(web_min_healthy=0), body
    )
    assert first == ({"cp-a"}, ["cp-a"])
    assert after_one == ["cp-a"] and not on_drained
    assert counts_one == {"running": 8, "pending": 0}
    assert after_two == ["cp-a"], "cp-b has room, yet web's tasks never go there"
    assert counts_two["running"] == 4  # one cp-a instance left: room for 4 of the 8
