"""``scaler snapshot`` against the local AWS: a scenario read from a cluster, with reads only.

moto quirks this relies on (moto 5.2):

- CreateService drops ``placementStrategy``, ``placementConstraints``,
  ``deploymentConfiguration`` and ``capacityProviderStrategy`` (and always reports ``launchType``
  EC2), but UpdateService stores them all; so services are created, then updated.
- Every container instance registers 4096 CPU units and 7482 MiB, whatever its type.
- DescribeSpotPriceHistory answers 0.00001 USD for every type and AZ, ignoring the time window
  and product description; DescribeInstances cannot filter on ``instance-lifecycle`` (HTTP 500),
  but reports ``InstanceLifecycle: spot`` for instances run with spot market options.
"""

from __future__ import annotations

import asyncio
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from scaler import testbed
from scaler.aws.clients import AwsClients, AwsTarget, error_code
from scaler.aws.services import _understood
from scaler.aws.taskdefs import reservation as _reservation
from scaler.demo import aws_calls
from scaler.metrics import Metrics
from scaler.sim.engine import Sim
from scaler.sim.policies import POLICIES
from scaler.sim.run import simulate
from scaler.sim.scenario import ScenarioError, from_dict, load
from scaler.snapshot import render, snapshot
from tests.integration.ecs_harness import set_provider

CLUSTER = "prod"
AZ_SPREAD = {"type": "spread", "field": "attribute:ecs.availability-zone"}
SPOT_RATE = 0.15 / 720


def run_instances(
    aws: testbed.LocalAws, count: int, az: str, kind: str = "m5.large", spot: bool = False
) -> list[str]:
    extra: dict[str, Any] = {"InstanceMarketOptions": {"MarketType": "spot"}} if spot else {}
    reply = aws.client("ec2").run_instances(
        ImageId="ami-12c6146b",
        MinCount=count,
        MaxCount=count,
        InstanceType=kind,
        Placement={"AvailabilityZone": az},
        **extra,
    )
    return [i["InstanceId"] for i in reply["Instances"]]


def join(
    aws: testbed.LocalAws, count: int, az: str, kind: str = "m5.large", spot: bool = False
) -> list[testbed.Node]:
    return testbed.register_instances(aws, CLUSTER, run_instances(aws, count, az, kind, spot), az)


def build_capacity(aws: testbed.LocalAws) -> None:
    """10 container instances, of which 9 count; and another cluster's instance."""
    nodes = testbed.create_cluster(aws, CLUSTER, 3, "us-east-1a")  # on-demand m5.large
    join(aws, 2, "us-east-1b")
    join(aws, 1, "us-east-1b", spot=True)
    join(aws, 2, "us-east-1c", "c5.xlarge", spot=True)
    join(aws, 1, "us-east-1a", "m5.4xlarge")  # not in the price table
    stopped = join(aws, 1, "us-east-1b")  # its EC2 instance is stopped: left out
    aws.client("ec2").stop_instances(InstanceIds=[stopped[0].instance_id])
    aws.client("ecs").update_container_instances_state(
        cluster=CLUSTER, containerInstances=[nodes[0].container_instance_arn], status="DRAINING"
    )
    aws.client("ecs").create_cluster(clusterName="other")
    testbed.register_instances(aws, "other", run_instances(aws, 1, "us-east-1a"), "us-east-1a")


def service(ecs: Any, name: str, definition: str, desired: int, **update: Any) -> None:
    """Create, then update (moto's CreateService drops most of the interesting fields)."""
    launch = {"launchType": update.pop("launchType")} if "launchType" in update else {}
    strategy = (
        {"schedulingStrategy": update.pop("schedulingStrategy")}
        if "schedulingStrategy" in update
        else {}
    )
    ecs.create_service(
        cluster=CLUSTER,
        serviceName=name,
        taskDefinition=definition,
        desiredCount=desired,
        **launch,
        **strategy,
    )
    if update:
        ecs.update_service(cluster=CLUSTER, service=name, **update)


