"""What the simulated ECS's reads share while the cluster stands still.

A large cluster is read in many calls: a listing of 5,000 tasks is 50 pages, then 50
``DescribeTasks`` calls. Each used to derive what it needs from the whole model again (which
container instances are registered, every task by id, the listing's ids in order), so a
listing cost the square of its size. Here each is derived once per state of the model and
shared by every read until the model changes.

The state is told by the engine's version (:attr:`scaler.sim.engine.Sim.version`): every
change of the ECS model goes through :class:`~scaler.ecs.cluster.Cluster`, whose observer is
the engine's, and each raises it. So a read at the same version as the last one sees the same
model, and one after a change (a task started, stopped or moved between two pages of a
listing, an instance drained or gone) derives everything again from the model as it is then:
every answer is the one the model gives at the moment of the read, as without sharing.

A task's description is the same from one read to the next as long as its state is, but for
its health, which time decides: :class:`TaskDescriptions` keeps each task's description per
state and sets ``healthStatus`` at each read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scaler.ecs.cluster import ACTIVE, DEACTIVATING, DRAINING, PENDING, RUNNING, Instance, Task

Listing = tuple[list[str], dict[str, Task]]  # the ids in order, and their tasks by id


class ClusterReads:
    """Views of ``cluster`` at the engine's ``version``, each derived when first asked for.
    Callers only read what they are given."""

    def __init__(self, cluster: Any, version: int) -> None:
        self.cluster, self.version = cluster, version
        self._registered: dict[str, Instance] | None = None
        self._every: dict[str, Task] | None = None
        self._listings: dict[tuple[str | None, str | None, bool], Listing] = {}
        self.instance_arns: list[str] | None = None  # ListContainerInstances' ARNs, in order

    def registered(self) -> dict[str, Instance]:
        """Instance id -> the ACTIVE and DRAINING container instances."""
        if self._registered is None:
            self._registered = {
                i.id: i for i in self.cluster.instances.values() if i.status in (ACTIVE, DRAINING)
            }
        return self._registered

    def every_task(self) -> dict[str, Task]:
        """Task id -> task: the services' tasks and those still deactivating on instances
        (a stopped task leaves its service at once, and its instance only when it is gone)."""
        if self._every is None:
            services = self.cluster.services.values()
            index = {t.id: t for s in services for t in s.tasks.values()}
            for inst in self.registered().values():
                index.update(inst.tasks)
            self._every = index
        return self._every

    def listing(
        self,
        instance: str | None,
        service: str | None,
        stopped: bool,
        tasks: Callable[[str | None, str | None], list[Task]],
    ) -> Listing:
        """ListTasks' tasks on ``instance`` or of ``service`` (``tasks`` finds them), those
        stopping if ``stopped`` else those pending or running, in the order of their ids (their
        ARNs share their prefix)."""
        key = (instance, service, stopped)
        found = self._listings.get(key)
        if found is None:
            wanted = (DEACTIVATING,) if stopped else (PENDING, RUNNING)
            by_id = {t.id: t for t in tasks(instance, service) if t.state in wanted}
            found = self._listings[key] = (sorted(by_id), by_id)
        return found


class TaskDescriptions:
    """Each task's description (by ``describe``) while its state is the same; a task's
    ``healthStatus`` is set at each read. Descriptions of tasks gone from the cluster are
    dropped when they outnumber the tasks left."""

    def __init__(self, describe: Callable[[Task], dict[str, Any]]) -> None:
        self._describe = describe
        self._kept: dict[str, tuple[Task, str, dict[str, Any]]] = {}

    def __call__(self, task: Task, now: float, live: dict[str, Task]) -> dict[str, Any]:
        kept = self._kept.get(task.id)
        if kept is None or kept[0] is not task or kept[1] != task.state:
            if len(self._kept) > 2 * len(live) + 1000:
                self._kept = {i: k for i, k in self._kept.items() if live.get(i) is k[0]}
            kept = self._kept[task.id] = (task, task.state, self._describe(task))
        health = "HEALTHY" if task.healthy(now) else "UNKNOWN"
        return {**kept[2], "healthStatus": health}
