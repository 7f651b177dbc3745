"""Route each signal to the work it calls for, after checking it concerns this cluster.

Instance-level EC2 and Auto Scaling events arrive for every instance in the account and region,
so the first question for each is whether its instance is one of this cluster's container
instances (:class:`~scaler.aws.ecs.InstanceDirectory` answers from a cached map). ECS events carry
their cluster's ARN and are compared by name. Signals for other clusters are acknowledged and
counted as ``other_cluster``; signals the scaler does not act on are ``ignored``. A terminate
lifecycle action for an instance the cluster does not know is completed at once when its group is
the cluster's (:class:`~scaler.aws.lifecycle.ClusterGroups`), else it is another cluster's.

For the rest, :func:`scaler.plan.drain.decide` says what to do; this module carries it out:
drains and deregistrations before the message is acknowledged, and work that takes minutes
(following a lifecycle action, waiting for replacement capacity, waiting for the disruption
budget and room: :class:`~scaler.aws.drain_gate.DrainGate`, waiting for a spot warning's
surge: :class:`~scaler.aws.warning_surge.WarningSurge`) as a *follow-up*, which keeps the
message in flight without holding a handler slot.

A reversible drain (a rebalance recommendation's, a scheduled reboot's) is marked on the
container instance first (:class:`~scaler.aws.undrain.DrainMarks`), so the
:class:`~scaler.aws.undrain.Reactivator` can undo it later. A final signal (spot interruption
warning, lifecycle action, stopping or terminated, scheduled retirement) is noted on the notice
board and turns a marked instance's mark final, after its drain. With replicas, what is noted is
also shared with the leader, which may not be this replica (:mod:`scaler.aws.shared_notices`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from scaler.aws.drain_gate import DrainGate
from scaler.aws.drainer import Drainer
from scaler.aws.ecs import InstanceDirectory
from scaler.aws.intake import Outcome
from scaler.aws.lifecycle import ClusterGroups, LifecycleFollower
from scaler.aws.tasks import StandaloneRestarter
from scaler.aws.undrain import DrainMarks
from scaler.aws.warning_surge import WarningSurge
from scaler.clock import Clock
from scaler.events import (
    ContainerInstanceChange,
    Ignored,
    LifecycleTerminate,
    RebalanceRecommendation,
    ServicePlacementFailure,
    Signal,
    SpotInterruption,
    TaskStateChange,
    instance_ids,
)
from scaler.metrics import Metrics
from scaler.model import ContainerInstance, cluster_name_of
from scaler.notices import (
    CHANGED,
    FINAL,
    RECOMMENDATION,
    WARNING,
    NoticeBoard,
    SharedNotice,
    shared,
)
from scaler.plan.drain import (
    Action,
    Decision,
    Deregister,
    Drain,
    DrainPolicy,
    FollowLifecycle,
    GatedDrain,
    LifecycleAction,
    ReplaceThenDrain,
    SurgeThenDrain,
    decide,
    final_reason,
)
from scaler.plan.undrain import Mark
from scaler.replacement import ReplacementSource

log = logging.getLogger(__name__)

HANDLED = Outcome("handled")
OTHER_CLUSTER = Outcome("other_cluster")
IGNORED = Outcome("ignored")

EcsSignal = ContainerInstanceChange | TaskStateChange | ServicePlacementFailure
FollowUp = FollowLifecycle | ReplaceThenDrain | GatedDrain | SurgeThenDrain


@dataclass
class Workers:
    """The adapters the handler drives."""

    directory: InstanceDirectory
    drainer: Drainer
    lifecycle: LifecycleFollower
    replacements: ReplacementSource
    restarter: StandaloneRestarter | None = None
    board: NoticeBoard = field(default_factory=NoticeBoard)
    drained: Callable[[], None] = lambda: None  # wakes the capacity controller
    groups: ClusterGroups | None = None  # None: hooks of unknown instances are not completed
    marks: DrainMarks | None = None  # None: drains are not marked (and never undone)
    gate: DrainGate | None = None  # None: recommendation drains are not held
    share: Callable[[SharedNotice], Awaitable[None]] | None = None  # None: one replica
    # instance id -> its pool, as the capacity side last saw it (None: not known)
    pool_of: Callable[[str], str | None] = lambda _: None
    warning_surge: WarningSurge | None = None  # None: a warned instance drains at once
    heard: int = 0  # events taken for the cluster (the capacity controller's news)


class EventHandler:
    def __init__(
        self,
        cluster: str,
        workers: Workers,
        policy: DrainPolicy,
        clock: Clock,
        metrics: Metrics | None = None,
    ) -> None:
        self._cluster_name = cluster_name_of(cluster)
        self._w = workers
        self._policy = policy
        self._clock = clock
        self._metrics = metrics

    async def __call__(self, signal: Signal, received_at: datetime) -> Outcome:
        outcome = await self._handle(signal, received_at)
        if outcome not in (IGNORED, OTHER_CLUSTER):
            self._w.heard += 1
        return outcome

    async def _handle(self, signal: Signal, received_at: datetime) -> Outcome:
        if isinstance(signal, Ignored):
            return IGNORED
        if isinstance(signal, EcsSignal):
            return await self._ecs_signal(signal, received_at)
        members = await self._w.directory.resolve(instance_ids(signal))
        if not members:
            if isinstance(signal, LifecycleTerminate):
                return await self._unregistered(signal)
            return OTHER_CLUSTER
        notices = self._note(signal, members, received_at)
        self._count_interruptions(signal, members)
        decision = decide(signal, members, self._policy, self._clock.now())
        self._explain(signal, decision)
        if decision.defer is not None:
            await self._share(notices)
            return Outcome("deferred", retry_after=decision.defer)
        now_actions = [a for a in decision.actions if not isinstance(a, FollowUp)]
        # shared alongside the drains: a slow table must not delay them
        await _all([*(self._act(a, received_at) for a in now_actions), self._share(notices)])
        await self._restart_on_drained(signal, members, now_actions)
        await self._settle(signal, members, received_at)
        later = [a for a in decision.actions if isinstance(a, FollowUp)]
        if later:
            return Outcome("handled", follow_up=_all(self._follow(a, received_at) for a in later))
        return HANDLED

    async def _unregistered(self, signal: LifecycleTerminate) -> Outcome:
        """A terminate hook for an instance not (or no longer) in the cluster: completed at once
        if its group is the cluster's, or Auto Scaling would wait out the hook's timeout."""
        if self._w.groups is None or not await self._w.groups.serves(signal.group_name):
            return OTHER_CLUSTER
        action = LifecycleAction(
            signal.group_name, signal.hook_name, signal.token, signal.instance_id
        )
        log.info(
            "terminate lifecycle action for an instance not registered in the cluster",
            extra={"event_id": signal.event_id, "instance_id": signal.instance_id},
        )
        await self._w.lifecycle.complete_unregistered(action)
        return HANDLED

    def _note(
        self, signal: Signal, members: Mapping[str, ContainerInstance], received_at: datetime
    ) -> list[SharedNotice]:
        """Tell the capacity side: these instances' tasks are losing their place. Returns what
        was noted, for the other replicas."""
        at = (signal.time or received_at).timestamp()
        kinds: list[str] = []
        if isinstance(signal, SpotInterruption):
            kinds.append(WARNING)
        elif isinstance(signal, RebalanceRecommendation):
            kinds.append(RECOMMENDATION)
        if final_reason(signal) is not None:
            kinds.append(FINAL)
        notices = [shared(iid, kind, at) for iid in members for kind in kinds]
        self._w.board.merge(notices, float("-inf"))
        # the capacity controller prunes too, but it does not run without pools: bound it here
        self._w.board.prune(received_at.timestamp())
        return notices

    def _count_interruptions(
        self, signal: Signal, members: Mapping[str, ContainerInstance]
    ) -> None:
        """``scaler_interruptions_total``, by the pool, AZ and type of each warned instance."""
        if self._metrics is None or not isinstance(signal, SpotInterruption):
            return
        for iid, ci in members.items():
            self._metrics.interrupted(ci, self._w.pool_of(iid))

    async def _share(self, notices: Sequence[SharedNotice]) -> None:
        if self._w.share is not None:
            await _all(self._w.share(n) for n in notices)

    async def _settle(
        self, signal: Signal, members: Mapping[str, ContainerInstance], received_at: datetime
    ) -> None:
        """After a final signal, a reversible mark on its instances becomes final."""
        reason = final_reason(signal)
        if reason is None or self._w.marks is None:
            return
        at = (signal.time or received_at).timestamp()
        for ci in members.values():
            await self._w.marks.settle(ci, reason, at)

    def _explain(self, signal: Signal, decision: Decision) -> None:
        log.info(
            decision.why,
            extra={
                "event_id": signal.event_id,
                "kind": signal.KIND,
                "actions": [
                    f"{type(a).__name__}:{a.instance.ec2_instance_id}" for a in decision.actions
                ],
                "defer_s": decision.defer,
            },
        )

    async def _act(self, action: Action, received_at: datetime) -> None:
        if isinstance(action, Drain) and action.undo_at is not None:
            undo = action.undo_at.timestamp()
            await self._drain_marked(
                action.instance, action.reason, action.since, received_at, undo
            )
        elif isinstance(action, Drain):
            await self._drain(action.instance, action.reason, action.since or received_at)
        elif isinstance(action, Deregister):
            await self._w.drainer.deregister(action.instance, action.reason)

    async def _drain(self, instance: ContainerInstance, reason: str, since: datetime | None) -> str:
        """Drain ``instance``; returns the outcome (:meth:`~scaler.aws.drainer.Drainer.drain`)."""
        outcome = await self._w.drainer.drain(instance, reason, since)
        if outcome == "ok":
            self._w.drained()
        if self._w.restarter is not None and outcome in ("ok", "already", "dry_run"):
            await self._w.restarter.restart_all(instance)
        return outcome

    async def _restart_on_drained(
        self, signal: Signal, members: Mapping[str, ContainerInstance], done: Sequence[Action]
    ) -> None:
        """A warning for an instance already DRAINING still restarts its standalone tasks: a
        redelivered warning whose first try drained but failed to restart must finish the job
        (restarts are keyed on the task, so nothing runs twice)."""
        if self._w.restarter is None or not isinstance(signal, SpotInterruption):
            return
        drained_now = {a.instance.ec2_instance_id for a in done if isinstance(a, Drain)}
        for iid, ci in members.items():
            if ci.draining and iid not in drained_now:
                await self._w.restarter.restart_all(ci)

    async def _drain_marked(
        self,
        instance: ContainerInstance,
        reason: str,
        since: datetime | None,
        received_at: datetime,
        undo_at: float,
    ) -> str:
        """A reversible drain: marked first, so that it can be told from others' and undone."""
        if self._w.marks is not None:
            now = self._clock.now().timestamp()
            instance = await self._w.marks.put(instance, Mark(reason, now, undo_at))
        return await self._drain(instance, reason, since or received_at)

    async def _follow(self, action: FollowUp, received_at: datetime) -> None:
        if isinstance(action, FollowLifecycle):
            await self._w.lifecycle.follow(action.action, action.instance)
        elif isinstance(action, GatedDrain):
            await self._gated_drain(action.instance, action.reason, action.since, received_at)
        elif isinstance(action, SurgeThenDrain):
            await self._surge_then_drain(action, received_at)
        else:
            await self._replace_then_drain(action, received_at)

    async def _gated_drain(
        self,
        instance: ContainerInstance,
        reason: str,
        since: datetime | None,
        received_at: datetime,
    ) -> None:
        """A recommendation drain: once the gate admits it (and, with the warning surge, once its
        services' replacements are healthy, ``SCALER_REPLACEMENT_TIMEOUT`` at the latest),
        marked to be undone after ``SCALER_UNDRAIN_AFTER`` unless a final signal comes first."""
        iid = instance.ec2_instance_id
        raised = since or received_at
        gate = self._w.gate
        draining = False  # is the instance DRAINING after this? (its budget slot is kept)
        try:
            if not await self._admitted(instance, raised.timestamp()):
                return
            current = (await self._w.directory.resolve([iid])).get(iid)
            if current is None or current.draining:
                draining = current is not None
                return
            undo_at = self._clock.now() + timedelta(seconds=self._policy.undrain_after)
            outcome = await self._drain_marked(
                current, reason, since, received_at, undo_at.timestamp()
            )
            draining = outcome in ("ok", "already")
        finally:
            if gate is not None:
                await gate.done(iid, draining)

    async def _admitted(self, instance: ContainerInstance, raised: float) -> bool:
        """Wait for the gate's admission and, with the warning surge, the services'
        replacements; True once both hold and the budget still holds the drain (the surge may
        take minutes, and spot shrink the cluster meanwhile: then it waits again)."""
        gate = self._w.gate
        while True:
            if gate is not None and not await gate.wait(instance, raised):
                return False
            if self._w.warning_surge is not None:  # replacements first, as at a warning
                deadline = self._clock.now().timestamp() + self._policy.replacement_timeout
                await self._w.warning_surge.hold_until(instance, deadline)
            if gate is None or await gate.confirm(instance.ec2_instance_id):
                return True

    async def _surge_then_drain(self, action: SurgeThenDrain, received_at: datetime) -> None:
        """A spot warning's drain, once the warning surge lets it go (at once without one)."""
        iid = action.instance.ec2_instance_id
        instance = action.instance
        since: datetime | None = action.since or received_at
        if self._w.warning_surge is not None:
            self._w.drained()  # the capacity controller plans for the warned instance now
            if await self._w.warning_surge.hold(action.instance, action.warned_at.timestamp()):
                since = None  # late on purpose: not a slow drain (the drain latency metric)
            current = (await self._w.directory.resolve([iid])).get(iid)
            if current is None or current.draining:
                return
            instance = current
        await self._drain(instance, action.reason, since)

    async def _replace_then_drain(self, action: ReplaceThenDrain, received_at: datetime) -> None:
        context = {"instance_id": action.instance.ec2_instance_id}
        try:
            async with asyncio.timeout(action.timeout):
                ready = await self._w.replacements.replace(action.instance, action.reason)
        except TimeoutError:
            ready = False
        log.info(
            "replacement ready" if ready else "no replacement ready; draining anyway", extra=context
        )
        current = await self._w.directory.resolve([action.instance.ec2_instance_id])
        instance = current.get(action.instance.ec2_instance_id)
        if instance is not None:
            await self._gated_drain(instance, action.reason, action.since, received_at)

    async def _ecs_signal(self, signal: EcsSignal, received_at: datetime) -> Outcome:
        if cluster_name_of(signal.cluster_arn) != self._cluster_name:
            return OTHER_CLUSTER
        if isinstance(signal, ContainerInstanceChange) and signal.ec2_instance_id:
            self._w.directory.update(
                ContainerInstance(
                    arn=signal.container_instance_arn,
                    ec2_instance_id=signal.ec2_instance_id,
                    status=signal.status,
                    version=signal.version,
                )
            )
        await self._changed(signal, received_at)
        return HANDLED

    async def _changed(self, signal: EcsSignal, received_at: datetime) -> None:
        """An ECS event for the cluster: noted on the board and shared, so the leader's quiet
        capacity cycles end whichever replica took it (:mod:`scaler.capacity.quiet`)."""
        subject = getattr(signal, "ec2_instance_id", "") or getattr(signal, "service_arn", "")
        if not subject:
            return
        notices = [shared(subject, CHANGED, (signal.time or received_at).timestamp())]
        self._w.board.merge(notices, float("-inf"))
        await self._share(notices)


async def _all(work: Iterable[Awaitable[object]]) -> None:
    """Run every awaitable in ``work`` to the end; then raise the first failure, if any."""
    results = await asyncio.gather(*work, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
