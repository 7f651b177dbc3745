"""Urgent calls (drains, lifecycle completion) under throttling, over real HTTP.

The scaler is pointed at :class:`tests.e2e.fault_proxy.FaultProxy` in front of moto: the proxy
throttles chosen calls and logs every request in arrival order, so the tests count HTTP attempts
and see which calls reached AWS before which, never how long anything took.
"""

from __future__ import annotations

import asyncio

import pytest
from botocore.exceptions import ClientError

from scaler import testbed
from scaler.aws.clients import AwsClients, AwsTarget
from scaler.aws.drainer import Drainer
from scaler.aws.ecs import InstanceDirectory
from scaler.aws.lifecycle import AutoScalingLifecycle
from scaler.clock import SystemClock
from scaler.metrics import Metrics
from scaler.model import ContainerInstance
from scaler.plan.drain import LifecycleAction
from tests.e2e.fault_proxy import Fault, FaultProxy
from tests.integration.helpers import wait_for

DRAIN = "ecs:UpdateContainerInstancesState"
ATTEMPTS = 3  # botocore's max_attempts, the one retry layer
READERS = 8  # background readers flooding ECS with reads
ACTION = LifecycleAction("prod-asg", "drain-hook", "0befcbdb-6ecd-498a-9ff7-ae9b54447cd6", "i-0633")


def _start(aws: testbed.LocalAws, faults: list[Fault]) -> FaultProxy:
    proxy = FaultProxy(aws.endpoint, faults).start()
    proxy.arm()
    return proxy


async def _instances(aws: AwsClients, ids: list[str]) -> list[ContainerInstance]:
    directory = InstanceDirectory(aws.ecs, "prod", SystemClock(), 60.0)
    found = await directory.resolve(ids)
    return [found[i] for i in ids]


def _drainer(aws: AwsClients) -> Drainer:
    directory = InstanceDirectory(aws.ecs, "prod", SystemClock(), 60.0)
    return Drainer(
        aws.urgent_ecs, "prod", directory, Metrics(), SystemClock(), window=0.05, gate=aws.gate
    )


def _lifecycle(aws: AwsClients) -> AutoScalingLifecycle:
    return AutoScalingLifecycle(aws.urgent_autoscaling, gate=aws.gate)


@pytest.mark.slow
async def test_a_throttled_drain_is_attempted_at_most_max_attempts_times(
    local_aws: testbed.LocalAws,
) -> None:
    ids = [n.instance_id for n in testbed.create_cluster(local_aws, "prod", size=1)]
    proxy = _start(local_aws, [Fault("throttle", DRAIN)])
    target = AwsTarget(testbed.REGION, endpoint_url=proxy.endpoint, max_attempts=ATTEMPTS)
    try:
        async with AwsClients(target, Metrics()) as aws:
            [instance] = await _instances(aws, ids)
            with pytest.raises(ClientError, match="ThrottlingException"):
                await _drainer(aws).drain(instance, "spot_interruption")
    finally:
        proxy.stop()
    assert proxy.seen.count(DRAIN) == ATTEMPTS


@pytest.mark.slow
async def test_a_throttled_completion_is_attempted_at_most_max_attempts_times(
    local_aws: testbed.LocalAws,
) -> None:
    proxy = _start(local_aws, [Fault("throttle", "autoscaling:CompleteLifecycleAction")])
    target = AwsTarget(testbed.REGION, endpoint_url=proxy.endpoint, max_attempts=ATTEMPTS)
    try:
        async with AwsClients(target, Metrics()) as aws:
            with pytest.raises(ClientError, match="Throttling"):
                await _lifecycle(aws).complete(ACTION, "CONTINUE")
    finally:
        proxy.stop()
    assert proxy.seen.count("autoscaling:CompleteLifecycleAction") == ATTEMPTS


async def _read_forever(aws: AwsClients, arns: list[str], stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await aws.ecs.list_tasks(cluster="prod")
            await aws.ecs.describe_container_instances(cluster="prod", containerInstances=arns)
        except ClientError:
            pass  # throttled past its retries: a background reader just reads again


@pytest.mark.slow
async def test_drains_reach_aws_ahead_of_a_flood_of_throttled_reads(
    local_aws: testbed.LocalAws,
) -> None:
    """Once drains are asked for, only the reads already on the wire reach AWS before the last
    drain attempt: at most one per reader, however often the drains are throttled."""
    ids = [n.instance_id for n in testbed.create_cluster(local_aws, "prod", size=25)]
    faults = [
        Fault("throttle", DRAIN, limit=3),  # the drains are retried: they take a while
        Fault("throttle", "ecs:List*", rate=0.3),
        Fault("throttle", "ecs:Describe*", rate=0.3),
    ]
    proxy = FaultProxy(local_aws.endpoint, faults).start()
    target = AwsTarget(testbed.REGION, endpoint_url=proxy.endpoint)
    stop = asyncio.Event()
    try:
        async with AwsClients(target, Metrics()) as aws:
            instances = await _instances(aws, ids)
            drainer = _drainer(aws)
            arns = [i.arn for i in instances[:10]]
            proxy.arm()
            readers = [asyncio.create_task(_read_forever(aws, arns, stop)) for _ in range(READERS)]
            # the flood is on, and throttled: the background client's rate limiter is slowing it
            await wait_for(lambda: len(proxy.seen) > READERS and len(proxy.injected) > 0)
            drains = [asyncio.create_task(drainer.drain(i, "spot_interruption")) for i in instances]
            await asyncio.sleep(0)  # every drain has been asked for
            mark = len(proxy.seen)
            outcomes = await asyncio.gather(*drains)
            stop.set()
            await asyncio.gather(*readers)
    finally:
        proxy.stop()
    assert outcomes == ["ok"] * len(instances)
    log = proxy.seen[mark:]
    last_drain = max(i for i, name in enumerate(log) if name == DRAIN)
    reads_before = [name for name in log[:last_drain] if name != DRAIN]
    assert log.count(DRAIN) >= 3 + 3  # three batches and three throttled attempts
    assert len(reads_before) <= READERS, reads_before


async def test_lookups_before_a_drain_go_urgent_and_full_refreshes_background(
    local_aws: testbed.LocalAws,
) -> None:
    """The urgent client here reads another region, where the cluster has no instance: a full
    refresh finds the instance (the background client), a lookup does not (the urgent one)."""
    ids = [n.instance_id for n in testbed.create_cluster(local_aws, "prod", size=1)]
    here = AwsTarget(testbed.REGION, endpoint_url=local_aws.endpoint)
    elsewhere = AwsTarget("eu-west-3", endpoint_url=local_aws.endpoint)
    async with AwsClients(here, Metrics()) as aws, AwsClients(elsewhere, Metrics()) as other:
        directory = InstanceDirectory(
            aws.ecs, "prod", SystemClock(), 60.0, 0.0, urgent_ecs=other.urgent_ecs
        )
        assert [ci.ec2_instance_id for ci in await directory.refresh()] == ids
        directory.forget(ids[0])
        assert await directory.resolve(ids) == {}
        assert [ci.ec2_instance_id for ci in await directory.refresh()] == ids
