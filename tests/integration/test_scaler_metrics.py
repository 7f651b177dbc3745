"""A running scaler's own metrics against moto: the queues' depths, the info metric, and
interruptions by pool, availability zone and instance type."""

from __future__ import annotations

import json

from scaler import testbed
from scaler.demo import run_until
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