def build_services(aws: testbed.LocalAws) -> None:
    ecs = aws.client("ecs")
    app = {"name": "app", "image": "nginx", "memory": 128}
    ecs.register_task_definition(family="web", cpu="512", memory="1024", containerDefinitions=[app])
    ecs.register_task_definition(
        family="worker",
        containerDefinitions=[
            {
                "name": "a",
                "image": "x",
                "cpu": 256,
                "memoryReservation": 300,
                "memory": 600,
                "healthCheck": {"command": ["CMD", "true"], "startPeriod": 20, "interval": 10},
            },
            {"name": "b", "image": "x", "memory": 200},
        ],
        placementConstraints=[{"type": "memberOf", "expression": "attribute:ecs.os-type == linux"}],
    )
    ecs.register_task_definition(
        family="batch", containerDefinitions=[{"name": "b", "image": "x", "memory": 256}]
    )
    ecs.register_task_definition(
        family="serverless",
        cpu="1 vCPU",
        memory="2 GB",
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        containerDefinitions=[app],
    )
    service(
        ecs,
        "web",
        "web",
        4,
        placementStrategy=[AZ_SPREAD, {"type": "binpack", "field": "MEMORY"}],
        placementConstraints=[{"type": "distinctInstance"}],
        deploymentConfiguration={"minimumHealthyPercent": 50, "maximumPercent": 200},
    )
    service(
        ecs,
        "worker",
        "worker",
        3,
        placementStrategy=[{"type": "binpack", "field": "cpu"}],
        placementConstraints=[
            {"type": "memberOf", "expression": "attribute:ecs.instance-type == m5.large"}
        ],
        deploymentConfiguration={"minimumHealthyPercent": 100, "maximumPercent": 150},
    )
    service(ecs, "batch", "batch", 2)  # ECS's defaults throughout
    service(ecs, "api", "web", 2, launchType="FARGATE")
    service(
        ecs,
        "cheap",
        "serverless",
        1,
        capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}],
        placementStrategy=[{"type": "random"}],
    )
    service(ecs, "agent", "batch", 0, schedulingStrategy="DAEMON")


async def take(
    aws: testbed.LocalAws, metrics: Metrics, cluster: str = CLUSTER, hours: float = 0.2
) -> dict[str, Any]:
    target = AwsTarget(region=testbed.REGION, endpoint_url=aws.endpoint, max_attempts=1)
    async with AwsClients(target, metrics) as clients:
        return await snapshot(clients, cluster, hours=hours)


def assert_read_only(metrics: Metrics) -> None:
    calls = aws_calls(metrics)
    assert calls
    writes = [c for c in calls if not c.split(":")[1].startswith(("List", "Describe", "Get"))]
    assert writes == []


@pytest.fixture
async def snap(local_aws: testbed.LocalAws) -> tuple[dict[str, Any], Metrics]:
    build_capacity(local_aws)
    build_services(local_aws)
    metrics = Metrics()
    return await take(local_aws, metrics), metrics


async def test_snapshot_reads_capacity_into_pools(snap: tuple[dict[str, Any], Metrics]) -> None:
    data, _ = snap
    assert data["name"] == CLUSTER
    assert data["hours"] == 0.2
    assert data["events"] == []
    pools = {p["name"]: p for p in data["pools"]}
    assert [p["name"] for p in data["pools"]] == [
        "spot-c5.xlarge-us-east-1c",
        "spot-m5.large-us-east-1b",
        "od-m5.4xlarge-us-east-1a",
        "od-m5.large-us-east-1a",
        "od-m5.large-us-east-1b",
        "od-m5.large-us-east-1c",  # the fallback pool: the most common type, in every AZ
    ]
    assert {n: p["initial"] for n, p in pools.items()} == {
        "spot-c5.xlarge-us-east-1c": 2,
        "spot-m5.large-us-east-1b": 1,
        "od-m5.4xlarge-us-east-1a": 1,
        "od-m5.large-us-east-1a": 3,  # one of them DRAINING: still counted
        "od-m5.large-us-east-1b": 2,  # the stopped one is not
        "od-m5.large-us-east-1c": 0,
    }
    assert pools["spot-c5.xlarge-us-east-1c"] == {
        "name": "spot-c5.xlarge-us-east-1c",
        "capacity": "spot",
        "instance_type": "c5.xlarge",
        "az": "us-east-1c",
        "price": 0.0595,  # moto's 0.00001 is not believable: 35% of 0.17
        "interruptions_per_hour": SPOT_RATE,
        "initial": 2,
    }
    assert pools["spot-m5.large-us-east-1b"]["price"] == 0.0336
    assert pools["od-m5.large-us-east-1a"]["price"] is None
    assert all(p["interruptions_per_hour"] == 0 for p in data["pools"] if p["capacity"] != "spot")
    assert data["instance_types"] == [
        {"name": "c5.xlarge", "vcpu": 4, "memory_mib": 8192, "on_demand_price": 0.17},
        {"name": "m5.4xlarge", "vcpu": 16, "memory_mib": 65536, "on_demand_price": 0.768},
        {"name": "m5.large", "vcpu": 2, "memory_mib": 8192, "on_demand_price": 0.096},
    ]
    notes = "\n".join(data["notes"])
    assert "m5.4xlarge: on-demand price estimated" in notes
    assert "spot c5.xlarge in us-east-1c: reported spot price 1e-05 is below 5%" in notes
    assert "spot m5.large in us-east-1b" in notes
    assert "interruptions_per_hour" in notes
    assert "1 DRAINING container instance(s) modelled as ACTIVE" in notes
    assert "is stopped; left out" in notes
    assert "m5.large: container instances register 4096 CPU units" in notes  # moto's 4096
    assert "ECS registers 7482 of its 8192 MiB" in notes


