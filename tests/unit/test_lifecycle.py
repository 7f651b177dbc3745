"""Lifecycle follow-through with fakes: heartbeats, completion once per token, timeouts."""

from __future__ import annotations

import asyncio

from scaler.aws.lifecycle import LifecycleFollower
from scaler.clock import ManualClock
from scaler.metrics import Metrics
from scaler.model import ContainerInstance
from scaler.plan.drain import LifecycleAction

ACTION = LifecycleAction("asg", "hook", "token-1", "i-1")
INSTANCE = ContainerInstance("arn:ci/1", "i-1", "DRAINING")


class FakePort:
    def __init__(self, active: bool = True) -> None:
        self.heartbeats: list[str] = []
        self.completions: list[tuple[str, str]] = []
        self.active = active

    async def heartbeat(self, action: LifecycleAction) -> None:
        self.heartbeats.append(action.token)

    async def complete(self, action: LifecycleAction, result: str) -> bool:
        self.completions.append((action.token, result))
        return self.active


class DrainingTasks:
    """Service tasks left on the instance, one fewer at each check until none remain."""

    def __init__(self, remaining: list[int]) -> None:
        self.remaining = remaining
        self.checks = 0

    async def service_tasks(self, instance: ContainerInstance) -> int:
        self.checks += 1
        return self.remaining.pop(0) if len(self.remaining) > 1 else self.remaining[0]


def follower(port: FakePort, tasks: DrainingTasks, *, timeout: float = 900) -> LifecycleFollower:
    clock = ManualClock()

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)
        await asyncio.sleep(0)

    return LifecycleFollower(
        port, tasks, Metrics(), clock, poll=10, heartbeat=60, timeout=timeout, sleep=sleep
    )


async def test_heartbeats_while_tasks_remain_then_continues() -> None:
    port, tasks = FakePort(), DrainingTasks([5] * 14 + [0])  # drained after 140 s
    assert await follower(port, tasks).follow(ACTION, INSTANCE) == "drained"
    assert port.heartbeats == ["token-1", "token-1"]  # at 60 s and 120 s
    assert port.completions == [("token-1", "CONTINUE")]


async def test_an_empty_instance_completes_at_once() -> None:
    port = FakePort()
    assert await follower(port, DrainingTasks([0])).follow(ACTION, INSTANCE) == "drained"
    assert port.heartbeats == []
    assert port.completions == [("token-1", "CONTINUE")]


async def test_timeout_completes_with_tasks_left() -> None:
    port = FakePort()
    result = await follower(port, DrainingTasks([3]), timeout=100).follow(ACTION, INSTANCE)
    assert result == "timeout"
    assert port.completions == [("token-1", "CONTINUE")]


async def test_an_action_that_already_ended_is_recorded_as_expired() -> None:
    port = FakePort(active=False)
    assert await follower(port, DrainingTasks([0])).follow(ACTION, INSTANCE) == "expired"


async def test_a_token_is_completed_once_however_often_it_is_followed() -> None:
    port, tasks = FakePort(), DrainingTasks([2, 1, 0])
    f = follower(port, tasks)
    together = await asyncio.gather(f.follow(ACTION, INSTANCE), f.follow(ACTION, INSTANCE))
    later = await f.follow(ACTION, INSTANCE)
    assert list(together) == ["drained", "drained"]
    assert later == "already"
    assert port.completions == [("token-1", "CONTINUE")]
