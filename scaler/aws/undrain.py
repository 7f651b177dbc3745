"""The scaler's drain marks in ECS, and setting its reversible drains back to ACTIVE.

:class:`DrainMarks` writes the mark of :mod:`scaler.plan.undrain` as the container-instance
attribute ``scaler.drained`` (``PutAttributes``) before a reversible drain, rewrites it with the
final reason when a final signal comes for a marked instance, and removes it
(``DeleteAttributes``) once the drain is undone. ECS returns the attribute with every
``DescribeContainerInstances``, so the marks cost no extra read, survive a restart, and vanish with
the container instance.

:class:`Reactivator` runs every few seconds (a quarter of ``SCALER_UNDRAIN_AFTER``, at most a
minute; only on the leader): it reads the container instances, asks
:func:`scaler.plan.undrain.reactivations` which drains to undo, sets those instances ACTIVE with
``UpdateContainerInstancesState`` (10 a call), removes their marks, and counts each in
``scaler_reactivated_instances_total{reason}``.

Reads are spent only where a mark may be: a pass uses the instance directory as it stands when
another part of the scaler refreshed it within the pass's interval (the capacity controller
does every cycle); otherwise it reads the cluster again only if the directory shows a mark (the
scaler's own marks are recorded there as they are written) or once every ``full_every`` seconds
(marks written by another replica, or before a restart). On a cluster with nothing drained that
is a full read every few minutes, not every minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from scaler.aws.ecs import InstanceDirectory
from scaler.aws.lease import Always, Leadership
from scaler.clock import Clock
from scaler.metrics import Metrics
from scaler.model import ContainerInstance
from scaler.notices import NoticeBoard
from scaler.plan.undrain import ATTRIBUTE, Drained, Mark, Undo, parse_mark, reactivations

log = logging.getLogger(__name__)

BATCH = 10  # container instances per UpdateContainerInstancesState, attributes per call


class DrainMarks:
    """Reads and writes the ``scaler.drained`` attribute of container instances."""

    def __init__(
        self,
        ecs: Any,
        cluster: str,
        directory: InstanceDirectory,
        *,
        dry_run: bool = False,
    ) -> None:
        self._ecs = ecs
        self._cluster = cluster
        self._directory = directory
        self._dry_run = dry_run

    async def put(self, instance: ContainerInstance, mark: Mark) -> ContainerInstance:
        """Mark ``instance``; the instance as marked (in dry-run, unchanged)."""
        if self._dry_run:
            log.info("dry run: would mark", extra={"instance_id": instance.ec2_instance_id})
            return instance
        attribute = self._attribute(instance, mark.text)
        await self._ecs.put_attributes(cluster=self._cluster, attributes=[attribute])
        marked = replace(instance, drain_mark=mark.text)
        self._directory.update(replace(marked, version=0))
        return marked

    async def settle(self, instance: ContainerInstance, reason: str, at: float) -> None:
        """A final signal for ``instance``: if it carries a reversible mark, make it final, so
        no replica ever undoes its drain (failures are logged: the notice board still knows)."""
        mark = parse_mark(instance.drain_mark or "")
        if mark is None or not mark.reversible:
            return
        try:
            await self.put(instance, Mark(reason, at, at))
        except Exception as exc:
            log.warning(
                "could not mark a drain final",
                extra={"instance_id": instance.ec2_instance_id, "error": repr(exc)},
            )

    async def remove(self, instances: Sequence[ContainerInstance]) -> None:
        for start in range(0, len(instances), BATCH):
            chunk = instances[start : start + BATCH]
            attributes = [self._attribute(ci, ci.drain_mark or "") for ci in chunk]
            await self._ecs.delete_attributes(cluster=self._cluster, attributes=attributes)

    @staticmethod
    def _attribute(instance: ContainerInstance, value: str) -> dict[str, str]:
        # the full ARN as target needs no targetType (which the short id would)
        return {"name": ATTRIBUTE, "value": value, "targetId": instance.arn}


class Reactivator:
    """Sets the scaler's own reversible drains back to ACTIVE once their time has come."""

    def __init__(
        self,
        ecs: Any,
        cluster: str,
        directory: InstanceDirectory,
        board: NoticeBoard,
        marks: DrainMarks,
        metrics: Metrics,
        clock: Clock,
        interval: float,
        *,
        dry_run: bool = False,
        full_every: float | None = None,
    ) -> None:
        self._ecs = ecs
        self._cluster = cluster
        self._directory = directory
        self._board = board
        self._marks = marks
        self._metrics = metrics
        self._clock = clock
        self._interval = interval
        self._full_every = 5 * interval if full_every is None else full_every
        self._full_at: float | None = None  # monotonic time of the last full read of ours
        self._dry_run = dry_run
        self.leader: Leadership = Always()

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if self.leader.holds():
                    await self.check()
            except Exception:
                log.exception("reactivation check failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._interval)

    async def check(self) -> tuple[Undo, ...]:
        """One pass: undo the drains whose time has come; what was undone."""
        known = await self._instances()
        if known is None:
            return ()
        instances = {ci.ec2_instance_id: ci for ci in known}
        drained = [
            Drained(iid, ci.status, parse_mark(ci.drain_mark or ""))
            for iid, ci in sorted(instances.items())
            if ci.drain_mark
        ]
        undo = reactivations(drained, self._board.final, self._clock.now().timestamp())
        if not undo:
            return ()
        if self._dry_run:
            for u in undo:
                log.info("dry run: would reactivate", extra={"instance_id": u.instance_id})
            return undo
        activate = [instances[u.instance_id] for u in undo if u.activate]
        done = await self._activate(activate)
        cleared = [
            instances[u.instance_id] for u in undo if not u.activate or u.instance_id in done
        ]
        await self._marks.remove(cleared)
        for u in undo:
            if u.instance_id in done:
                self._metrics.reactivated.labels(u.reason).inc()
                log.info(
                    "reactivated: the warning did not come true",
                    extra={"instance_id": u.instance_id, "reason": u.reason},
                )
        for ci in cleared:
            status = "ACTIVE" if ci.ec2_instance_id in done else ci.status
            self._directory.update(replace(ci, status=status, version=0, drain_mark=""))
        return undo

    async def _instances(self) -> list[ContainerInstance] | None:
        """The container instances to judge (None: nothing can be marked; see the module
        docstring)."""
        age = self._directory.age()
        if age is not None and age <= self._interval:
            return self._directory.known()
        now = self._clock.monotonic()
        marked = any(ci.drain_mark for ci in self._directory.known())
        if not marked and self._full_at is not None and now - self._full_at < self._full_every:
            return None
        self._full_at = now
        return await self._directory.refresh()

    async def _activate(self, instances: Sequence[ContainerInstance]) -> set[str]:
        """Set ``instances`` ACTIVE; the EC2 ids of those ECS accepted."""
        done: set[str] = set()
        for start in range(0, len(instances), BATCH):
            chunk = instances[start : start + BATCH]
            reply = await self._ecs.update_container_instances_state(
                cluster=self._cluster,
                containerInstances=[ci.arn for ci in chunk],
                status="ACTIVE",
            )
            failed = {f.get("arn", "") for f in reply.get("failures", [])}
            for ci in chunk:
                if ci.arn in failed:
                    log.warning("reactivation refused", extra={"instance_id": ci.ec2_instance_id})
                else:
                    done.add(ci.ec2_instance_id)
        return done