async def test_snapshot_reads_services(snap: tuple[dict[str, Any], Metrics]) -> None:
    data, _ = snap
    services = {s["name"]: s for s in data["services"]}
    assert sorted(services) == ["api", "batch", "cheap", "web", "worker"]  # not the DAEMON
    web = services["web"]
    assert (web["desired"], web["cpu"], web["memory"]) == (4, 512, 1024)
    assert (web["min_healthy_percent"], web["max_percent"]) == (50, 200)
    assert web["strategies"] == (AZ_SPREAD, {"type": "binpack", "field": "memory"})
    assert web["constraints"] == ({"type": "distinctInstance", "expression": ""},)
    assert web["launch_type"] == "EC2"
    assert web["cpu_use"] == 0.5
    worker = services["worker"]
    # memoryReservation counts over memory, as ECS reserves it; cpu 256 + 0
    assert (worker["desired"], worker["cpu"], worker["memory"]) == (3, 256, 500)
    assert (worker["min_healthy_percent"], worker["max_percent"]) == (100, 150)
    assert worker["strategies"] == ({"type": "binpack", "field": "cpu"},)
    # the task definition's os-type constraint is beyond the simulator: dropped, noted
    assert worker["constraints"] == (
        {"type": "memberOf", "expression": "attribute:ecs.instance-type == m5.large"},
    )
    assert worker["health_delay"] == 30.0  # startPeriod 20 + interval 10
    batch = services["batch"]
    assert (batch["cpu"], batch["memory"]) == (128, 256)  # no CPU reserved: 128
    assert (batch["min_healthy_percent"], batch["max_percent"]) == (100, 200)
    assert batch["strategies"] == (AZ_SPREAD,)
    assert batch["constraints"] == ()
    assert services["api"]["launch_type"] == "FARGATE"
    cheap = services["cheap"]
    assert (cheap["launch_type"], cheap["cpu"], cheap["memory"]) == ("FARGATE", 1024, 2048)
    assert cheap["strategies"] == ({"type": "random", "field": ""},)
    notes = "\n".join(data["notes"])
    assert "service agent: DAEMON services are not simulated" in notes
    assert "'attribute:ecs.os-type == linux' is beyond what the simulator evaluates" in notes
    assert "modelled with 128 CPU units: batch" in notes
    assert "service cheap: FARGATE_SPOT modelled as Fargate on-demand" in notes
    assert "cpu_use: 0.5" in notes


async def test_snapshot_only_reads(snap: tuple[dict[str, Any], Metrics]) -> None:
    _, metrics = snap
    assert_read_only(metrics)
    assert aws_calls(metrics) == {
        "ecs:ListContainerInstances": 1,
        "ecs:DescribeContainerInstances": 1,
        "ec2:DescribeInstances": 1,
        "ec2:DescribeInstanceTypes": 1,
        "ec2:DescribeSpotPriceHistory": 1,
        "ecs:ListServices": 1,
        "ecs:DescribeServices": 1,
        "ecs:DescribeTaskDefinition": 4,  # web, worker, batch, serverless: once each
        "ecs:DescribeClusters": 1,  # its default capacity provider strategy (it has none)
    }


async def test_snapshot_loads_and_simulates(
    snap: tuple[dict[str, Any], Metrics], tmp_path: Path
) -> None:
    data, _ = snap
    scenario = from_dict(data)
    assert scenario.name == CLUSTER
    assert len(scenario.pools) == 6
    assert scenario.azs == ["us-east-1a", "us-east-1b", "us-east-1c"]
    # the shipped scaler runs on a virtual-time loop of its own: not inside this test's loop
    report = await asyncio.to_thread(simulate, scenario, ["scaler"], 1)
    assert set(report["results"]) == {"scaler"}
    assert 0 <= report["results"]["scaler"]["availability"] <= 1
    # as files, both formats read back to the same scenario
    for fmt in ("json", "toml"):
        path = tmp_path / f"snap.{fmt}"
        path.write_text(render(data, fmt))
        assert load(path) == scenario
    assert json.loads(render(data, "json"))["notes"] == data["notes"]
    assert tomllib.loads(render(data, "toml"))["notes"] == data["notes"]
    with pytest.raises(ValueError, match="unknown format"):
        render(data, "yaml")


