"""Draining against moto over HTTP: bursts, throttling, every policy branch, dry-run."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from scaler import testbed
from scaler.aws.clients import AwsTarget
from scaler.demo import aws_calls, make_burst, run_until
from scaler.loop import Scaler
from scaler.model import ContainerInstance
from scaler.plan.drain import LifecycleAction
from tests.e2e.fault_proxy import Fault, FaultProxy
from tests.integration.helpers import outcomes, scaler_for, settings_for


def _cluster(aws: testbed.LocalAws, size: int) -> tuple[list[str], testbed.Queues]:
    nodes = testbed.create_cluster(aws, "prod", size=size)
    queues = testbed.create_queues(aws, "events", max_receive=2, visibility=1)
    return [n.instance_id for n in nodes], queues


def _states(aws: testbed.LocalAws) -> dict[str, str]:
    return testbed.container_instance_states(aws, "prod")


def _settled(scaler: Scaler, expected: dict[str, int]) -> Any:
    return lambda: outcomes(scaler.metrics) == expected


async def test_a_burst_drains_exactly_the_members_in_few_calls(local_aws: testbed.LocalAws) -> None:
    members, queues = _cluster(local_aws, 80)
    n = 60
    strangers = testbed.launch_instances(local_aws, 15, az="us-east-1c")
    burst = make_burst(members[:n], strangers, duplicates=0, malformed=5, max_receive=2)
    copies = [json.dumps(e) for e in burst.published[:10]]  # redelivered copies
    testbed.send_raw(local_aws, queues.url, [json.dumps(e) for e in burst.published] + copies)
    testbed.send_raw(local_aws, queues.url, burst.raw)
    burst.expect("duplicate", 10)
    scaler = scaler_for(local_aws, settings_for(queues.url, concurrency=40))

    settled = _settled(scaler, burst.expected)

    def done() -> bool:
        return settled() and testbed.queue_depth(local_aws, queues.dlq_url) == 5

    assert await run_until(scaler, done, limit=40)

    states = _states(local_aws)
    assert {i for i, s in states.items() if s == "DRAINING"} == set(members[:n])
    updates = aws_calls(scaler.metrics)["ecs:UpdateContainerInstancesState"]
    assert updates <= math.ceil(n / 10) + 3, updates
    latency = scaler.metrics.drain_latency.labels("spot_interruption")
    assert latency._sum.get() > 0  # every drain observed from its event's time


async def test_throttled_drain_calls_are_retried(local_aws: testbed.LocalAws) -> None:
    members, queues = _cluster(local_aws, 12)
    testbed.send_raw(local_aws, queues.url, [json.dumps(testbed.spot_warning(i)) for i in members])
    drains = "ecs:UpdateContainerInstancesState"
    proxy = FaultProxy(local_aws.endpoint, [Fault("throttle", drains, limit=3)]).start()
    proxy.arm()
    target = AwsTarget(testbed.REGION, endpoint_url=proxy.endpoint, max_attempts=5)
    scaler = Scaler(settings_for(queues.url), target)
    try:
        assert await run_until(scaler, _settled(scaler, {"handled": 12}), limit=30)
    finally:
        proxy.stop()
    assert set(_states(local_aws).values()) == {"DRAINING"}
    assert proxy.injected == {f"throttle {drains}": 3}
    text = scaler.metrics.render().decode()
    assert 'scaler_throttle_retries_total{operation="UpdateContainerInstancesState"} 3.0' in text
    # botocore's retries are inside each call: the throttled attempts are not calls of their own
    assert aws_calls(scaler.metrics)[drains] <= 3


async def test_a_terminated_instance_is_deregistered(local_aws: testbed.LocalAws) -> None:
    members, queues = _cluster(local_aws, 3)
    events = [
        testbed.state_change(members[0], "terminated"),
        testbed.state_change(members[1], "shutting-down"),
        testbed.state_change(members[2], "running"),
    ]
    testbed.send_raw(local_aws, queues.url, [json.dumps(e) for e in events])
    scaler = scaler_for(local_aws, settings_for(queues.url))
    assert await run_until(scaler, _settled(scaler, {"handled": 3}), limit=20)
    assert _states(local_aws) == {members[1]: "DRAINING", members[2]: "ACTIVE"}


async def test_scheduled_changes_drain_ahead_of_their_start(local_aws: testbed.LocalAws) -> None:
    members, queues = _cluster(local_aws, 2)
    now = datetime.now(UTC)
    soon = testbed.scheduled_change(members[0], start=now + timedelta(minutes=10))
    later = testbed.scheduled_change(members[1], start=now + timedelta(days=2))
    testbed.send_raw(local_aws, queues.url, [json.dumps(soon), json.dumps(later)])
    scaler = scaler_for(local_aws, settings_for(queues.url))
    assert await run_until(scaler, _settled(scaler, {"handled": 1, "deferred": 1}), limit=20)
    assert _states(local_aws) == {members[0]: "DRAINING", members[1]: "ACTIVE"}
    # the far event stays on the queue: re-queued as a fresh, delayed copy (a message can be
    # hidden for 12 hours at most, and every receive counts toward the dead-letter queue)
    assert testbed.queue_depth(local_aws, queues.url) == 1
    attrs = local_aws.client("sqs").get_queue_attributes(
        QueueUrl=queues.url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )
    assert attrs["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"


class SlowReplacement:
    def __init__(self, ready_after: float | None) -> None:
        self.ready_after = ready_after
        self.asked: list[str] = []

    async def replace(self, instance: ContainerInstance, reason: str) -> bool:
        self.asked.append(instance.ec2_instance_id)
        if self.ready_after is None:
            await asyncio.Event().wait()  # never ready
        await asyncio.sleep(self.ready_after or 0)
        return True


async def _rebalance(
    aws: testbed.LocalAws, policy: str, source: SlowReplacement | None, **overrides: Any
) -> tuple[list[str], Scaler]:
    members, queues = _cluster(aws, 2)
    testbed.send_raw(aws, queues.url, [json.dumps(testbed.rebalance_recommendation(members[0]))])
    settings = settings_for(queues.url, rebalance_policy=policy, **overrides)
    scaler = Scaler(settings, scaler_for(aws, settings).target, replacements=source)
    assert await run_until(scaler, _settled(scaler, {"handled": 1}), limit=20), outcomes(
        scaler.metrics
    )
    return members, scaler


async def test_rebalance_ignore_leaves_the_instance(local_aws: testbed.LocalAws) -> None:
    members, _ = await _rebalance(local_aws, "ignore", None)
    assert _states(local_aws)[members[0]] == "ACTIVE"


async def test_rebalance_drain_drains(local_aws: testbed.LocalAws) -> None:
    members, _ = await _rebalance(local_aws, "drain", None)
    assert _states(local_aws)[members[0]] == "DRAINING"


async def test_replace_then_drain_waits_for_the_replacement(local_aws: testbed.LocalAws) -> None:
    source = SlowReplacement(ready_after=1.0)
    members, scaler = await _rebalance(local_aws, "replace-then-drain", source)
    assert source.asked == [members[0]]
    assert _states(local_aws)[members[0]] == "DRAINING"
    seconds = scaler.metrics.event_seconds.labels("rebalance_recommendation")._sum.get()
    assert seconds >= 1.0  # the message was held until the replacement was ready


async def test_replace_then_drain_drains_anyway_after_the_timeout(
    local_aws: testbed.LocalAws,
) -> None:
    source = SlowReplacement(ready_after=None)
    members, _ = await _rebalance(local_aws, "replace-then-drain", source, replacement_timeout=0.5)
    assert _states(local_aws)[members[0]] == "DRAINING"


class RecordingLifecycle:
    def __init__(self) -> None:
        self.completed: list[tuple[str, str]] = []

    async def heartbeat(self, action: LifecycleAction) -> None:
        pass

    async def complete(self, action: LifecycleAction, result: str) -> bool:
        self.completed.append((action.token, result))
        return True


async def test_lifecycle_action_drains_and_completes_once(local_aws: testbed.LocalAws) -> None:
    members, queues = _cluster(local_aws, 2)
    event = testbed.lifecycle_terminate(members[0], "prod-asg", token="tok-1")
    again = {**testbed.lifecycle_terminate(members[0], "prod-asg", token="tok-1")}  # new id
    testbed.send_raw(local_aws, queues.url, [json.dumps(event), json.dumps(again)])
    port = RecordingLifecycle()
    settings = settings_for(queues.url, drain_poll=0.2)
    scaler = Scaler(settings, scaler_for(local_aws, settings).target, lifecycle=port)
    assert await run_until(scaler, _settled(scaler, {"handled": 2}), limit=20)
    assert _states(local_aws)[members[0]] == "DRAINING"
    assert port.completed == [("tok-1", "CONTINUE")]
    text = scaler.metrics.render().decode()
    assert 'scaler_lifecycle_actions_total{result="drained"} 1.0' in text


async def test_dry_run_changes_nothing_and_says_what_it_would_do(
    local_aws: testbed.LocalAws,
) -> None:
    members, queues = _cluster(local_aws, 3)
    testbed.send_raw(local_aws, queues.url, [json.dumps(testbed.spot_warning(i)) for i in members])
    scaler = scaler_for(local_aws, settings_for(queues.url, dry_run=True))
    assert await run_until(scaler, _settled(scaler, {"handled": 3}), limit=20)
    assert set(_states(local_aws).values()) == {"ACTIVE"}
    assert "ecs:UpdateContainerInstancesState" not in aws_calls(scaler.metrics)
    text = scaler.metrics.render().decode()
    expected = 'action="drain",outcome="dry_run",reason="spot_interruption"} 3.0'
    assert expected in text


async def test_an_event_hours_ahead_is_hidden_until_due(local_aws: testbed.LocalAws) -> None:
    members, queues = _cluster(local_aws, 1)
    event = testbed.scheduled_change(members[0], start=datetime.now(UTC) + timedelta(hours=3))
    testbed.send_raw(local_aws, queues.url, [json.dumps(event)])
    scaler = scaler_for(local_aws, settings_for(queues.url))
    assert await run_until(scaler, _settled(scaler, {"deferred": 1}), limit=20)
    attrs = local_aws.client("sqs").get_queue_attributes(
        QueueUrl=queues.url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )
    assert attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "1"


class GatedLifecycle(RecordingLifecycle):
    """Completes only once the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def complete(self, action: LifecycleAction, result: str) -> bool:
        await self.gate.wait()
        return await super().complete(action, result)


