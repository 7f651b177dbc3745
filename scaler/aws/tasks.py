"""Tasks on a container instance: how many service tasks remain, and re-running standalone ones.

ECS replaces the *service* tasks of a DRAINING instance by itself; it leaves *standalone* tasks
(started by RunTask, not by a service) where they are, to die with the instance. With
``SCALER_RESTART_STANDALONE_TASKS`` the scaler re-runs each standalone task elsewhere with the same
task definition, overrides and group, then stops the original.

Restarting must not double-run a task when a message is redelivered: the new task is started with
``startedBy`` and ``clientToken`` derived from the original task's ARN, and a task already started
under that key means the restart was done.

A service's tasks and what DescribeTasks says of their health (:func:`service_tasks`,
:func:`task_health`) are read here too, for the surges that wait for an extra task to be healthy.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from scaler.aws.concurrency import bounded
from scaler.ecs.health import TaskHealth
from scaler.metrics import Metrics
from scaler.model import ContainerInstance

log = logging.getLogger(__name__)

LIVE = frozenset({"PROVISIONING", "PENDING", "ACTIVATING", "RUNNING"})
SERVICE_PREFIX = "service:"


def is_service_task(task: dict[str, Any]) -> bool:
    return str(task.get("group", "")).startswith(SERVICE_PREFIX) or str(
        task.get("startedBy", "")
    ).startswith("ecs-svc/")


def restart_key(task_arn: str) -> str:
    """The idempotency key of a standalone task's restart (fits startedBy and clientToken)."""
    return "scaler-restart-" + hashlib.sha256(task_arn.encode()).hexdigest()[:32]


async def tasks_on(
    ecs: Any, cluster: str, instance_arn: str, *, stopping: bool = False
) -> list[dict[str, Any]]:
    """Live tasks on one container instance (filtered client-side as well).

    With ``stopping``, tasks ECS is stopping (desired STOPPED, not stopped yet: draining their
    load balancer connections, say) count too: they still hold the instance.
    """
    wanted = ("RUNNING", "STOPPED") if stopping else ("RUNNING",)
    arns: list[str] = []
    paginator = ecs.get_paginator("list_tasks")
    for desired in wanted:
        pages = paginator.paginate(
            cluster=cluster,
            containerInstance=instance_arn,
            desiredStatus=desired,
            PaginationConfig={"PageSize": 100},
        )
        async for page in pages:
            arns.extend(page.get("taskArns", []))
    tasks = await describe_tasks(ecs, cluster, arns)
    return [
        t
        for t in tasks
        if t.get("containerInstanceArn") == instance_arn
        and t.get("lastStatus") not in ("STOPPED", "DELETED")
        and (stopping or t.get("desiredStatus") != "STOPPED")
    ]


async def is_empty(ecs: Any, cluster: str, instance_arn: str) -> bool:
    """No task of any status is left on a container instance: it may be terminated.

    ECS's ``runningTasksCount`` (and ``pendingTasksCount``) count the tasks whose *desired*
    status is RUNNING. A task being stopped is left out at once, though it still runs while it
    is DEACTIVATING (its load balancer draining its connections, 300 s by default) and STOPPING;
    terminating the instance then would cut those connections. So the tasks are listed with
    either desired status and judged by their last status.
    """
    return not await tasks_on(ecs, cluster, instance_arn, stopping=True)


async def describe_tasks(ecs: Any, cluster: str, arns: Sequence[str]) -> list[dict[str, Any]]:
    """Describe ``arns``, 100 a call, a few calls at a time."""
    calls = [
        ecs.describe_tasks(cluster=cluster, tasks=list(arns[i : i + 100]))
        for i in range(0, len(arns), 100)
    ]
    return [task for reply in await bounded(calls) for task in reply.get("tasks", [])]


async def service_tasks(ecs: Any, cluster: str, service: str) -> list[dict[str, Any]]:
    """The tasks of ``service`` whose desired status is RUNNING, described."""
    arns: list[str] = []
    paginator = ecs.get_paginator("list_tasks")
    pages = paginator.paginate(
        cluster=cluster,
        serviceName=service,
        desiredStatus="RUNNING",
        PaginationConfig={"PageSize": 100},
    )
    async for page in pages:
        arns.extend(page.get("taskArns", []))
    group = f"{SERVICE_PREFIX}{service}"
    return [t for t in await describe_tasks(ecs, cluster, arns) if t.get("group") == group]


def epoch(value: Any) -> float:
    """A time as ECS answers it (a datetime, or seconds), in seconds since the epoch; 0 if none."""
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value or 0.0)


