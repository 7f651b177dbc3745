"""The surge at a spot warning against moto over HTTP: the service with tasks on the warned
instance is marked and raised, the instance is let go at its deadline, and once it drained the
count is set back and the mark removed."""

from __future__ import annotations

import asyncio

from scaler import testbed
from scaler.aws.clients import AwsClients, AwsTarget
from scaler.aws.drainer import Drainer
from scaler.aws.ecs import InstanceDirectory
from scaler.aws.surges import ROLL_TAG, RollSurges
from scaler.aws.warning_surge import WarningSurge
from scaler.clock import ManualClock
from scaler.metrics import Metrics
from tests.integration.helpers import service_state, web_service

POLL = 0.05


def _service(aws: testbed.LocalAws, on: str) -> str:
    """``web``, with two of its tasks on the container instance ``on``."""
    arn = web_service(aws, max_percent=200)
    for _ in range(2):
        aws.client("ecs").start_task(
            cluster="prod", taskDefinition="web", group="service:web", containerInstances=[on]
        )
    return arn


async def _until(aws: testbed.LocalAws, arn: str, state: tuple[int, dict[str, str]]) -> None:
    for _ in range(200):
        if service_state(aws, arn) == state:
            return
        await asyncio.sleep(POLL)
    assert service_state(aws, arn) == state


async def test_a_warned_instance_waits_for_its_surge_and_the_count_is_set_back(
    local_aws: testbed.LocalAws,
) -> None:
    testbed.manual_task_states(local_aws)
    nodes = testbed.create_cluster(local_aws, "prod", size=2)
    warned = nodes[0]
    arn = _service(local_aws, str(warned.container_instance_arn))
    clock = ManualClock()
    target = AwsTarget(region=testbed.REGION, endpoint_url=local_aws.endpoint, max_attempts=1)
    async with AwsClients(target, Metrics()) as aws:
        directory = InstanceDirectory(aws.ecs, "prod", clock, ttl=60.0)
        port = RollSurges(aws, "prod", Metrics(), dry_run=False)
        metrics = Metrics()
        surge = WarningSurge(
            port, aws.ecs, "prod", directory, clock, stop_time=30.0, poll=POLL, metrics=metrics
        )
        ci = (await directory.resolve([warned.instance_id]))[warned.instance_id]
        warned_at = clock.now().timestamp()
        hold = asyncio.create_task(surge.hold(ci, warned_at))
        mark = f"4 2 {warned.instance_id}:2 {warned_at:.0f}"
        await _until(local_aws, arn, (6, {ROLL_TAG: mark}))  # marked, then raised
        await asyncio.sleep(5 * POLL)
        assert not hold.done()  # not known healthy: it waits for its deadline
        clock.advance(90.0)
        assert await asyncio.wait_for(hold, 5.0)  # it waited for a surge
        held = metrics.registry.get_sample_value(
            "scaler_surge_hold_seconds_count", {"outcome": "deadline"}
        )
        assert held == 1.0  # counted as a hold that ended at its deadline
        drainer = Drainer(aws.ecs, "prod", directory, Metrics(), clock, window=0.0)
        assert await drainer.drain(ci, "spot_interruption") == "ok"
        await _until(local_aws, arn, (4, {}))  # drained: set back, unmarked
        await drainer.close()
