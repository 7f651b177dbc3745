"""Terminate lifecycle hooks, mixed into :class:`~.autoscaling.AutoScaling`.

A leaving member of a group with a terminate hook waits in ``Terminating:Wait`` until
``CompleteLifecycleAction`` (``CONTINUE`` or ``ABANDON``: a terminating instance goes either
way), named by its token or its instance id, or until its heartbeat timeout passes;
``RecordLifecycleActionHeartbeat`` restarts that timeout, never past the global timeout (100
heartbeat timeouts, at most 48 hours). An action that is no longer held is
``ValidationError`` "No active Lifecycle Action found with ...", as AWS says it. Each hold is
announced as EventBridge's "EC2 Instance-terminate Lifecycle Action" event, to every callback
of :attr:`LifecycleHooks.on_lifecycle_event` (and again whenever :meth:`LifecycleHooks.announce`
is asked to).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from scaler.sim.cloud.asg import ACCOUNT, Action, Group, Hook, Member
from scaler.sim.cloud.transport import AwsError, Operations
from scaler.sim.cloud.world import SHUTDOWN_DELAY, World

GLOBAL_TIMEOUT = 48 * 3600.0

Event = dict[str, Any]


class LifecycleHooks(Operations):
    """The lifecycle actions held, over the world of the Auto Scaling they are mixed into."""

    world: World
    region: str

    def __init__(self) -> None:
        self.actions: dict[str, Action] = {}  # token -> the lifecycle action it names
        self.on_lifecycle_event: list[Callable[[Event], None]] = []

    def _hold(self, group: Group, member: Member, hook: Hook) -> None:
        member.state = "Terminating:Wait"
        token = str(uuid.UUID(int=self.world.rng.getrandbits(128), version=4))
        deadline = self.world.now() + min(GLOBAL_TIMEOUT, 100 * hook.heartbeat_timeout)
        action = Action(token, group, hook, member, deadline)
        self.actions[token] = action
        self._arm(action)
        for listener in list(self.on_lifecycle_event):
            listener(self._event(action))

    def announce(self, instance_id: str) -> Event:
        """Emit again the event of the action holding ``instance_id`` (EventBridge delivers at
        least once); the event."""
        action = next(a for a in self.actions.values() if a.member.instance.id == instance_id)
        event = self._event(action)
        for listener in list(self.on_lifecycle_event):
            listener(event)
        return event

    def _proceed(self, group: Group, member: Member) -> None:
        member.state = "Terminating:Proceed"
        self.world.terminate(member.instance)
        asyncio.get_running_loop().call_later(
            SHUTDOWN_DELAY, lambda: group.members.pop(member.instance.id, None)
        )

    def _arm(self, action: Action) -> None:
        if action.timer is not None:
            action.timer.cancel()
        delay = min(action.hook.heartbeat_timeout, action.deadline - self.world.now())
        action.timer = asyncio.get_running_loop().call_later(delay, self._release, action)

    def _release(self, action: Action) -> None:
        """The hook lets go (completed or timed out): a terminating member goes either way."""
        if action.timer is not None:
            action.timer.cancel()
        self.actions.pop(action.token, None)
        self._proceed(action.group, action.member)

    def _event(self, action: Action) -> Event:
        """EventBridge's "EC2 Instance-terminate Lifecycle Action" event for ``action``."""
        detail = {
            "LifecycleActionToken": action.token,
            "AutoScalingGroupName": action.group.name,
            "LifecycleHookName": action.hook.name,
            "EC2InstanceId": action.member.instance.id,
            "LifecycleTransition": action.hook.transition,
            "Origin": "AutoScalingGroup",
            "Destination": "EC2",
        }
        return {
            "version": "0",
            "id": action.token,
            "detail-type": "EC2 Instance-terminate Lifecycle Action",
            "source": "aws.autoscaling",
            "account": ACCOUNT,
            "time": f"{self.world.wall():%Y-%m-%dT%H:%M:%SZ}",
            "region": self.region,
            "resources": [action.group.arn],
            "detail": detail,
        }

    def _action(self, group: str, hook: str, token: str | None, instance: str | None) -> Action:
        found = self.actions.get(token or "")
        if found is None and not token:
            found = next(
                (a for a in self.actions.values() if a.member.instance.id == instance), None
            )
        if found is None or found.group.name != group or found.hook.name != hook:
            named = f"token {token}" if token else f"instance ID {instance}"
            raise AwsError("ValidationError", f"No active Lifecycle Action found with {named}")
        return found

    async def record_lifecycle_action_heartbeat(
        self,
        LifecycleHookName: str,
        AutoScalingGroupName: str,
        LifecycleActionToken: str | None = None,
        InstanceId: str | None = None,
    ) -> dict[str, Any]:
        action = self._action(
            AutoScalingGroupName, LifecycleHookName, LifecycleActionToken, InstanceId
        )
        self._arm(action)
        return {}

    async def complete_lifecycle_action(
        self,
        LifecycleHookName: str,
        AutoScalingGroupName: str,
        LifecycleActionResult: str,
        LifecycleActionToken: str | None = None,
        InstanceId: str | None = None,
    ) -> dict[str, Any]:
        if LifecycleActionResult not in ("CONTINUE", "ABANDON"):
            raise AwsError("ValidationError", "LifecycleActionResult must be CONTINUE or ABANDON")
        action = self._action(
            AutoScalingGroupName, LifecycleHookName, LifecycleActionToken, InstanceId
        )
        self._release(action)
        return {}
