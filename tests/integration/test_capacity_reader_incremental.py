"""The capacity reader reads where every task runs only when it may have changed, against moto
over HTTP: a quiet cluster is read in full once, then from memory, and read again when a count
changes, when the scaler acted, while a notice is on the board and every few cycles."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from scaler import testbed
from scaler.aws.capacity_reader import SERVICE_PROBES, CapacityReader
from scaler.aws.clients import AwsClients, AwsTarget
from scaler.aws.ecs import InstanceDirectory
from scaler.clock import SystemClock
from scaler.demo import aws_calls
from scaler.metrics import Metrics
from scaler.notices import NoticeBoard
from tests.integration.faults import FailFirst
from tests.integration.helpers import settings_for

CLUSTER = "prod"


class Cluster:
    """moto's cluster of three instances, web's tasks on the first two, and a reader of it."""

    def __init__(
        self, aws: testbed.LocalAws, clients: AwsClients, metrics: Metrics, **settings: Any
    ) -> None:
        self.aws, self.metrics = aws, metrics
        self.nodes = testbed.create_cluster(aws, CLUSTER, size=3)
        testbed.manual_task_states(aws)
        self.ecs = aws.client("ecs")
        self.ecs.register_task_definition(
            family="web",
            containerDefinitions=[{"name": "app", "image": "x", "cpu": 256, "memory": 256}],
        )
        self.ecs.create_service(
            cluster=CLUSTER, serviceName="web", taskDefinition="web", desiredCount=2
        )
        for node in self.nodes[:2]:
            self.start(node)
        values = {"spot_pools": "", "capacity_interval": 30.0, **settings}
        directory = InstanceDirectory(clients.ecs, CLUSTER, SystemClock(), ttl=30.0)
        self.board = NoticeBoard()
        self.reader = CapacityReader(
            clients, settings_for("http://q", **values), directory, self.board
        )
        self.now = time.time()

    def start(self, node: testbed.Node) -> None:
        self.ecs.start_task(
            cluster=CLUSTER,
            taskDefinition="web",
            group="service:web",
            containerInstances=[node.container_instance_arn],
        )

    async def read(self, after: float = 30.0) -> dict[str, int]:
        """One cycle's read, ``after`` seconds after the last; web's tasks by instance."""
        self.now += after
        observed = await self.reader.read(self.now)
        (web,) = [s for s in observed.snapshot.services if s.name == "web"]
        return dict(web.tasks_on)

    def calls(self, operation: str) -> int:
        return aws_calls(self.metrics).get(f"ecs:{operation}", 0)


@pytest.fixture
def refusal() -> FailFirst:
    return FailFirst("ecs", "DescribeClusters", times=0)


@pytest.fixture
def settings() -> dict[str, Any]:
    return {}


@pytest.fixture
async def cluster(
    local_aws: testbed.LocalAws, refusal: FailFirst, settings: dict[str, Any]
) -> AsyncIterator[Cluster]:
    metrics = Metrics()
    target = AwsTarget(region=testbed.REGION, endpoint_url=local_aws.endpoint, max_attempts=1)
    async with AwsClients(target, metrics, instrument=refusal) as clients:
        yield Cluster(local_aws, clients, metrics, **settings)


def _placed(cluster: Cluster, *counts: int) -> dict[str, int]:
    return {n.instance_id: c for n, c in zip(cluster.nodes, counts, strict=False) if c}


async def test_a_quiet_cluster_is_read_in_full_once_then_from_memory(cluster: Cluster) -> None:
    for _ in range(5):
        assert await cluster.read() == _placed(cluster, 1, 1)
    assert cluster.calls("ListTasks") == 1
    assert cluster.calls("DescribeTasks") == 1
    assert cluster.calls("ListServices") == 1
    # the cluster's counts every cycle (for the quiet cycles' probe), its providers once
    assert cluster.calls("DescribeClusters") == 5 + 1
    assert cluster.calls("DescribeServices") == 5  # the counts are read every cycle
    assert cluster.calls("DescribeContainerInstances") == 5
    assert (cluster.reader.memory.full_reads, cluster.reader.memory.reused) == (1, 4)


async def test_a_task_started_on_an_instance_is_read_at_once(cluster: Cluster) -> None:
    await cluster.read()
    await cluster.read()
    cluster.start(cluster.nodes[2])  # the instance's running count and free room change
    assert await cluster.read() == _placed(cluster, 1, 1, 1)
    assert cluster.calls("ListTasks") == 2
    assert await cluster.read() == _placed(cluster, 1, 1, 1)
    assert cluster.calls("ListTasks") == 2


async def test_a_changed_desired_count_reads_the_tasks_again(cluster: Cluster) -> None:
    await cluster.read()
    cluster.ecs.update_service(cluster=CLUSTER, service="web", desiredCount=3)
    await cluster.read()
    assert cluster.calls("ListTasks") == 2
    assert cluster.calls("ListServices") == 2  # a new service may have come: listed again


async def test_everything_is_read_again_every_few_cycles(cluster: Cluster) -> None:
    cluster.reader.memory.every = 3
    for _ in range(7):
        await cluster.read(after=1.0)
    assert cluster.calls("ListTasks") == 3  # cycles 1, 4 and 7
    assert cluster.calls("ListServices") == 3
    assert cluster.calls("DescribeClusters") == 7 + 3  # the counts each cycle, the providers


async def test_everything_is_read_again_after_a_pause(cluster: Cluster) -> None:
    await cluster.read()
    await cluster.read(after=60.0)
    assert cluster.calls("ListTasks") == 1
    await cluster.read(after=61.0)  # a replica leading again, another having led meanwhile
    assert cluster.calls("ListTasks") == 2


async def test_everything_is_read_again_after_the_scaler_acted(cluster: Cluster) -> None:
    acted = [0]
    cluster.reader.acted = lambda: acted[0]
    await cluster.read()
    await cluster.read()
    acted[0] += 1  # a drain, say, ECS does not show yet
    await cluster.read()
    await cluster.read()
    assert cluster.calls("ListTasks") == 2


@pytest.mark.parametrize("settings", [{"overflow_services": "web=web-fargate"}])
async def test_tasks_are_read_every_cycle_while_a_notice_is_on_the_board(
    cluster: Cluster,
) -> None:
    await cluster.read()
    cluster.board.warned(cluster.nodes[0].instance_id, cluster.now, notice=120.0)
    await cluster.read(after=1.0)
    await cluster.read(after=1.0)
    assert cluster.calls("ListTasks") == 3  # the tasks evacuated are stopped by their ARNs


async def test_a_notice_reads_nothing_more_when_no_service_overflows(cluster: Cluster) -> None:
    await cluster.read()
    cluster.board.warned(cluster.nodes[0].instance_id, cluster.now, notice=120.0)
    await cluster.read(after=1.0)
    assert cluster.calls("ListTasks") == 1


async def test_a_full_read_that_failed_part_way_is_made_again(
    cluster: Cluster, refusal: FailFirst
) -> None:
    refusal.skip, refusal.times = 1, 1  # the providers cannot be read: that cycle fails
    with pytest.raises(ClientError):
        await cluster.read()
    await cluster.read()
    assert cluster.calls("ListTasks") == 2
    assert cluster.calls("DescribeClusters") == 4  # the counts and the providers, twice


async def test_a_full_read_describes_only_the_tasks_it_lists_for_the_first_time(
    cluster: Cluster,
) -> None:
    cluster.reader.memory.every = 1  # every read is full
    assert await cluster.read() == _placed(cluster, 1, 1)
    assert await cluster.read() == _placed(cluster, 1, 1)
    assert cluster.calls("ListTasks") == 2
    assert cluster.calls("DescribeTasks") == 1, "the same tasks: listed, not described again"
    cluster.start(cluster.nodes[2])
    assert await cluster.read() == _placed(cluster, 1, 1, 1)
    assert cluster.calls("DescribeTasks") == 2  # the new one alone
    first = cluster.nodes[0].container_instance_arn
    (arn,) = cluster.ecs.list_tasks(cluster=CLUSTER, containerInstance=first)["taskArns"]
    cluster.ecs.stop_task(cluster=CLUSTER, task=arn)
    assert await cluster.read() == _placed(cluster, 0, 1, 1), "a stopped task is forgotten"
    assert cluster.calls("DescribeTasks") == 2


async def test_the_probe_sees_a_changed_count_and_a_read_resets_it(cluster: Cluster) -> None:
    assert not await cluster.reader.unchanged(cluster.now), "nothing read yet: no probe"
    await cluster.read()
    assert await cluster.reader.unchanged(cluster.now + 30.0)
    assert cluster.calls("DescribeTasks") == 1 and cluster.calls("DescribeServices") == 1
    # the cluster's counts change (moto counts a service's desired tasks as running at once)
    cluster.ecs.update_service(cluster=CLUSTER, service="web", desiredCount=3)
    assert not await cluster.reader.unchanged(cluster.now + 60.0)
    await cluster.read(after=60.0)
    assert await cluster.reader.unchanged(cluster.now + 30.0)


async def test_the_probe_describes_the_services_every_few_probes(cluster: Cluster) -> None:
    """A deployment whose counts are where they were shows in the services alone: every
    ``SERVICE_PROBES``-th probe describes them."""
    # moto counts a new service's tasks as pending until its first update: count them running
    cluster.ecs.update_service(cluster=CLUSTER, service="web", desiredCount=2)
    await cluster.read()
    for _ in range(SERVICE_PROBES - 1):
        assert await cluster.reader.unchanged(cluster.now)
    assert cluster.calls("DescribeServices") == 1, "the cluster's counts alone"
    assert await cluster.reader.unchanged(cluster.now)
    assert cluster.calls("DescribeServices") == 2
    cluster.ecs.register_task_definition(
        family="web",
        containerDefinitions=[{"name": "app", "image": "y", "cpu": 256, "memory": 256}],
    )
    # (with its desired count: moto's cluster counts drop the service's tasks otherwise)
    cluster.ecs.update_service(
        cluster=CLUSTER, service="web", taskDefinition="web:2", desiredCount=2
    )
    for _ in range(SERVICE_PROBES - 1):
        assert await cluster.reader.unchanged(cluster.now), "the counts are as they were"
    assert not await cluster.reader.unchanged(cluster.now)
    await cluster.read(after=60.0)
    assert await cluster.reader.unchanged(cluster.now + 30.0)
