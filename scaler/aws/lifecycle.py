"""Follow an Auto Scaling terminate lifecycle action until the instance has drained.

The hook holds the instance in ``Terminating:Wait`` while the scaler drains it. The follower
checks the instance's remaining *service* tasks every ``SCALER_DRAIN_POLL`` seconds, records a
heartbeat every ``SCALER_LIFECYCLE_HEARTBEAT`` seconds so the hook does not time out meanwhile,
and completes the action with ``CONTINUE`` once no service task remains or
``SCALER_DRAIN_TIMEOUT`` has passed (standalone tasks do not hold it: ECS never moves them).

A hook for an instance the cluster does not know (its agent never registered it, or it was
deregistered already) would hold the instance in ``Terminating:Wait`` for the hook's whole
heartbeat timeout (an hour by default). When its group is the cluster's (:class:`ClusterGroups`)
the action is completed with ``CONTINUE`` at once (result ``unregistered``): there is nothing
to drain. A hook of another cluster's group is left to that cluster's scaler.

In dry-run nothing is completed: the follower says so once per action, with the group, hook and
instance (Auto Scaling waits out the hook's heartbeat timeout), and does not poll the drain.

One token is completed at most once per process: a second event for a token being followed waits
for the first, and a token already completed is not completed again. If Auto Scaling answers that
no such action is active, the hook has already ended (timed out, or completed by someone else):
that is recorded as ``expired``, not an error. Completing is the only call that changes anything,
so a follower restarted after a crash (the message is redelivered) simply carries on.

Heartbeats and completions are urgent: :class:`AutoScalingLifecycle` is given the urgent Auto
Scaling client (botocore's retries are the one retry layer: see :mod:`scaler.aws.clients`) and
holds the :class:`PriorityGate` during each call, so background ECS reads wait meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Protocol

from scaler.aws.clients import error_code
from scaler.aws.concurrency import PriorityGate
from scaler.aws.retry import is_throttling
from scaler.clock import Clock
from scaler.metrics import Metrics
from scaler.model import ContainerInstance
from scaler.plan.drain import LifecycleAction

log = logging.getLogger(__name__)

REMEMBERED_TOKENS = 10_000
CLUSTER_TAG = "scaler:cluster"  # an Auto Scaling group's tag naming the cluster it serves
GROUP_TTL = 300.0  # seconds a group's verdict (the cluster's or not) is kept


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

    def __init__(
        self, autoscaling: Any, *, gate: PriorityGate | None = None, dry_run: bool = False
    ) -> None:
        self._autoscaling = autoscaling
        self._gate = gate or PriorityGate()
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
        async with self._gate.urgent():
            await self._autoscaling.record_lifecycle_action_heartbeat(**self._ids(action))

    async def complete(self, action: LifecycleAction, result: str) -> bool:
        if self._dry_run:
            log.info("dry run: would complete lifecycle action", extra={"token": action.token})
            return True
        try:
            async with self._gate.urgent():
                await self._autoscaling.complete_lifecycle_action(
                    **self._ids(action), LifecycleActionResult=result
                )
        except Exception as exc:
            if _no_active_action(exc):
                return False
            raise
        return True


class ClusterGroups:
    """Whether an Auto Scaling group serves this cluster: one of its pools, or tagged
    ``scaler:cluster`` with its name (the task role may complete the hooks of those alone)."""

    def __init__(
        self,
        autoscaling: Any,
        cluster: str,
        pools: Collection[str],
        clock: Clock,
    ) -> None:
        self._autoscaling = autoscaling
        self._cluster = cluster
        self._pools = frozenset(pools)
        self._clock = clock
        self._known: dict[str, tuple[bool, float]] = {}  # group -> (serves it, when judged)

    async def serves(self, group: str) -> bool:
        if group in self._pools:
            return True
        now = self._clock.monotonic()
        known = self._known.get(group)
        if known is not None and now - known[1] < GROUP_TTL:
            return known[0]
        try:
            reply = await self._autoscaling.describe_auto_scaling_groups(
                AutoScalingGroupNames=[group]
            )
        except Exception as exc:
            if is_throttling(exc):
                raise  # the message comes back and is asked about again
            log.warning(
                "Auto Scaling group not described: its hook is left alone",
                extra={"group": group, "error": repr(exc)},
            )
            return False
        found = reply.get("AutoScalingGroups", [])
        serves = bool(found) and self._judge(found[0])
        if len(self._known) > REMEMBERED_TOKENS:
            self._known.clear()
        self._known[group] = (serves, now)
        return serves

    def _judge(self, group: dict[str, Any]) -> bool:
        tags = {t.get("Key"): t.get("Value") for t in group.get("Tags", [])}
        return bool(tags.get(CLUSTER_TAG) == self._cluster)


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
        dry_run: bool = False,
    ) -> None:
        self._port = port
        self._tasks = tasks
        self._metrics = metrics
        self._clock = clock
        self._poll = poll
        self._heartbeat = heartbeat
        self._timeout = timeout
        self._sleep = sleep
        self._dry_run = dry_run
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

    async def complete_unregistered(self, action: LifecycleAction) -> str:
        """Complete at once the action of an instance the cluster does not know (nothing to
        drain); returns unregistered, expired, already or dry_run."""
        if action.token in self._completed:
            return "already"
        if self._dry_run:
            return self._not_completed(action)
        return await self._complete(action, "unregistered")

    async def _follow(self, action: LifecycleAction, instance: ContainerInstance) -> str:
        if self._dry_run:
            return self._not_completed(action)
        log.info("following lifecycle action", extra=_context(action))
        why = await self._wait_for_drain(action, instance)
        return await self._complete(action, why)

    async def _complete(self, action: LifecycleAction, why: str) -> str:
        completed = await self._port.complete(action, "CONTINUE")
        result = why if completed else "expired"
        self._remember(action.token, result)
        self._metrics.lifecycle_actions.labels(result).inc()
        log.info("lifecycle action completed", extra={**_context(action), "result": result})
        return result

    def _not_completed(self, action: LifecycleAction) -> str:
        log.warning(
            "dry run: lifecycle action not completed; Auto Scaling holds the instance until "
            "the hook's heartbeat timeout",
            extra={**_context(action), "hook": action.hook},
        )
        self._remember(action.token, "dry_run")
        return "dry_run"

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


def _context(action: LifecycleAction) -> dict[str, str]:
    return {"instance_id": action.instance_id, "token": action.token, "group": action.group}
