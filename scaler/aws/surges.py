"""Surge moves survive a crash: each one is written on its service as a tag until it is done.

A surge move raises a service's desired count by one and sets it back once the extra task is
healthy and the hot task stopped (:mod:`scaler.aws.rebalancer`). If the scaler dies in between,
or loses the leader lease, the count must not stay raised. So before raising it the scaler tags
the service ``scaler:surge = "<desired before> <hot task ARN> <started> <source> <destination>"``
and removes the tag when the surge is finished or undone; the leader reads the tags of every
service each cycle and finishes the surges it finds that it did not start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)
TAG = "scaler:surge"


@dataclass(frozen=True)
class Mark:
    desired: int  # the service's desired count before the surge
    task_arn: str  # the hot task, stopped once the extra one is healthy
    started: float
    source: str
    destination: str

    def value(self) -> str:
        fields = (self.desired, self.task_arn, f"{self.started:.0f}", self.source, self.destination)
        return " ".join(str(f) for f in fields)


def parse(value: str) -> Mark | None:
    """The mark in a tag value, or None if it is not one the scaler wrote."""
    parts = value.split()
    if len(parts) != 5:
        return None
    try:
        return Mark(int(parts[0]), parts[1], float(parts[2]), parts[3], parts[4])
    except ValueError:
        return None


def marks(tags_by_service: dict[str, dict[str, str]]) -> dict[str, Mark]:
    """The surges marked on services, by service name."""
    found: dict[str, Mark] = {}
    for service, tags in tags_by_service.items():
        if TAG in tags:
            mark = parse(tags[TAG])
            if mark is None:
                log.warning("unreadable surge mark ignored", extra={"service": service})
            else:
                found[service] = mark
    return found


async def put(ecs: Any, service_arn: str, mark: Mark) -> None:
    await ecs.tag_resource(resourceArn=service_arn, tags=[{"key": TAG, "value": mark.value()}])


async def remove(ecs: Any, service_arn: str) -> None:
    await ecs.untag_resource(resourceArn=service_arn, tagKeys=[TAG])