def capacity_provider(aws: testbed.LocalAws, name: str, group: str) -> None:
    arn = aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[group])[
        "AutoScalingGroups"
    ][0]["AutoScalingGroupARN"]
    aws.client("ecs").create_capacity_provider(
        name=name, autoScalingGroupProvider={"autoScalingGroupArn": arn}
    )


async def test_snapshot_binds_services_to_their_capacity_providers(
    local_aws: testbed.LocalAws,
) -> None:
    """cp-a's instances carry ECS's attribute; cp-b's are known by their group only."""
    ecs = local_aws.client("ecs")
    ecs.create_cluster(clusterName=CLUSTER)
    a = join(local_aws, 2, "us-east-1a")
    b = run_instances(local_aws, 1, "us-east-1a")
    testbed.create_group(local_aws, "group-a", "m5.large", ["us-east-1a"])
    testbed.create_group(local_aws, "group-b", "m5.large", ["us-east-1a"], instance_ids=b)
    testbed.register_instances(local_aws, CLUSTER, b, "us-east-1a")
    join(local_aws, 1, "us-east-1a")  # of no provider
    capacity_provider(local_aws, "cp-a", "group-a")
    capacity_provider(local_aws, "cp-b", "group-b")
    ecs.put_cluster_capacity_providers(
        cluster=CLUSTER,
        capacityProviders=["cp-a", "cp-b"],
        defaultCapacityProviderStrategy=[{"capacityProvider": "cp-b", "weight": 1}],
    )
    for node in a:
        assert node.container_instance_arn is not None
        set_provider(local_aws, CLUSTER, node.container_instance_arn, "cp-a")
    ecs.register_task_definition(
        family="app", containerDefinitions=[{"name": "a", "image": "x", "cpu": 256, "memory": 512}]
    )
    spread = [{"capacityProvider": p, "weight": 1} for p in ("cp-a", "cp-b")]
    service(ecs, "web", "app", 6, capacityProviderStrategy=spread)
    service(ecs, "batch", "app", 2)
    service(ecs, "lambda-ish", "app", 1, capacityProviderStrategy=[{"capacityProvider": "FARGATE"}])
    metrics = Metrics()
    data = await take(local_aws, metrics)
    pools = {p["name"]: p for p in data["pools"]}
    assert {n: (p.get("capacity_provider"), p["initial"]) for n, p in pools.items()} == {
        "od-m5.large-us-east-1a": (None, 1),
        "od-m5.large-us-east-1a-cp-a": ("cp-a", 2),
        "od-m5.large-us-east-1a-cp-b": ("cp-b", 1),
    }
    services = {s["name"]: s for s in data["services"]}
    assert services["web"]["capacity_providers"] == ["cp-a", "cp-b"]
    assert "capacity_providers" not in services["batch"]  # moto reports launch type EC2
    assert services["lambda-ish"]["launch_type"] == "FARGATE"
    assert aws_calls(metrics)["ecs:DescribeCapacityProviders"] == 1
    assert_read_only(metrics)
    # the simulator places web on cp-a's and cp-b's instances only
    scenario = from_dict(data)
    sim = Sim(scenario, POLICIES["ecs-native"](), seed=1)
    sim.run()
    web = [t for t in sim.cluster.services["web"].tasks.values() if t.instance is not None]
    assert len(web) == 6
    assert {t.instance.provider for t in web if t.instance} <= {"cp-a", "cp-b"}
    for fmt in ("json", "toml"):
        assert from_dict(tomllib.loads(render(data, fmt)) if fmt == "toml" else data) == scenario


def test_the_scenario_names_no_capacity_provider_without_a_pool() -> None:
    raw = {
        "instance_types": [{"name": "m", "vcpu": 2, "memory_mib": 4096, "on_demand_price": 0.1}],
        "pools": [
            {"name": "p", "capacity": "spot", "instance_type": "m", "az": "a",
             "capacity_provider": "cp-spot"}
        ],
        "services": [
            {"name": "web", "desired": 1, "cpu": 256, "memory": 512,
             "capacity_providers": ["cp-spto"]}
        ],
    }  # fmt: skip
    with pytest.raises(ScenarioError) as raised:
        from_dict(raw)
    assert raised.value.problems == [
        "services[0].capacity_providers[0]: no pool is capacity provider 'cp-spto'; did you mean "
        "'cp-spot'?"
    ]