async def test_a_copy_of_an_event_being_followed_holds_no_handler_slot(
    local_aws: testbed.LocalAws,
) -> None:
    members, queues = _cluster(local_aws, 2)
    event = json.dumps(testbed.lifecycle_terminate(members[0], "prod-asg", token="tok-9"))
    warning = json.dumps(testbed.spot_warning(members[1]))
    testbed.send_raw(local_aws, queues.url, [event])
    port = GatedLifecycle()
    settings = settings_for(queues.url, concurrency=1, drain_poll=0.2)
    scaler = Scaler(settings, scaler_for(local_aws, settings).target, lifecycle=port)
    stop = asyncio.Event()
    runner = asyncio.create_task(scaler.run(stop))
    await scaler.started.wait()
    await asyncio.sleep(1.0)  # the lifecycle action is being followed (held, waiting on the gate)
    testbed.send_raw(local_aws, queues.url, [event, warning])  # a copy, then other work
    for _ in range(100):
        if _states(local_aws)[members[1]] == "DRAINING":
            break
        await asyncio.sleep(0.1)
    assert _states(local_aws)[members[1]] == "DRAINING", "the copy must not block the only slot"
    port.gate.set()
    for _ in range(100):
        if outcomes(scaler.metrics) == {"handled": 2, "duplicate": 1}:
            break
        await asyncio.sleep(0.1)
    stop.set()
    await runner
    assert outcomes(scaler.metrics) == {"handled": 2, "duplicate": 1}
    assert port.completed == [("tok-9", "CONTINUE")]
