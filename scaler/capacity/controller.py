"""The capacity controller: one cycle reads, plans, acts, and gives back, through its ports.

:class:`CapacityController` runs :func:`scaler.plan.capacity.plan_capacity` every
``SCALER_CAPACITY_INTERVAL`` seconds and whenever the handler drained something (:attr:`wake`).
Each cycle, at its clock's time:

1. **read**: the :class:`~scaler.capacity.ports.Reader` observes pools, instances and services;
   notices, shortfalls and failed launches mark their pools as troubled
   (:mod:`scaler.capacity.troubles`), and what the groups replaced by themselves is noted;
2. **plan and apply**: the :class:`~scaler.capacity.ports.Actuator` launches, sets overflow
   companions, evacuates and returns to spot, then gives back what groups did not replace;
3. **replace and give back** (with EC2's facts read): roll out-of-date instances
   (:mod:`scaler.capacity.roll`), move off Spot Fleets, terminate what the scaler drained and is
   empty, trim what groups launched by themselves, give back what stood idle, consolidate
   (:mod:`scaler.capacity.scale_in`).

After a cycle that left the cluster settled, the next cycles are quiet while nothing changes
(:mod:`scaler.capacity.quiet`): a probe of a few calls, no read, no plan.

The controller imports no AWS library and reads no wall clock: the same controller runs against
AWS and against a simulated AWS in virtual time, each plugging in its adapters and clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable

from scaler.aws.replaced import GroupState, Replacements
from scaler.capacity import LOGGER
from scaler.capacity.observed import Observed, group_members
from scaler.capacity.ports import (
    Actuator,
    Consolidation,
    FleetMigration,
    Leader,
    Reader,
    ServiceSurges,
)
from scaler.capacity.quiet import QUIET_CYCLES, Quiet, ripens, unsettled
from scaler.capacity.roll import PreDrainSurge, RollMemory, carry_out
from scaler.capacity.scale_in import consolidate, retire_drained, scale_in_idle, trim_surplus
from scaler.capacity.troubles import noticed, owing, short, unlaunched
from scaler.clock import Clock, SystemClock
from scaler.lifetimes import Lifetimes
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
from scaler.plan.scale_in import idle_since

log = logging.getLogger(LOGGER)

ASK_FOLLOW_UP = 10.0  # seconds before a group's scaling activities are read after an ask


class CapacityController:
    """Plans capacity periodically and on demand; remembers troubled pools."""

    def __init__(
        self,
        reader: Reader,
        actuator: Actuator,
        board: NoticeBoard,
        policy: CapacityPolicy,
        metrics: Metrics,
        interval: float,
        roll: RollPolicy | None = None,
        consolidator: Consolidation | None = None,
        migration: FleetMigration | None = None,
        clock: Clock | None = None,
        surges: ServiceSurges | None = None,
        scale_in_after: float | None = None,
    ) -> None:
        self._reader = reader
        self._actuator = actuator
        self._board = board
        self._policy = policy
        self._metrics = metrics
        self._interval = interval
        self._clock = clock or SystemClock()  # each cycle's time
        self.memory = CapacityMemory()
        self.lifetimes = Lifetimes(metrics)  # instances joining and leaving, timed
        self.wake = asyncio.Event()
        self.last_plan: CapacityPlan | None = None
        self.cycles = 0  # completed cycles
        self.ready_at = -1  # the last cycle after which no capacity was missing or coming
        self._changed = asyncio.Condition()
        self._roll_policy = roll  # None: out-of-date instances are left alone
        self.roll = RollMemory()
        self.surges = surges  # None: the roll drains without raising counts first
        self.consolidator = consolidator  # None: no scale-in by consolidation
        self.migration = migration  # None: no Spot Fleet to move off
        self.scale_in_after = scale_in_after  # None: idle instances are kept
        self.idle: dict[str, float] = {}  # instance -> since when it has been idle
        # notices other replicas heard, merged into the board each cycle (None: one replica)
        self.shared: Callable[[NoticeBoard, float], Awaitable[None]] | None = None
        self.news: Callable[[], int] = lambda: 0  # events the handler took for the cluster
        self.quiet: Quiet | None = None  # what a settled cycle left (None: none settled)
        self._read_marks: tuple[object, ...] = ()  # the news when the last read began

    @property
    def replacements(self) -> Replacements:
        """What the Auto Scaling groups replace by themselves (:mod:`scaler.aws.replaced`)."""
        return self._actuator.replacements

    @property
    def leader(self) -> Leader:
        """With two replicas, only the leader tops up; the actuator checks the lease before each
        call that changes something, so a leader that loses it mid-cycle stops there."""
        return self._actuator.leader

    @leader.setter
    def leader(self, leader: Leader) -> None:
        self._actuator.leader = leader
        if self.surges is not None:
            self.surges.leader = leader

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            woken = self.wake.is_set()
            self.wake.clear()  # a wake during the cycle below triggers the next one at once
            try:
                if not self.leader.holds():
                    self.quiet = None  # another replica may act meanwhile
                elif woken or not await self.quiet_cycle():
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
        """One cycle at the clock's time; the capacity plan it carried out."""
        now = self._clock.now().timestamp()
        before = self._actuator.acted
        self.quiet = None
        observed = await self._read(now)
        plan = plan_capacity(observed.snapshot, self.memory, self._policy)
        for reason in plan.reasons:
            log.info("capacity decision", extra={"reason": reason})
        acted = self._actuator.acted
        self.last_plan = plan  # from before its launches: what they carry out
        await self._apply(plan, observed, now)
        await self._replace_and_give_back(observed, plan, acted)
        self._observe(observed.snapshot, plan, observed.stale)
        self._record(observed)
        self._metrics.capacity_cycles.labels("full").inc()
        self.quiet = self._settled(observed, plan, self._actuator.acted != before)
        await self._done(observed.snapshot, plan)
        return plan

    async def quiet_cycle(self) -> bool:
        """A quiet cycle, if the last cycle left the cluster settled and nothing it reads has
        changed since (:mod:`scaler.capacity.quiet`): nothing is read but the probe, nothing
        planned, and the cycle counts as one that found nothing missing or coming. False: a
        full cycle is due."""
        quiet, now = self.quiet, self._clock.now().timestamp()
        if quiet is None or now >= quiet.until:
            return False
        await self._pull_board(now)
        if self._marks() != quiet.marks or not await self._probe(now):
            return False
        self._metrics.capacity_cycles.labels("quiet").inc()
        await self._count(ready=True)
        return True

    async def _probe(self, now: float) -> bool:
        """The reader's probe; a probe that fails (throttled, say) calls for a full cycle."""
        try:
            return await self._reader.unchanged(now)
        except Exception as exc:
            log.warning("capacity probe failed: a full cycle instead", extra={"error": repr(exc)})
            return False

    def _marks(self) -> tuple[object, ...]:
        """What any news changes: the board, the handler's count of events, the actuator's of
        changes."""
        board = self._board
        kinds = (board.ends, board.noticed, board.final, board.changed)
        return (tuple(tuple(sorted(d.items())) for d in kinds), self.news(), self._actuator.acted)

    def _settled(self, observed: Observed, plan: CapacityPlan, changed: bool) -> Quiet | None:
        """What the next cycles compare to be quiet, if this one left the cluster settled."""
        now = observed.snapshot.now
        rolling = self._roll_policy is not None or self.migration is not None
        asked = owing(self._actuator.asked, observed)
        why = unsettled(observed, plan, changed, asked, rolling)
        if why is not None:
            log.debug("capacity cycle not settled", extra={"reason": why})
            return None
        others = [now + QUIET_CYCLES * self._interval, *self.replacements.turns()]
        if self.consolidator is not None:
            others.append(self.consolidator.stands_until(now))
        until = ripens(now, self.memory, self._policy, self.idle, self.scale_in_after, others)
        return Quiet(self._read_marks, until)

    async def _read(self, now: float) -> Observed:
        """What the reader observes, with the board pruned and shared, troubles remembered and
        what the groups replaced by themselves noted."""
        await self._pull_board(now)
        # what news had come when the read began: news during the cycle ends the quiet after it
        self._read_marks = self._marks()
        observed = await self._reader.read(now)
        snap = observed.snapshot
        managed = {p.name for p in snap.pools if p.managed}
        self.idle = idle_since(snap, managed, self.idle)
        self.lifetimes.observe(observed.snapshot.nodes, observed.instances.values(), now)
        self._remember_troubles(observed, now, await self._failed_launches(observed))
        for name, members in group_members(observed).items():
            self.replacements.observe(name, members, now)
        return observed

    async def _apply(self, plan: CapacityPlan, observed: Observed, now: float) -> None:
        await self._actuator.apply(plan, observed, now)
        await self._actuator.give_back(plan, observed, now)
        if self._actuator.shortfalls:
            self.wake.set()  # plan again at once: the next plan turns to other pools, on-demand
        self._note_shortfalls({p.name for p in observed.snapshot.pools if p.capacity == SPOT})

    async def _replace_and_give_back(
        self, observed: Observed, plan: CapacityPlan, acted: int
    ) -> None:
        """Roll, migrate, retire, trim and consolidate, once EC2's facts were read;
        consolidation not in a cycle that changed anything (``acted``: the actuator's count
        before it): its snapshot no longer says what runs where."""
        if observed.facts is None:
            return
        migrating = self.migration is not None and self.migration.state.in_flight > 0
        if self._roll_policy is not None and not plan.release and not migrating:
            await self._roll(observed, self._roll_policy)
        await self._migrate(observed, plan)
        await retire_drained(observed, observed.facts, self._actuator, self._metrics)
        await trim_surplus(observed, plan, self._actuator, self.memory, self._policy)
        if self.scale_in_after is not None:
            await scale_in_idle(
                observed,
                plan,
                self._actuator,
                self.memory,
                self._policy,
                self.idle,
                self.scale_in_after,
            )
        if self.consolidator is not None and self._actuator.acted == acted:
            await consolidate(
                observed, observed.facts, plan, self.consolidator, self._actuator, self.memory
            )

    async def _done(self, snap: CapacitySnapshot, plan: CapacityPlan) -> None:
        """Count the cycle; ready once nothing is missing or coming."""
        pools = {p.name: p for p in snap.pools}
        launching = any(n.status == "launching" for n in snap.nodes)
        await self._count(ready=not plan.launches(pools) and not launching)

    async def _count(self, ready: bool) -> None:
        """One more cycle, which found nothing missing or coming if ``ready``."""
        async with self._changed:
            self.cycles += 1
            if ready:
                self.ready_at = self.cycles
            self._changed.notify_all()

    async def _pull_board(self, now: float) -> None:
        """The board pruned, with the notices other replicas shared merged in."""
        self._board.prune(now)
        if self.shared is not None:
            await self.shared(self._board, now)

    async def _roll(self, observed: Observed, policy: RollPolicy) -> None:
        """Replace out-of-date instances (:mod:`scaler.aws.roll`): launch, drain, retire."""
        snap = observed.snapshot
        plan = self.roll.plan(snap, observed.drift, self.memory, policy, self._blocked(observed))
        for reason in plan.reasons:
            log.info("roll decision", extra={"reason": reason})
        surge = None
        if self.surges is not None:
            surge = PreDrainSurge(self.surges, self.roll, policy)
        self.roll.state = await carry_out(
            plan, observed, self._actuator, "drift", self.roll.launched_at, surge
        )

    async def _migrate(self, observed: Observed, plan: CapacityPlan) -> None:
        """Replace Spot Fleet instances (:mod:`scaler.aws.migration`), after any roll."""
        if self.migration is None or plan.release:
            return
        if observed.drift.outdated or self.roll.state.in_flight:
            observed.migrating = frozenset({"(after the roll)"})
            return
        blocked = self._blocked(observed)
        fleets = await self.migration.step(
            observed, self._actuator, self.memory, self._policy, blocked
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

    def _record(self, observed: Observed) -> None:
        """What this cycle left each Auto Scaling group at, for the next to compare with."""
        doomed = {n.id for n in observed.snapshot.nodes if n.doomed}
        for name, members in group_members(observed).items():
            state = GroupState(members, members & doomed, observed.desired.get(name, 0))
            self.replacements.record(name, state)

    def _note_shortfalls(self, spot: set[str]) -> None:
        """Template pools EC2 Fleet could not fill are out of capacity (cooled down)."""
        self.memory = short(self.memory, self._actuator.shortfalls, spot)

    async def _failed_launches(self, observed: Observed) -> dict[str, str]:
        """Why each group still owing what it was asked for could not launch it, where its
        scaling activities say so (a failed read waits for the next cycle)."""
        groups = owing(self._actuator.asked, observed)
        if not groups:
            return {}
        try:
            return await self._reader.failed_launches(groups)
        except Exception as exc:
            log.warning("scaling activities not read", extra={"error": repr(exc)})
            return {}

    def _remember_troubles(self, observed: Observed, now: float, failed: dict[str, str]) -> None:
        """Notices and recommendations mark their spot pool; a group that could not start what
        it was asked for, or has not started it in time, is out of capacity (cooled down too),
        and the plan turns to other pools at once (:mod:`scaler.capacity.troubles`)."""
        spot = {p.name for p in observed.snapshot.pools if p.capacity == SPOT}
        self.memory = noticed(self.memory, self._board, observed)
        self._note_shortfalls(spot)
        asked = self._actuator.asked
        self.memory = unlaunched(self.memory, asked, observed, now, failed, spot)

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
