"""Follow an Auto Scaling terminate lifecycle action until the instance has drained.

The hook holds the instance in ``Terminating:Wait`` while the scaler drains it. The follower
checks the instance's remaining *service* tasks every ``SCALER_DRAIN_POLL`` seconds, records a
heartbeat every ``SCALER_LIFECYCLE_HEARTBEAT`` seconds so the hook does not time out meanwhile,
and completes the action with ``CONTINUE`` once no service task remains or
``SCALER_DRAIN_TIMEOUT`` has passed (standalone tasks do not hold it: ECS never moves them).

One token is completed at most once per process: a second event for a token being followed waits
for the first, and a token already completed is not completed again. If Auto Scaling answers that
no such action is active, the hook has already ended (timed out, or completed by someone else):
that is recorded as ``expired``, not an error. Completing is the only call that changes anything,
so a follower restarted after a crash (the message is redelivered) simply carries on.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from scaler.aws.clients import error_code
from scaler.aws.retry import Backoff
from scaler.clock import Clock
from scaler.metrics import Metrics
from scaler.model import ContainerInstance
from scaler.plan.drain import LifecycleAction

log = logging.getLogger(__name__)

REMEMBERED_TOKENS = 10_000


class LifecyclePort(Protocol):
    async def heartbeat(self, action: LifecycleAction) -> None: ...

    async def complete(self, action: LifecycleAction, result: str) -> bool:
        """True if completed now; False if Auto Scaling had no such action active any more."""
        ...


class TaskCounter(Protocol):
    async def service_tasks(self, instance: ContainerInstance) -> int: ...


def _no_active_action(exc: BaseException) -> bool:
    return error_code(exc) == "ValidationError" and "no active lifecycle action" in str(exc).lower()


class AutoScalingLifecycle:
    """The Auto Scaling side: heartbeats and completion, over aiobotocore."""

    def __init__(self, autoscaling: Any, backoff: Backoff, *, dry_run: bool = False) -> None:
        self._autoscaling = autoscaling
        self._backoff = backoff
        self._dry_run = dry_run

    @staticmethod
    def _ids(action: LifecycleAction) -> dict[str, str]:
        return {
            "LifecycleHookName": action.hook,
            "AutoScalingGroupName": action.group,
            "LifecycleActionToken": action.token,
            "InstanceId": action.instance_id,
        }

    async def heartbeat(self, action: LifecycleAction) -> None:
        if self._dry_run:
            return
        await self._backoff.call(
            "RecordLifecycleActionHeartbeat",
            lambda: self._autoscaling.record_lifecycle_action_heartbeat(**self._ids(action)),
        )

    async def complete(self, action: LifecycleAction, result: str) -> bool:
        if self._dry_run:
            log.info("dry run: would complete lifecycle action", extra={"token": action.token})
            return True
        try:
            await self._backoff.call(
                "CompleteLifecycleAction",
                lambda: self._autoscaling.complete_lifecycle_action(
                    **self._ids(action), LifecycleActionResult=result
                ),
            )
        except Exception as exc:
            if _no_active_action(exc):
                return False
            raise
        return True


class LifecycleFollower:
    def __init__(
        self,
        port: LifecyclePort,
        tasks: TaskCounter,
        metrics: Metrics,
        clock: Clock,
        *,
        poll: float,
        heartbeat: float,
        timeout: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._port = port
        self._tasks = tasks
        self._metrics = metrics
        self._clock = clock
        self._poll = poll
        self._heartbeat = heartbeat
        self._timeout = timeout
        self._sleep = sleep
        self._following: dict[str, asyncio.Task[str]] = {}
        self._completed: OrderedDict[str, str] = OrderedDict()  # token -> result, bounded

    async def follow(self, action: LifecycleAction, instance: ContainerInstance) -> str:
        """Follow ``action`` to completion; returns drained, timeout, expired or already."""
        if action.token in self._completed:
            return "already"
        task = self._following.get(action.token)
        if task is None:
            task = asyncio.create_task(self._follow(action, instance))
            self._following[action.token] = task
            task.add_done_callback(lambda _: self._following.pop(action.token, None))
        return await asyncio.shield(task)

    async def _follow(self, action: LifecycleAction, instance: ContainerInstance) -> str:
        context = {"instance_id": action.instance_id, "token": action.token, "group": action.group}
        log.info("following lifecycle action", extra=context)
        why = await self._wait_for_drain(action, instance)
        completed = await self._port.complete(action, "CONTINUE")
        result = why if completed else "expired"
        self._remember(action.token, result)
        self._metrics.lifecycle_actions.labels(result).inc()
        log.info("lifecycle action completed", extra={**context, "result": result})
        return result

    async def _wait_for_drain(self, action: LifecycleAction, instance: ContainerInstance) -> str:
        started = last_beat = self._clock.monotonic()
        while True:
            remaining = await self._tasks.service_tasks(instance)
            now = self._clock.monotonic()
            if remaining == 0:
                return "drained"
            if now - started >= self._timeout:
                log.warning(
                    "drain timeout: completing with service tasks left",
                    extra={"instance_id": action.instance_id, "tasks": remaining},
                )
                return "timeout"
            if now - last_beat >= self._heartbeat:
                await self._port.heartbeat(action)
                self._metrics.lifecycle_heartbeats.inc()
                last_beat = now
            await self._sleep(self._poll)

    async def close(self) -> None:
        """Stop following (at shutdown): the messages are released and will be followed again."""
        tasks = list(self._following.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _remember(self, token: str, result: str) -> None:
        self._completed[token] = result
        while len(self._completed) > REMEMBERED_TOKENS:
            self._completed.popitem(last=False)
