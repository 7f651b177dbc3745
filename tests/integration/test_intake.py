"""The SQS intake against moto over HTTP: acks, dead letters, dedup, retries, shutdown."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest

from scaler import testbed
from scaler.aws.clients import AwsClients, AwsTarget
from scaler.aws.intake import Intake, Outcome
from scaler.clock import SystemClock
from scaler.events import Signal
from scaler.metrics import Metrics
from tests.integration.helpers import outcomes, settings_for, wait_for


class RecordingHandler:
    """A handler that records signals, optionally sleeping or failing first."""

    def __init__(self, delay: float = 0.0, fail_first: int = 0) -> None:
        self.calls: list[Signal] = []
        self.delay = delay
        self.fail_first = fail_first

    async def __call__(self, signal: Signal, received_at: datetime) -> Outcome:
        self.calls.append(signal)
        if len(self.calls) <= self.fail_first:
            raise RuntimeError("injected failure")
        await asyncio.sleep(self.delay)
        return Outcome("handled")


@pytest.fixture
def queues(local_aws: testbed.LocalAws) -> testbed.Queues:
    return testbed.create_queues(local_aws, "events", max_receive=2, visibility=1)


@pytest.fixture
async def clients(local_aws: testbed.LocalAws) -> AsyncIterator[AwsClients]:
    metrics = Metrics()
    target = AwsTarget(region=testbed.REGION, endpoint_url=local_aws.endpoint, max_attempts=1)
    async with AwsClients(target, metrics) as aws:
        yield aws


def _intake(
    clients: AwsClients, queues: testbed.Queues, handler: RecordingHandler, **overrides: Any
) -> tuple[Intake, Metrics]:
    metrics = Metrics()
    settings = settings_for(queues.url, **overrides)
    intake = Intake(
        clients.sqs, queues.url, handler, settings, metrics, SystemClock(), queue_visibility=1
    )
    return intake, metrics


async def _run(intake: Intake, until: object, limit: float = 20.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(intake.run(stop))
    try:
        await wait_for(until, limit)  # type: ignore[arg-type]
    finally:
        stop.set()
        await task


async def test_duplicates_in_one_receive_are_handled_once(
    local_aws: testbed.LocalAws, queues: testbed.Queues, clients: AwsClients
) -> None:
    body = json.dumps(testbed.spot_warning("i-0123456789abcdef0"))
    testbed.send_raw(local_aws, queues.url, [body, body, body])
    handler = RecordingHandler(delay=0.2)
    intake, metrics = _intake(clients, queues, handler)
    await _run(intake, lambda: sum(outcomes(metrics).values()) >= 3)
    seen = outcomes(metrics)
    # a copy the queue hands out again (its 1 s visibility passed before its delete, as on a
    # loaded machine) is one more duplicate: never handled again
    assert seen["handled"] == 1 and seen["duplicate"] >= 2 and set(seen) == {"handled", "duplicate"}
    assert len(handler.calls) == 1
    assert testbed.queue_depth(local_aws, queues.url) == 0


async def test_malformed_messages_reach_the_dead_letter_queue_untouched(
    local_aws: testbed.LocalAws, queues: testbed.Queues, clients: AwsClients
) -> None:
    bodies = ['{"truncated": ', "[]", json.dumps({"id": "x", "source": "aws.ec2"})]
    testbed.send_raw(local_aws, queues.url, bodies)
    intake, metrics = _intake(clients, queues, RecordingHandler())
    await _run(intake, lambda: testbed.queue_depth(local_aws, queues.dlq_url) == 3)
    # counted once per receive: maxReceiveCount (2) receives each before the redrive
    assert outcomes(metrics) == {"malformed": 6}
    dead = local_aws.client("sqs").receive_message(QueueUrl=queues.dlq_url, MaxNumberOfMessages=10)
    assert sorted(m["Body"] for m in dead["Messages"]) == sorted(bodies)


async def test_a_failed_event_comes_back_and_is_handled(
    local_aws: testbed.LocalAws, queues: testbed.Queues, clients: AwsClients
) -> None:
    testbed.send_raw(local_aws, queues.url, [json.dumps(testbed.spot_warning("i-0aaa"))])
    handler = RecordingHandler(fail_first=1)
    intake, metrics = _intake(clients, queues, handler)
    await _run(intake, lambda: outcomes(metrics).get("handled") == 1)
    assert outcomes(metrics) == {"failed": 1, "handled": 1}
    assert testbed.queue_depth(local_aws, queues.url) == 0


async def test_a_slow_event_stays_hidden_while_it_is_handled(
    local_aws: testbed.LocalAws, queues: testbed.Queues, clients: AwsClients
) -> None:
    testbed.send_raw(local_aws, queues.url, [json.dumps(testbed.spot_warning("i-0bbb"))])
    handler = RecordingHandler(delay=3.0)  # three times the queue's visibility timeout
    intake, metrics = _intake(clients, queues, handler, visibility_timeout=5)
    stop = asyncio.Event()
    task = asyncio.create_task(intake.run(stop))
    await wait_for(lambda: len(handler.calls) == 1)
    await asyncio.sleep(2.0)
    sqs = local_aws.client("sqs")
    assert "Messages" not in sqs.receive_message(QueueUrl=queues.url, WaitTimeSeconds=0)
    await wait_for(lambda: outcomes(metrics).get("handled") == 1)
    stop.set()
    await task
    assert len(handler.calls) == 1
    assert metrics.visibility_extensions._value.get() >= 1


async def test_shutdown_releases_unfinished_messages_at_once(
    local_aws: testbed.LocalAws, queues: testbed.Queues, clients: AwsClients
) -> None:
    sqs = local_aws.client("sqs")
    sqs.set_queue_attributes(QueueUrl=queues.url, Attributes={"VisibilityTimeout": "600"})
    bodies = [json.dumps(testbed.spot_warning(f"i-0{n:04x}")) for n in range(5)]
    testbed.send_raw(local_aws, queues.url, bodies)
    handler = RecordingHandler(delay=60.0)  # never finishes within the grace period
    intake, metrics = _intake(clients, queues, handler, shutdown_grace=0.5)
    stop = asyncio.Event()
    task = asyncio.create_task(intake.run(stop))
    await wait_for(lambda: len(handler.calls) == 5)
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    assert outcomes(metrics) == {"released": 5}
    # visible again right away, not after the queue's 600 s visibility timeout
    back = sqs.receive_message(QueueUrl=queues.url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    assert sorted(m["Body"] for m in back["Messages"]) == sorted(bodies)


async def test_receives_no_more_than_its_free_slots(
    local_aws: testbed.LocalAws, queues: testbed.Queues, clients: AwsClients
) -> None:
    bodies = [json.dumps(testbed.spot_warning(f"i-0{n:04x}")) for n in range(6)]
    testbed.send_raw(local_aws, queues.url, bodies)
    handler = RecordingHandler(delay=0.5)
    intake, metrics = _intake(clients, queues, handler, concurrency=2)
    peak = 0

    def done() -> bool:
        nonlocal peak
        peak = max(peak, intake.inflight)
        return outcomes(metrics).get("handled") == 6

    await _run(intake, done)
    assert peak <= 2


async def test_the_wait_in_the_queue_is_observed_once_per_message(
    local_aws: testbed.LocalAws, queues: testbed.Queues, clients: AwsClients
) -> None:
    testbed.send_raw(local_aws, queues.url, ["not json", "not json either"])
    await asyncio.sleep(1.1)  # SentTimestamp has millisecond resolution: make the wait show
    intake, metrics = _intake(clients, queues, RecordingHandler())
    await _run(intake, lambda: testbed.queue_depth(local_aws, queues.dlq_url) == 2)
    # each message was received twice before its redrive: its wait is observed at the first
    assert metrics.registry.get_sample_value("scaler_queue_wait_seconds_count") == 2
    waited = metrics.registry.get_sample_value("scaler_queue_wait_seconds_sum")
    assert waited is not None and waited >= 2.0
    assert intake.oldest_sent is not None