async def test_snapshot_batches_big_clusters(local_aws: testbed.LocalAws) -> None:
    testbed.create_cluster(local_aws, CLUSTER, 120, "us-east-1a")
    ecs = local_aws.client("ecs")
    ecs.register_task_definition(
        family="app", containerDefinitions=[{"name": "a", "image": "x", "cpu": 256, "memory": 512}]
    )
    for i in range(12):
        service(ecs, f"svc-{i:02d}", "app", 1)
    metrics = Metrics()
    data = await take(local_aws, metrics)
    assert [(p["name"], p["initial"]) for p in data["pools"]] == [("od-m5.large-us-east-1a", 120)]
    assert len(data["services"]) == 12
    assert_read_only(metrics)
    assert aws_calls(metrics) == {
        "ecs:ListContainerInstances": 1,  # moto answers in one page
        "ecs:DescribeContainerInstances": 2,  # 100 + 20
        "ec2:DescribeInstances": 2,  # 100 + 20 ids
        "ec2:DescribeInstanceTypes": 1,
        "ecs:ListServices": 1,
        "ecs:DescribeServices": 2,  # 10 + 2
        "ecs:DescribeTaskDefinition": 1,
        "ecs:DescribeClusters": 1,
    }  # no spot instance: no spot price asked
    assert from_dict(data).pools[0].initial == 120


async def test_snapshot_of_an_empty_cluster(local_aws: testbed.LocalAws) -> None:
    local_aws.client("ecs").create_cluster(clusterName=CLUSTER)
    metrics = Metrics()
    data = await take(local_aws, metrics, cluster=f"arn:aws:ecs:us-east-1:123:cluster/{CLUSTER}")
    assert data["name"] == CLUSTER
    assert (data["pools"], data["services"], data["instance_types"]) == ([], [], [])
    assert any("no ACTIVE or DRAINING container instances" in n for n in data["notes"])
    assert from_dict(data).pools == ()
    assert aws_calls(metrics) == {
        "ecs:DescribeClusters": 1,
        "ecs:ListContainerInstances": 1,
        "ecs:ListServices": 1,
    }


async def test_snapshot_of_an_unknown_cluster_fails(local_aws: testbed.LocalAws) -> None:
    metrics = Metrics()
    with pytest.raises(Exception) as raised:  # botocore's ClientError, from ListServices
        await take(local_aws, metrics, cluster="nope")
    assert error_code(raised.value) == "ClusterNotFoundException"
    assert_read_only(metrics)


async def test_snapshot_refuses_a_non_positive_length(local_aws: testbed.LocalAws) -> None:
    with pytest.raises(ValueError, match="hours"):
        await take(local_aws, Metrics(), hours=0)


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        ({"cpu": "1 vCPU", "memory": "2 GB", "containerDefinitions": []}, (1024, 2048)),
        ({"cpu": "0.25 vCPU", "memory": "512", "containerDefinitions": []}, (256, 512)),
        (
            {
                "containerDefinitions": [
                    {"cpu": 100, "memory": 300},
                    {"memoryReservation": 50, "memory": 400},
                    {},
                ]
            },
            (100, 350),
        ),
        ({"cpu": "256", "containerDefinitions": [{"memory": 64}]}, (256, 64)),
    ],
)
def test_task_reservation(definition: dict[str, Any], expected: tuple[int, int]) -> None:
    assert _reservation(definition) == expected


@pytest.mark.parametrize(
    ("expression", "understood"),
    [
        ("attribute:ecs.instance-type == m5.large", True),
        ("attribute:ecs.instance-type==m5.large", True),
        ("attribute:ecs.availability-zone in [us-east-1a, us-east-1b]", True),
        ("attribute:ecs.availability-zone != us-east-1a", True),
        ("attribute:ecs.os-type == linux", False),  # an attribute the simulator does not know
        ("attribute:ecs.instance-type =~ m5.*", False),
        ("attribute:ecs.instance-type == m5.large and attribute:stack == prod", False),
        ("attribute:stack exists", False),
        ("", False),
    ],
)
def test_member_of_expressions_the_simulator_reads(expression: str, understood: bool) -> None:
    assert _understood(expression) is understood
