"""Carry out the surge at spot interruption warnings (:mod:`scaler.plan.warning_surge`).

With ``SCALER_WARNING_SURGE`` the handler asks :meth:`WarningSurge.hold` before it drains a
warned instance; the call returns once the instance may drain, at its deadline at the latest
(whatever the loop below is doing). Meanwhile one loop steps every ``poll`` seconds over every
instance waiting: it reads the services with tasks there (and those marked) with their marks, the
service tasks on each instance, and, for the services surged and steady, whether their tasks
report healthy (``healthStatus`` HEALTHY: a container health check; without one the instance
drains at its deadline); then it raises counts, lets instances drain and sets counts back, each
change through the roll's adapter (:class:`~scaler.aws.surges.RollSurges`: the
``scaler:roll-surge`` mark written first, only while this replica leads). It keeps stepping until
no instance waits and no count it raised is still to set back.

Reads stay few when warnings come in bursts. An instance that ECS counts no task on is let go
at once, unread. The others' tasks are read per instance (ListTasks of the instance, then
DescribeTasks) while that takes fewer calls than reading the whole cluster's (ListTasks of the
cluster, DescribeTasks in calls of 100: :func:`read_plan`); a storm's hundreds of warnings cost
one cluster-wide read a step, and the services' health comes from the same read.

A count left raised by a scaler that stopped mid-surge is set back by the next one:
:meth:`WarningSurge.run_forever` reads every service's marks every ``SWEEP`` seconds and
settles those whose instances all drained or went. An instance still ACTIVE under a mark is
left to the redelivered warning (or the roll, whose mark it is).

In dry-run, without the lease, or when the services cannot be read, a warned instance drains
at once, as without the setting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from typing import Any

from scaler.aws.concurrency import bounded
from scaler.aws.ecs import InstanceDirectory
from scaler.aws.tasks import SERVICE_PREFIX, running_tasks, service_tasks, tasks_on
from scaler.capacity.ports import Leader, ServiceSurges
from scaler.capacity.roll import apply_surges
from scaler.clock import Clock
from scaler.ecs.cluster import ACTIVE
from scaler.guard import list_service_arns
from scaler.metrics import Metrics
from scaler.model import ContainerInstance
from scaler.plan.roll import Deployment
from scaler.plan.warning_surge import WarningPlan, dips, drain_deadline, plan_warning_surges

log = logging.getLogger(__name__)

SWEEP = 300.0  # seconds between reads of every service's marks
PAGE = 100  # tasks a ListTasks page and a DescribeTasks call hold
PER_INSTANCE_CALLS = 3  # ListTasks twice (desired RUNNING, STOPPED), DescribeTasks once


def read_plan(instances: int, tasks: int) -> str:
    """How to read the tasks on ``instances`` waiting instances of a cluster running about
    ``tasks`` tasks: ``"instances"`` one by one, or ``"cluster"`` all at once, whichever takes
    fewer calls."""
    whole = 2 * -(-tasks // PAGE)
    return "cluster" if whole < PER_INSTANCE_CALLS * instances else "instances"


class WarningSurge:
    """The instances waiting for their services' surges, and the loop that steps them."""

    def __init__(
        self,
        port: ServiceSurges,
        ecs: Any,
        cluster: str,
        directory: InstanceDirectory,
        clock: Clock,
        *,
        stop_time: float,
        poll: float = 5.0,
        dry_run: bool = False,
        metrics: Metrics | None = None,
    ) -> None:
        self._port = port
        self._metrics = metrics
        self._ecs = ecs
        self._cluster = cluster
        self._directory = directory
        self._clock = clock
        self._stop_time = stop_time
        self._poll = poll
        self._dry_run = dry_run
        self._warned: dict[str, tuple[ContainerInstance, float]] = {}  # id -> (it, deadline)
        self._released: dict[str, asyncio.Event] = {}
        self._surged: set[str] = set()  # warned instances a surge was raised for
        self._marked: set[str] = set()  # services whose marks this loop settles
        self._runner: asyncio.Task[None] | None = None

    @property
    def leader(self) -> Leader:
        return self._port.leader

    @leader.setter
    def leader(self, leader: Leader) -> None:
        self._port.leader = leader

    async def hold(self, instance: ContainerInstance, warned_at: float) -> bool:
        """Return once ``instance``, warned at ``warned_at``, may drain: whether it waited for
        its services' surge (False: let go at once, nothing to surge for it)."""
        return await self.hold_until(instance, drain_deadline(warned_at, self._stop_time))

    async def hold_until(self, instance: ContainerInstance, deadline: float) -> bool:
        """Return once ``instance`` may drain, at ``deadline`` at the latest: whether it waited
        for its services' surge. A recommendation's drain waits so too, with a later deadline;
        should a warning for the same instance come meanwhile, the sooner deadline holds."""
        if self._dry_run or not self._port.leader.holds():
            return False
        if instance.running_tasks + instance.pending_tasks == 0:
            return False  # ECS counts no task on it: nothing to surge for, nothing to read
        iid = instance.ec2_instance_id
        if iid in self._warned:
            deadline = min(deadline, self._warned[iid][1])
        self._warned[iid] = (instance, deadline)
        released = self._released.setdefault(iid, asyncio.Event())
        self._wake()
        began = self._now()
        left = deadline - began
        late = False
        try:  # the loop releases it; at its deadline it goes whatever the loop is doing
            await asyncio.wait_for(released.wait(), max(0.0, left))
        except TimeoutError:
            late = True
            log.info("warning surge: drain at the deadline", extra={"instance_id": iid})
        finally:
            self._warned.pop(iid, None)
            self._released.pop(iid, None)
        held = late or iid in self._surged
        self._surged.discard(iid)
        if held and self._metrics is not None:
            ended = self._now()
            outcome = "deadline" if late or ended >= deadline else "ready"
            self._metrics.surge_holds.labels(outcome).observe(max(0.0, ended - began))
        return held

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Adopt the marks a stopped scaler left: read every service's every ``SWEEP`` s."""
        while not stop.is_set():
            if self._port.leader.holds() and self._runner is None:
                try:
                    await self._adopt()
                except Exception as exc:
                    log.warning("surge marks not read", extra={"error": repr(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SWEEP)
        if self._runner is not None:
            self._runner.cancel()

    async def _adopt(self) -> None:
        arns = await list_service_arns(self._ecs, self._cluster)
        services = await self._port.read(arns) if arns else {}
        marked = {n for n, s in (services or {}).items() if s.mark is not None}
        if marked:
            self._marked |= marked
            self._wake()

    def _wake(self) -> None:
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name="warning-surge")

    async def _run(self) -> None:
        try:
            while self._warned or self._marked:
                try:
                    plan = await self.step()
                except Exception as exc:  # drained unsurged rather than not at all
                    log.error("warning surge step failed", extra={"error": repr(exc)})
                    self._release(list(self._warned))
                    plan = WarningPlan()
                await asyncio.sleep(self._pause(plan))
        finally:
            self._runner = None

    def _pause(self, plan: WarningPlan) -> float:
        """Seconds to the next step: ``poll``, less to meet a deadline, a moment after drains
        (their counts are set back once they drained)."""
        if plan.drain:
            return min(self._poll, 1.0)
        deadlines = [d for i, (_, d) in self._warned.items() if not self._released[i].is_set()]
        soonest = min(deadlines, default=float("inf")) - self._now()
        return max(0.1, min(self._poll, soonest))

    def _release(self, instances: list[str]) -> None:
        for iid in instances:
            if iid in self._released:
                self._released[iid].set()

    def _now(self) -> float:
        return self._clock.now().timestamp()

    async def step(self) -> WarningPlan:
        """Read, plan, act once."""
        now = self._now()
        warned = {i: d for i, (_, d) in self._warned.items() if not self._released[i].is_set()}
        found = await self._directory.resolve(warned)
        self._release([i for i in warned if i not in found or found[i].status != ACTIVE])
        warned = {i: d for i, d in warned.items() if i in found and found[i].status == ACTIVE}
        idle = [i for i in warned if found[i].running_tasks + found[i].pending_tasks == 0]
        self._release(idle)  # nothing there to surge for
        warned = {i: d for i, d in warned.items() if i not in idle}
        on, everything = await self._read_tasks({i: found[i] for i in warned})
        names = self._marked | {n for here in on.values() for n in here}
        services = await self._port.read(sorted(names)) if names else {}
        if services is None:
            self._release(list(warned))
            return WarningPlan()
        status = await self._marked_instances(services, found)
        healthy = await self._healthy(services, warned, on, everything)
        plan = plan_warning_surges(warned, on, services, healthy, status, now)
        await self._carry_out(plan, services)
        marks = [*plan.raises.values(), *(s.mark for s in services.values() if s.mark)]
        self._surged |= {i for m in marks for i in m.instances if i in warned}
        self._release(list(plan.drain))
        self._marked = self._still_marked(services, plan, status, warned)
        return plan

    async def _read_tasks(
        self, instances: dict[str, ContainerInstance]
    ) -> tuple[dict[str, dict[str, int]], list[dict[str, Any]] | None]:
        """Service -> its tasks on each of ``instances``, and every task of the cluster whose
        desired status is RUNNING when that is what was read (None: read per instance)."""
        if not instances:
            return {}, None
        tasks = sum(ci.running_tasks + ci.pending_tasks for ci in self._directory.known())
        if read_plan(len(instances), tasks) == "instances":
            reads = [self._service_tasks(ci) for ci in instances.values()]
            return dict(zip(instances, await bounded(reads), strict=True)), None
        everything = await running_tasks(self._ecs, self._cluster)
        where = {ci.arn: iid for iid, ci in instances.items()}
        on: dict[str, list[dict[str, Any]]] = {iid: [] for iid in instances}
        for task in everything:
            if (iid := where.get(str(task.get("containerInstanceArn")))) is not None:
                on[iid].append(task)
        return {iid: _by_service(here) for iid, here in on.items()}, everything

    async def _service_tasks(self, instance: ContainerInstance) -> dict[str, int]:
        """Service -> its tasks on ``instance`` (those ECS is stopping too)."""
        return _by_service(await tasks_on(self._ecs, self._cluster, instance.arn, stopping=True))

    async def _marked_instances(
        self, services: dict[str, Deployment], found: dict[str, ContainerInstance]
    ) -> dict[str, str]:
        """ACTIVE, DRAINING, ... of each instance a mark names (absent: gone)."""
        named = {i for s in services.values() if s.mark is not None for i in s.mark.instances}
        current = {**found, **await self._directory.resolve(named - found.keys())}
        return {i: ci.status for i, ci in current.items() if i in named or i in found}

    async def _healthy(
        self,
        services: dict[str, Deployment],
        warned: dict[str, float],
        on: dict[str, Any],
        everything: list[dict[str, Any]] | None,
    ) -> set[str]:
        """The services that dip surged for a warned instance, steady, whose tasks all report
        HEALTHY (only those hold a drain back); from the cluster's tasks when they were read,
        else read service by service."""
        names = sorted(
            {
                n
                for i in warned
                for n in on[i]
                if (s := services.get(n)) is not None and s.mark is not None and s.steady
                if i in s.mark.instances and dips({n: on[i][n]}, services)
            }
        )
        if everything is not None:
            groups: dict[str, list[dict[str, Any]]] = {}
            for task in everything:
                groups.setdefault(str(task.get("group", "")), []).append(task)
            tasks = [groups.get(SERVICE_PREFIX + n, []) for n in names]
        else:
            tasks = await bounded([service_tasks(self._ecs, self._cluster, n) for n in names])
        return {
            name
            for name, theirs in zip(names, tasks, strict=True)
            if theirs and all(t.get("healthStatus") == "HEALTHY" for t in theirs)
        }

    async def _carry_out(self, plan: WarningPlan, services: dict[str, Deployment]) -> None:
        for why in plan.reasons:
            log.info("warning surge decision", extra={"reason": why})
        await apply_surges(self._port, plan.raises, plan.set_back, services, "a warning surge")

    def _still_marked(
        self,
        services: dict[str, Deployment],
        plan: WarningPlan,
        status: dict[str, str],
        warned: dict[str, float],
    ) -> set[str]:
        """Services to keep stepping for: raised now, or marked for instances that drain (or
        this loop's warned ones), not set back. A mark of an ACTIVE instance not warned here is
        someone else's surge in progress (the roll's, or a warning another replica handles)."""
        keep = set(plan.raises)
        for name, svc in services.items():
            if svc.mark is None or name in plan.set_back:
                continue
            live = [i for i in svc.mark.instances if status.get(i) == ACTIVE]
            if all(i in warned for i in live):
                keep.add(name)
        return keep


def _by_service(tasks: list[dict[str, Any]]) -> dict[str, int]:
    """Service -> how many of ``tasks`` are its."""
    groups = (str(t.get("group", "")) for t in tasks)
    return dict(
        Counter(g.removeprefix(SERVICE_PREFIX) for g in groups if g.startswith(SERVICE_PREFIX))
    )
