"""A running scaler's own metrics against moto: the queues' depths, the info metric, and
interruptions by pool, availability zone and instance type."""

from __future__ import annotations

import json

from scaler import testbed
from scaler.aws.clients import AwsClients, AwsTarget
from scaler.aws.queue_depth import DEAD_LETTER_EVERY, QueueDepth
from scaler.clock import ManualClock
from scaler.demo import aws_calls, run_until
from scaler.metrics import Metrics
from tests.integration.helpers import outcomes, scaler_for, settings_for


def _value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def _describe_as_ecs_does(aws: testbed.LocalAws, node: testbed.Node, az: str, kind: str) -> None:
    """The attributes the ECS agent registers each container instance with."""
    assert node.container_instance_arn is not None
    target = node.container_instance_arn.rsplit("/", 1)[-1]
    aws.client("ecs").put_attributes(
        cluster="prod",
        attributes=[
            {"name": name, "value": value, "targetType": "container-instance", "targetId": target}
            for name, value in (("ecs.availability-zone", az), ("ecs.instance-type", kind))
        ],
    )


async def test_queue_and_dead_letter_depths_and_the_info_metric(
    local_aws: testbed.LocalAws,
) -> None:
    testbed.create_cluster(local_aws, "prod", size=1)
    queues = testbed.create_queues(local_aws, "events", max_receive=2, visibility=1)
    testbed.send_raw(local_aws, queues.dlq_url, ["dead", "dead", "dead"])
    scaler = scaler_for(local_aws, settings_for(queues.url, dry_run=True))
    metrics = scaler.metrics

    def read() -> bool:
        return _value(metrics, "scaler_queue_messages", queue="dead_letter", state="visible") == 3

    assert await run_until(scaler, read, limit=15)
    assert _value(metrics, "scaler_queue_messages", queue="events", state="visible") == 0
    assert _value(metrics, "scaler_queue_oldest_message_age_seconds") == 0
    info = {"cluster": "prod", "queue": "events", "dry_run": "true"}
    (sample,) = [
        s for f in metrics.registry.collect() if f.name == "scaler_info" for s in f.samples
    ]
    assert info.items() <= sample.labels.items() and sample.value == 1


async def test_interruptions_are_counted_by_availability_zone_and_instance_type(
    local_aws: testbed.LocalAws,
) -> None:
    nodes = testbed.create_cluster(local_aws, "prod", size=2, az="us-east-1b")
    _describe_as_ecs_does(local_aws, nodes[0], "us-east-1b", "m6i.large")
    queues = testbed.create_queues(local_aws, "events", max_receive=2, visibility=1)
    bodies = [json.dumps(testbed.spot_warning(nodes[0].instance_id))]
    testbed.send_raw(local_aws, queues.url, bodies)
    scaler = scaler_for(local_aws, settings_for(queues.url))

    assert await run_until(scaler, lambda: outcomes(scaler.metrics) == {"handled": 1}, limit=15)
    labels = {"pool": "unknown", "availability_zone": "us-east-1b", "instance_type": "m6i.large"}
    assert _value(scaler.metrics, "scaler_interruptions_total", **labels) == 1
    total = sum(
        s.value
        for f in scaler.metrics.registry.collect()
        if f.name == "scaler_interruptions"
        for s in f.samples
        if s.name.endswith("_total")
    )
    assert total == 1


async def test_a_dead_letter_queue_it_cannot_read_does_not_fail_the_readiness_check(
    local_aws: testbed.LocalAws,
) -> None:
    """The check sets the gauges only once both reads are done and the main queue's answered:
    the events queue's depth shows that the dead-letter queue's error did not fail it."""
    testbed.create_cluster(local_aws, "prod", size=1)
    queues = testbed.create_queues(local_aws, "events", max_receive=2, visibility=1)
    local_aws.client("sqs").delete_queue(QueueUrl=queues.dlq_url)
    scaler = scaler_for(local_aws, settings_for(queues.url))

    def read() -> bool:
        return _value(scaler.metrics, "scaler_queue_messages", queue="events", state="visible") == 0

    assert await run_until(scaler, read, limit=15)
    labels = {"queue": "dead_letter", "state": "visible"}
    assert _value(scaler.metrics, "scaler_queue_messages", **labels) is None


async def test_the_dead_letter_queue_is_read_once_a_minute_at_most(
    local_aws: testbed.LocalAws,
) -> None:
    """Every readiness check reads the events queue; the dead-letter queue, where a message
    lands rarely, at the first check and then once ``DEAD_LETTER_EVERY`` has passed."""
    queues = testbed.create_queues(local_aws, "events", max_receive=2, visibility=1)
    testbed.send_raw(local_aws, queues.dlq_url, ["dead"])
    metrics, clock = Metrics(), ManualClock()
    target = AwsTarget(region=testbed.REGION, endpoint_url=local_aws.endpoint, max_attempts=1)
    async with AwsClients(target, metrics) as clients:
        depth = QueueDepth(clients.sqs, queues.url, metrics, clock, lambda: None)
        depth.dead_letter_url = queues.dlq_url
        reads = []
        for _ in range(6):  # every 15 s, as the readiness check
            await depth.read()
            reads.append(aws_calls(metrics)["sqs:GetQueueAttributes"])
            clock.advance(DEAD_LETTER_EVERY / 4)
            testbed.send_raw(local_aws, queues.dlq_url, ["dead"])
    assert reads == [2, 3, 4, 5, 7, 8]
    # the gauge shows what the last read (the fifth check, at 60 s) found, not a zero between
    assert _value(metrics, "scaler_queue_messages", queue="dead_letter", state="visible") == 5
