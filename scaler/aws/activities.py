"""Failed launches, as an Auto Scaling group reports them in its scaling activities.

An Auto Scaling group accepts a new desired capacity at once, whether or not it can launch: when
its spot pools have no capacity it records a ``Failed`` activity ("Could not launch Spot
Instances. InsufficientInstanceCapacity ...") and tries again later, on its own schedule. An EC2
Fleet says so in its answer; a group says so only here. Reading the activities of the groups that
owe instances lets the scaler turn to other pools (and to on-demand) within a cycle, instead of
waiting out the time a group may take to start what it was asked for.

:func:`failed_launch` is the pure part (which activity counts); :func:`failed_launches` asks
Auto Scaling, one group at a time, and only for the groups it is given.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from scaler.aws.clients import error_code

log = logging.getLogger(__name__)

FAILED = frozenset({"Failed", "Cancelled"})
SKEW = 30.0  # seconds an activity may seem to start before the ask (clocks differ)
RECENT = 10  # activities read per group: the newest, where a failure since the ask shows
DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})


def failed_launch(activities: Iterable[Mapping[str, Any]], since: float) -> str | None:
    """Why the group failed to launch since ``since`` (epoch seconds), from its activities;
    None if no launch has failed since then."""
    for activity in activities:
        start = activity.get("StartTime")
        if not isinstance(start, datetime) or start.timestamp() < since - SKEW:
            continue
        description = str(activity.get("Description", ""))
        if activity.get("StatusCode") in FAILED and description.startswith("Launching"):
            return str(activity.get("StatusMessage") or description)
    return None


class LaunchFailures:
    """Reads the scaling activities of groups that owe instances; a read Auto Scaling refuses
    (a task role without ``autoscaling:DescribeScalingActivities``) is warned about once and
    not tried again: such groups are then judged by the launch grace alone."""

    def __init__(self, autoscaling: Any) -> None:
        self._autoscaling = autoscaling
        self.denied = False

    async def read(self, owing: Mapping[str, float]) -> dict[str, str]:
        """Group -> why its launches failed, for each group of ``owing`` (group -> when it was
        asked) whose activities show a failed launch since then."""
        failed: dict[str, str] = {}
        for name, since in sorted(owing.items()):
            if self.denied:
                break
            why = await self._one(name, since)
            if why is not None:
                failed[name] = why
        return failed

    async def _one(self, name: str, since: float) -> str | None:
        try:
            reply = await self._autoscaling.describe_scaling_activities(
                AutoScalingGroupName=name, MaxRecords=RECENT
            )
        except Exception as exc:
            if error_code(exc) not in DENIED:
                raise  # throttling and the like: the next cycle reads again
            self.denied = True
            log.warning(
                "scaling activities not readable: a group that cannot launch is found out only "
                "after the launch grace; allow autoscaling:DescribeScalingActivities",
                extra={"group": name, "error": error_code(exc)},
            )
            return None
        return failed_launch(reply.get("Activities", []), since)
