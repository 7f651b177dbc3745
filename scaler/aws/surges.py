"""Surge moves survive a crash: each one is written on its service as a tag until it is done.

A surge move raises a service's desired count by one and sets it back once the extra task is
healthy and the hot task stopped (:mod:`scaler.aws.rebalancer`). If the scaler dies in between,
or loses the leader lease, the count must not stay raised. So before raising it the scaler tags
the service ``scaler:surge = "<desired before> <hot task ARN> <started> <source> <destination>"``
and removes the tag when the surge is finished or undone; the leader reads the tags of every
service each cycle and finishes the surges it finds that it did not start.

The roll's pre-drain surge (:func:`scaler.plan.roll.plan_surges`) is marked the same way under
its own key, ``scaler:roll-surge = "<desired before> <added> <instance> <started>"``:
:class:`RollSurges` reads the services with their marks, writes the mark before it raises a count
and removes it once the count is set back (or found changed by someone else, then left as it
is). Each change is made only while this replica holds the leader lease, and counted in
``scaler_actions`` (``roll_surge``, ``roll_surge_back``, ``roll_surge_left``). For a service
carrying the roll's mark it also reads its tasks' health (``healthStatus``, ``startedAt``) and
what tells it (container health checks, grace period, load balancers): the drain waits until the
extra tasks are healthy, not only RUNNING (:meth:`scaler.plan.roll.Deployment.settled`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from scaler.aws.clients import AwsClients
from scaler.aws.lease import Always
from scaler.aws.services import service_health
from scaler.aws.tasks import service_tasks, task_health
from scaler.capacity.ports import Leader
from scaler.guard import container_health_check_seconds, describe_services
from scaler.metrics import Metrics
from scaler.plan.roll import Deployment, SurgeMark

log = logging.getLogger(__name__)
TAG = "scaler:surge"
ROLL_TAG = "scaler:roll-surge"


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


def roll_value(mark: SurgeMark) -> str:
    return f"{mark.desired} {mark.added} {mark.instance} {mark.started:.0f}"


def parse_roll(value: str) -> SurgeMark | None:
    """The roll's surge mark in a tag value, or None if it is not one the scaler wrote."""
    parts = value.split()
    if len(parts) != 4:
        return None
    try:
        return SurgeMark(int(parts[0]), int(parts[1]), parts[2], float(parts[3]))
    except ValueError:
        return None


def deployment(raw: dict[str, Any]) -> Deployment:
    """A service as DescribeServices (with its tags) says, as the roll's surge sees it."""
    tags = {str(t.get("key")): str(t.get("value", "")) for t in raw.get("tags") or []}
    config = raw.get("deploymentConfiguration") or {}
    mark = parse_roll(tags[ROLL_TAG]) if ROLL_TAG in tags else None
    if ROLL_TAG in tags and mark is None:
        log.warning("unreadable roll surge mark ignored", extra={"service": raw["serviceName"]})
    return Deployment(
        str(raw["serviceName"]),
        int(raw.get("desiredCount", 0)),
        int(raw.get("runningCount", 0)),
        int(raw.get("pendingCount", 0)),
        int(config.get("minimumHealthyPercent", 100)),
        int(config.get("maximumPercent", 200)),
        raw.get("schedulingStrategy") == "DAEMON",
        mark,
        TAG in tags,
    )


class RollSurges:
    """The roll's surges in AWS: DescribeServices (with tags), TagResource, UpdateService,
    UntagResource; in dry-run it only logs and counts."""

    def __init__(self, aws: AwsClients, cluster: str, metrics: Metrics, dry_run: bool) -> None:
        self._aws = aws
        self._cluster = cluster
        self._metrics = metrics
        self._dry_run = dry_run
        self.leader: Leader = Always()  # checked before every call that changes something
        self._arns: dict[str, str] = {}  # service name -> ARN, as last read
        self._checked: dict[str, bool] = {}  # task definition -> has container health checks

    async def read(self, names: Sequence[str]) -> dict[str, Deployment] | None:
        """The services among ``names`` with their marks; None (warned) if they cannot be read."""
        try:
            raws = await describe_services(self._aws.ecs, self._cluster, list(names), tags=True)
        except Exception as exc:
            log.warning("services not read: no roll surge this cycle", extra={"error": repr(exc)})
            return None
        self._arns = {str(r["serviceName"]): str(r["serviceArn"]) for r in raws}
        found = {d.name: d for d in map(deployment, raws)}
        for raw in raws:
            name = str(raw["serviceName"])
            if found[name].mark is not None:
                found[name] = await self._with_health(found[name], raw)
        return found

    async def _with_health(self, dep: Deployment, raw: dict[str, Any]) -> Deployment:
        """``dep`` with its tasks' health and what tells it (ListTasks, DescribeTasks, and
        DescribeTaskDefinition once per task definition); as it was if they cannot be read (its
        drain then waits, at most the roll's surge wait)."""
        definition = str(raw.get("taskDefinition", ""))
        try:
            described = await service_tasks(self._aws.ecs, self._cluster, dep.name)
            if definition not in self._checked:
                answer = await self._aws.ecs.describe_task_definition(taskDefinition=definition)
                checks = container_health_check_seconds(answer.get("taskDefinition") or {})
                self._checked[definition] = checks is not None
        except Exception as exc:
            log.warning(
                "service tasks not read: its drain waits",
                extra={"service": dep.name, "error": repr(exc)},
            )
            return dep
        health = service_health(raw, self._checked[definition])
        return replace(dep, tasks=tuple(map(task_health, described)), health=health)

    async def raise_count(self, service: str, mark: SurgeMark, why: str) -> bool:
        """Mark the surge on the service, then raise its desired count; True if both were done."""
        arn = self._arns.get(service, service)
        tag = [{"key": ROLL_TAG, "value": roll_value(mark)}]
        if not await self._act(
            "roll_surge",
            service,
            why,
            lambda: self._aws.ecs.tag_resource(resourceArn=arn, tags=tag),
        ):
            return False
        return await self._act(
            "roll_surge", service, why, lambda: self._update(service, mark.raised)
        )

    async def set_back(self, service: str, desired: int | None, why: str) -> bool:
        """Set the count back to ``desired`` (None: leave it as someone else set it), then remove
        the mark; True if both were done."""
        action = "roll_surge_back" if desired is not None else "roll_surge_left"
        if desired is not None and not await self._act(
            action, service, why, lambda: self._update(service, desired)
        ):
            return False
        arn = self._arns.get(service, service)
        return await self._act(
            action,
            service,
            why,
            lambda: self._aws.ecs.untag_resource(resourceArn=arn, tagKeys=[ROLL_TAG]),
        )

    async def _update(self, service: str, desired: int) -> None:
        await self._aws.ecs.update_service(
            cluster=self._cluster, service=service, desiredCount=desired
        )

    async def _act(
        self, action: str, service: str, why: str, call: Callable[[], Awaitable[Any]]
    ) -> bool:
        if self._dry_run:
            log.info(f"dry run: would {why}", extra={"service": service})
            self._metrics.actions.labels(action, service, "dry_run").inc()
            return False
        if not self.leader.holds():
            log.warning(f"not leading: {why} left to the leader", extra={"service": service})
            self._metrics.actions.labels(action, service, "not_leader").inc()
            return False
        try:
            await call()
        except Exception as exc:
            log.error(f"{why} failed", extra={"service": service, "error": repr(exc)})
            self._metrics.actions.labels(action, service, "failed").inc()
            return False
        self._metrics.actions.labels(action, service, "ok").inc()
        return True
