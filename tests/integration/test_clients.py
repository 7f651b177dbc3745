"""Every AWS call is counted by service, operation and outcome."""

from __future__ import annotations

import pytest

from scaler import testbed
from scaler.aws.clients import AwsClients, AwsTarget
from scaler.demo import aws_calls
from scaler.metrics import Metrics


async def test_calls_are_counted_with_their_outcome(local_aws: testbed.LocalAws) -> None:
    metrics = Metrics()
    target = AwsTarget(region=testbed.REGION, endpoint_url=local_aws.endpoint, max_attempts=1)
    async with AwsClients(target, metrics) as aws:
        await aws.ecs.list_clusters()
        with pytest.raises(Exception):  # noqa: B017 (any ClientError)
            await aws.sqs.get_queue_attributes(QueueUrl=f"{local_aws.endpoint}/1/none")
    assert aws_calls(metrics) == {"ecs:ListClusters": 1, "sqs:GetQueueAttributes": 1}
    text = metrics.render().decode()
    assert 'operation="ListClusters",outcome="ok",service="ecs"' in text
    assert (
        'operation="GetQueueAttributes",outcome="AWS.SimpleQueueService.NonExistentQueue"' in text
    )


async def test_network_errors_are_counted() -> None:
    metrics = Metrics()
    target = AwsTarget(
        region="us-east-1", endpoint_url="http://127.0.0.1:9", max_attempts=1, connect_timeout=1
    )
    async with AwsClients(target, metrics) as aws:
        with pytest.raises(Exception):  # noqa: B017
            await aws.ecs.list_clusters()
    assert 'operation="ListClusters",outcome="network_error"' in metrics.render().decode()


async def test_calls_are_timed_by_service_and_operation(local_aws: testbed.LocalAws) -> None:
    metrics = Metrics()
    target = AwsTarget(region=testbed.REGION, endpoint_url=local_aws.endpoint, max_attempts=1)
    async with AwsClients(target, metrics) as aws:
        await aws.ecs.list_clusters()
        await aws.ecs.list_clusters()
        with pytest.raises(Exception):  # noqa: B017 (any ClientError)
            await aws.sqs.get_queue_attributes(QueueUrl=f"{local_aws.endpoint}/1/none")
    labels = {"service": "ecs", "operation": "ListClusters"}
    count = metrics.registry.get_sample_value("scaler_aws_call_seconds_count", labels)
    total = metrics.registry.get_sample_value("scaler_aws_call_seconds_sum", labels)
    assert count == 2 and total is not None and total > 0
    failed = {"service": "sqs", "operation": "GetQueueAttributes"}
    assert metrics.registry.get_sample_value("scaler_aws_call_seconds_count", failed) == 1


async def test_calls_that_never_reach_aws_are_timed() -> None:
    metrics = Metrics()
    target = AwsTarget(
        region="us-east-1", endpoint_url="http://127.0.0.1:9", max_attempts=1, connect_timeout=1
    )
    async with AwsClients(target, metrics) as aws:
        with pytest.raises(Exception):  # noqa: B017
            await aws.ecs.list_clusters()
    labels = {"service": "ecs", "operation": "ListClusters"}
    assert metrics.registry.get_sample_value("scaler_aws_call_seconds_count", labels) == 1
