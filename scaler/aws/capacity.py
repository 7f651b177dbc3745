"""Capacity top-up in AWS: the capacity controller, on the AWS reader and actuator.

:class:`CapacityController` runs :func:`scaler.plan.capacity.plan_capacity` every
``SCALER_CAPACITY_INTERVAL`` seconds and whenever the handler drained something, on what
:class:`~scaler.aws.capacity_reader.CapacityReader` reads, and has
:class:`~scaler.aws.capacity_actuator.CapacityActuator` carry the plans out. It remembers troubled
pools, rolls out-of-date instances, moves off Spot Fleets, terminates what the scaler drained by
its own choice once empty, trims what groups launched by themselves, and consolidates.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from scaler.aws.capacity_actuator import CapacityActuator
from scaler.aws.capacity_reader import CapacityReader
from scaler.aws.consolidation import Consolidator, unsettled
from scaler.aws.lease import Leadership
from scaler.aws.migration import Migration, migrate
from scaler.aws.replaced import GroupState, Replacements
from scaler.aws.retiring import (
    REASONS,
    SURPLUS,
    Ec2Facts,
    retiring,
)
from scaler.aws.roll import RollMemory, carry_out
from scaler.capacity.observed import (
    Observed,
    balanced,
    draining,
    group_members,
    note_retiring,
    spare,
)
from scaler.metrics import Metrics
from scaler.notices import NoticeBoard
from scaler.plan.capacity import (
    ON_DEMAND,
    SPOT,
    CapacityMemory,
    CapacityPlan,
    CapacityPolicy,
    CapacitySnapshot,
    NodeView,
    deficit,
    plan_capacity,
)
from scaler.plan.roll import RollPolicy
from scaler.plan.scale_in import launches_after
from scaler.settings import Settings

log = logging.getLogger(__name__)


def policy_from(settings: Settings) -> CapacityPolicy:
    return CapacityPolicy(
        headroom=settings.headroom,
        headroom_cpu=settings.headroom_cpu,
        headroom_memory=settings.headroom_memory,
        headroom_per_az=settings.headroom_per_az,
        pool_cooldown=settings.pool_cooldown,
        max_on_demand=settings.max_on_demand,
        max_overflow_tasks=settings.max_overflow_tasks,
        max_hourly_spend=settings.max_hourly_spend,
        revert_after=settings.revert_after,
        revert_batch=settings.revert_batch,
        evacuate_lead=settings.evacuate_lead,
        on_demand_base=settings.on_demand_base,
        on_demand_percent=settings.on_demand_percent,
    )


LAUNCH_GRACE = 240.0  # seconds a group may take to start what it was asked for
ASK_FOLLOW_UP = 10.0  # seconds before a group's scaling activities are read after an ask


class CapacityController:
    """Plans capacity periodically and on demand; remembers troubled pools."""

    def __init__(
        self,
        reader: CapacityReader,
        actuator: CapacityActuator,
        board: NoticeBoard,
        policy: CapacityPolicy,
        metrics: Metrics,
        interval: float,
        roll: RollPolicy | None = None,
        consolidator: Consolidator | None = None,
        migration: Migration | None = None,
    ) -> None:
        self._reader = reader
        self._actuator = actuator
        self._board = board
        self._policy = policy
        self._metrics = metrics
        self._interval = interval
        self.memory = CapacityMemory()
        self.wake = asyncio.Event()
        self.last_plan: CapacityPlan | None = None
        self.cycles = 0  # completed cycles
        self.ready_at = -1  # the last cycle after which no capacity was missing or coming
        self._changed = asyncio.Condition()
        self._roll_policy = roll  # None: out-of-date instances are left alone
        self.roll = RollMemory()
        self.consolidator = consolidator  # None: no scale-in by consolidation
        self.migration = migration  # None: no Spot Fleet to move off
        # notices other replicas heard, merged into the board each cycle (None: one replica)
        self.shared: Callable[[NoticeBoard, float], Awaitable[None]] | None = None

    @property
    def replacements(self) -> Replacements:
        """What the Auto Scaling groups replace by themselves (:mod:`scaler.aws.replaced`)."""
        return self._actuator.replacements

    @property
    def leader(self) -> Leadership:
        """With two replicas, only the leader tops up; the actuator checks the lease before each
        call that changes something, so a leader that loses it mid-cycle stops there."""
        return self._actuator.leader

    @leader.setter
    def leader(self, leader: Leadership) -> None:
        self._actuator.leader = leader

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.wake.clear()  # a wake during the cycle below triggers the next one at once
            try:
                if self.leader.holds():
                    await self.cycle()
            except Exception:
                log.exception("capacity cycle failed")
            waiters = {asyncio.create_task(stop.wait()), asyncio.create_task(self.wake.wait())}
            # a group asked to launch shows a failed launch within seconds: look again soon
            pause = min(self._interval, ASK_FOLLOW_UP) if self._actuator.asked else self._interval
            await asyncio.wait(waiters, timeout=pause, return_when="FIRST_COMPLETED")
            for w in waiters:
                w.cancel()

    async def ready_after(self, cycle: int) -> None:
        """Wait for a cycle that started after ``cycle`` to find nothing missing or coming."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.ready_at > cycle)

    async def cycle(self) -> CapacityPlan:
        now = time.time()
        self._board.prune(now)
        if self.shared is not None:
            await self.shared(self._board, now)
        observed = await self._reader.read(now)
        self._remember_troubles(observed, now, await self._failed_launches(observed, now))
        for name, members in group_members(observed).items():
            self.replacements.observe(name, members, now)
        plan = plan_capacity(observed.snapshot, self.memory, self._policy)
        for reason in plan.reasons:
            log.info("capacity decision", extra={"reason": reason})
        acted = self._actuator.acted
        await self._actuator.apply(plan, observed, now)
        await self._actuator.give_back(plan, observed, now)
        if self._actuator.shortfalls:
            self.wake.set()  # plan again at once: the next plan turns to other pools, on-demand
        self._note_shortfalls({p.name for p in observed.snapshot.pools if p.capacity == SPOT})
        if observed.facts is not None:
            migrating = self.migration is not None and self.migration.state.in_flight > 0
            if self._roll_policy is not None and not plan.release and not migrating:
                await self._roll(observed, self._roll_policy)
            await self._migrate(observed, plan)
            await self._retire(observed, observed.facts)
            await self._trim(observed, plan)
            # not in a cycle that changed anything: its snapshot no longer says what runs where
            if self.consolidator is not None and self._actuator.acted == acted:
                await self._consolidate(observed, observed.facts, plan, self.consolidator)
        self._observe(observed.snapshot, plan, observed.stale)
        self._record(observed)
        self.last_plan = plan
        pools = {p.name: p for p in observed.snapshot.pools}
        launching = any(n.status == "launching" for n in observed.snapshot.nodes)
        async with self._changed:
            self.cycles += 1
            if not plan.launches(pools) and not launching:
                self.ready_at = self.cycles
            self._changed.notify_all()
        return plan

    async def _roll(self, observed: Observed, policy: RollPolicy) -> None:
        """Replace out-of-date instances (:mod:`scaler.aws.roll`): launch, drain, retire."""
        snap = observed.snapshot
        plan = self.roll.plan(snap, observed.drift, self.memory, policy, self._blocked(observed))
        for reason in plan.reasons:
            log.info("roll decision", extra={"reason": reason})
        self.roll.state = await carry_out(
            plan, observed, self._actuator, "drift", self.roll.launched_at
        )

    async def _migrate(self, observed: Observed, plan: CapacityPlan) -> None:
        """Replace Spot Fleet instances (:mod:`scaler.aws.migration`), after any roll."""
        if self.migration is None or plan.release:
            return
        if observed.drift.outdated or self.roll.state.in_flight:
            observed.migrating = frozenset({"(after the roll)"})
            return
        fleets = await migrate(
            self.migration,
            observed,
            self._actuator,
            self.memory,
            self._policy,
            self._blocked(observed),
        )
        if fleets is None:  # read again next cycle; consolidation judges on the rest
            return
        registered = {n.id for n in observed.snapshot.nodes}
        observed.migrating = fleets.remaining & registered  # the others are left alone
        observed.facts = {**(observed.facts or {}), **fleets.facts}

    def _blocked(self, observed: Observed) -> frozenset[str]:
        """Groups not to ask for replacements now: those still owing instances they were asked
        for (asking again would only raise their desired capacity), or cooling after trouble."""
        snap = observed.snapshot
        return frozenset(
            p.name
            for p in snap.pools
            if observed.desired.get(p.name, 0) > observed.live.get(p.name, 0)
            or self.memory.cooling(p.name, snap.now, self._policy.pool_cooldown)
        )

    async def _retire(self, observed: Observed, facts: dict[str, Ec2Facts]) -> None:
        """Terminate the instances drained by the scaler's own choice (tagged retiring) once
        they hold no task of any status; count those still on their way out."""
        snap = observed.snapshot
        managed = {p.name for p in snap.pools if p.managed}
        leaving: Counter[str] = Counter()
        for n in snap.nodes:
            reason = facts[n.id].retiring if n.id in facts else None
            if reason is None or n.status != "DRAINING" or facts[n.id].gone:
                continue
            # a Spot Fleet's instance (not in a group) is the migration's to retire
            ours = n.pool in managed and not n.tasks
            if not (
                ours
                and await self._actuator.empty(observed.instances.get(n.id))
                and await self._actuator.retire(n.id, n.pool, reason, observed)
            ):
                leaving[reason] += 1
        for reason in REASONS:
            self._metrics.retiring.labels(reason).set(leaving[reason])

    async def _consolidate(
        self,
        observed: Observed,
        facts: dict[str, Ec2Facts],
        plan: CapacityPlan,
        consolidator: Consolidator,
    ) -> None:
        """Drain the instances consolidation can give back (:mod:`scaler.aws.consolidation`)."""
        snap = observed.snapshot
        ours = frozenset(
            n.id
            for n in snap.nodes
            if n.status == "DRAINING" and n.id in retiring(facts, "consolidation")
        )
        stale = observed.drift.outdated | observed.migrating
        if not consolidator.due(snap.now) or unsettled(snap, plan, ours, stale):
            return
        try:
            chosen = await consolidator.plan(snap, facts, self.memory, ours)
        except Exception:
            log.exception("consolidation plan failed: nothing drained this time")
            return
        for reason in chosen.reasons:
            log.info("consolidation decision", extra={"reason": reason})
        allowed = balanced(observed, spare(observed, [r.instance for r in chosen.remove]))
        for removal in chosen.remove:
            if removal.instance not in allowed:
                continue
            ci = observed.instances.get(removal.instance)
            if ci is None or not await self._actuator.mark_retiring(
                removal.instance, "consolidation"
            ):
                continue
            if await self._actuator.drain(ci, "consolidation"):
                consolidator.drained_at.append(snap.now)

    async def _trim(self, observed: Observed, plan: CapacityPlan) -> None:
        """Drain, for each surplus a group launched by itself (:mod:`scaler.aws.replaced`), one
        of its instances that runs no task, is not leaving and that the plan would not launch
        back; the cycle then terminates it with the desired capacity decremented."""
        snap = observed.snapshot
        pools = {p.name: p for p in snap.pools}
        if plan.launches(pools) or plan.release:
            return
        for name in sorted(observed.min_size):
            for _ in range(self.replacements.excess(name)):
                node = self._spare_empty(observed, name)
                ci = observed.instances.get(node) if node else None
                if node is None or ci is None:
                    break
                if not await self._actuator.mark_retiring(node, SURPLUS):
                    break
                if not await self._actuator.drain(ci, SURPLUS):
                    break
                self.replacements.removed(name)
                note_retiring(observed, node, SURPLUS)  # spare() counts it from now on
                observed.snapshot = draining(observed.snapshot, node)

    def _spare_empty(self, observed: Observed, group: str) -> str | None:
        """An ACTIVE instance of ``group`` running no task, whose group can spare it and whose
        loss the capacity plan would not launch back; None if there is none."""
        snap = observed.snapshot
        empty = sorted(
            n.id
            for n in snap.nodes
            if n.pool == group and n.status == "ACTIVE" and not n.doomed and n.tasks == 0
        )
        for node in spare(observed, empty):
            if not balanced(observed, [node]):
                continue
            if not launches_after(snap, self.memory, self._policy, frozenset({node})):
                return node
        return None

    def _record(self, observed: Observed) -> None:
        """What this cycle left each Auto Scaling group at, for the next to compare with."""
        doomed = {n.id for n in observed.snapshot.nodes if n.doomed}
        for name, members in group_members(observed).items():
            state = GroupState(members, members & doomed, observed.desired.get(name, 0))
            self.replacements.record(name, state)

    def _note_shortfalls(self, spot: set[str]) -> None:
        """Template pools EC2 Fleet could not fill are out of capacity (cooled down)."""
        for name, at in sorted(self._actuator.shortfalls.items()):
            log.warning("pool out of capacity: avoiding it", extra={"group": name})
            self.memory = self.memory.failing(name, at, spot=name in spot)
        self._actuator.shortfalls.clear()

    async def _failed_launches(self, observed: Observed, now: float) -> dict[str, str]:
        """Why each group still owing what it was asked for could not launch it, where its
        scaling activities say so (a failed read waits for the next cycle)."""
        owing = {
            name: since
            for name, (target, since) in self._actuator.asked.items()
            if observed.live.get(name, 0) < target
        }
        if not owing:
            return {}
        try:
            return await self._reader.failed_launches(owing)
        except Exception as exc:
            log.warning("scaling activities not read", extra={"error": repr(exc)})
            return {}

    def _remember_troubles(self, observed: Observed, now: float, failed: dict[str, str]) -> None:
        """Notices and recommendations mark their spot pool; a group that could not start what
        it was asked for (its scaling activities say a launch failed), or has not started it
        within ``LAUNCH_GRACE``, is out of capacity (cooled down too), and the plan turns to
        other pools at once."""
        snap = observed.snapshot
        spot = {p.name for p in snap.pools if p.capacity == SPOT}
        pool_of = {n.id: n.pool for n in snap.nodes if n.pool in spot}
        for iid, at in self._board.noticed.items():
            if iid in pool_of:
                self.memory = self.memory.noting(pool_of[iid], at)
        self._note_shortfalls(spot)
        for name, (target, since) in list(self._actuator.asked.items()):
            if observed.live.get(name, 0) >= target:
                del self._actuator.asked[name]
            elif name in failed:
                log.warning(
                    "group could not launch what it was asked for: avoiding it",
                    extra={"group": name, "asked": target, "why": failed[name]},
                )
                self.memory = self.memory.failing(name, now, spot=name in spot)
                del self._actuator.asked[name]
            elif now - since > LAUNCH_GRACE:
                log.warning(
                    "group did not launch what it was asked for: avoiding it",
                    extra={"group": name, "asked": target, "live": observed.live.get(name)},
                )
                self.memory = self.memory.failing(name, now, spot=name in spot)
                del self._actuator.asked[name]

    def _observe(
        self, snap: CapacitySnapshot, plan: CapacityPlan, stale: tuple[NodeView, ...]
    ) -> None:
        cpu, mem = deficit(snap, self._policy)
        self._metrics.deficit.labels("cpu").set(cpu)
        self._metrics.deficit.labels("memory").set(mem)
        counts = Counter(n.capacity for n in snap.nodes if not n.doomed)
        for capacity in (SPOT, ON_DEMAND):
            self._metrics.capacity.labels(capacity).set(counts[capacity])
        self._metrics.capacity.labels("fargate").set(sum(plan.overflow_targets.values()))
        self._metrics.fallback_active.set(1 if counts[ON_DEMAND] else 0)
        self._metrics.stale_draining.set(len(stale))
        for companion, desired in plan.overflow_targets.items():
            self._metrics.overflow_tasks.labels(companion).set(desired)