def task_health(raw: dict[str, Any]) -> TaskHealth:
    """What a DescribeTasks entry says of the task's health: its ``healthStatus``, and since when
    it runs (``startedAt``, or ``createdAt`` if ECS leaves that out) if it is RUNNING."""
    running = raw.get("lastStatus") == "RUNNING"
    since = epoch(raw.get("startedAt") or raw.get("createdAt")) if running else None
    status = raw.get("healthStatus")
    return TaskHealth(str(status) if status is not None else None, since)


async def running_task_arns(ecs: Any, cluster: str) -> list[str]:
    """The ARNs of every task of the cluster whose desired status is RUNNING (ListTasks)."""
    arns: list[str] = []
    paginator = ecs.get_paginator("list_tasks")
    pages = paginator.paginate(
        cluster=cluster, desiredStatus="RUNNING", PaginationConfig={"PageSize": 100}
    )
    async for page in pages:
        arns.extend(page.get("taskArns", []))
    return arns


async def running_tasks(ecs: Any, cluster: str) -> list[dict[str, Any]]:
    """Every task of the cluster whose desired status is RUNNING, described."""
    return await describe_tasks(ecs, cluster, await running_task_arns(ecs, cluster))


class TaskInspector:
    """Counts the service tasks left on a draining instance."""

    def __init__(self, ecs: Any, cluster: str) -> None:
        self._ecs = ecs
        self._cluster = cluster

    async def service_tasks(self, instance: ContainerInstance) -> int:
        tasks = await tasks_on(self._ecs, self._cluster, instance.arn, stopping=True)
        return sum(1 for t in tasks if is_service_task(t))


class StandaloneRestarter:
    """Re-runs the standalone tasks of a draining instance elsewhere, then stops the originals."""

    def __init__(self, ecs: Any, cluster: str, metrics: Metrics, *, dry_run: bool) -> None:
        self._ecs = ecs
        self._cluster = cluster
        self._metrics = metrics
        self._dry_run = dry_run

    async def restart_all(self, instance: ContainerInstance) -> dict[str, str]:
        """Task ARN -> outcome for every standalone task on ``instance``."""
        tasks = await tasks_on(self._ecs, self._cluster, instance.arn)
        outcomes: dict[str, str] = {}
        for task in tasks:
            if is_service_task(task):
                continue
            outcomes[task["taskArn"]] = await self._restart(task, instance)
            self._metrics.standalone_restarts.labels(outcomes[task["taskArn"]]).inc()
        return outcomes

    async def _restart(self, task: dict[str, Any], instance: ContainerInstance) -> str:
        context = {"task": task["taskArn"], "instance_id": instance.ec2_instance_id}
        if _uses_awsvpc(task):
            log.warning(
                "standalone awsvpc task not restarted: its network configuration "
                "cannot be read back from the task",
                extra=context,
            )
            return "skipped_awsvpc"
        if self._dry_run:
            log.info("dry run: would restart standalone task", extra=context)
            return "dry_run"
        try:
            started = await self._run_copy(task)
        except Exception as exc:
            log.error(
                "standalone task restart failed; the original keeps running",
                extra={**context, "error": repr(exc)},
            )
            return "failed"
        await self._ecs.stop_task(
            cluster=self._cluster,
            task=task["taskArn"],
            reason=f"scaler: restarted elsewhere before {instance.ec2_instance_id} goes away",
        )
        log.info("standalone task restarted", extra={**context, "replacement": started})
        return "restarted"

    async def _run_copy(self, task: dict[str, Any]) -> str:
        key = restart_key(task["taskArn"])
        for status in ("RUNNING", "STOPPED"):  # ECS lists RUNNING only unless asked
            existing = await self._ecs.list_tasks(
                cluster=self._cluster, startedBy=key, desiredStatus=status
            )
            if existing.get("taskArns"):
                return str(existing["taskArns"][0])  # restarted before (a redelivered message)
        reply = await self._ecs.run_task(**self._copy(task, key))
        started = reply.get("tasks", [])
        if not started:
            reasons = [f.get("reason") for f in reply.get("failures", [])]
            raise RuntimeError(f"RunTask placed nothing: {reasons}")
        return str(started[0]["taskArn"])

    def _copy(self, task: dict[str, Any], key: str) -> dict[str, Any]:
        request: dict[str, Any] = {
            "cluster": self._cluster,
            "taskDefinition": task["taskDefinitionArn"],
            "count": 1,
            "startedBy": key,
            "clientToken": key,
        }
        if task.get("group"):
            request["group"] = task["group"]
        if task.get("overrides"):
            request["overrides"] = task["overrides"]
        if task.get("capacityProviderName"):
            request["capacityProviderStrategy"] = [
                {"capacityProvider": task["capacityProviderName"], "weight": 1}
            ]
        else:
            request["launchType"] = "EC2"
        return request


def _uses_awsvpc(task: dict[str, Any]) -> bool:
    return any(a.get("type") == "ElasticNetworkInterface" for a in task.get("attachments", []))
