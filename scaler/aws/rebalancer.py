"""Carry out task rebalancing: plan on the live cluster, stop the chosen tasks, check the result.

Every ``SCALER_REBALANCE_INTERVAL`` seconds (with ``SCALER_TASK_REBALANCE=true``) the controller
builds the model of the live cluster (:mod:`scaler.aws.live`), asks
:func:`scaler.plan.rebalance.plan_moves` for moves, and stops each chosen task with a reason that
says why (``StopTask``; the service scheduler starts the replacement). At the next cycle it looks
for each move's replacement and records whether it landed where the placement model predicted.

A *surge* move (for a service that may not lose a task, ``minimumHealthyPercent`` 100) raises
the service's desired count by one (``UpdateService``); while surges are pending the controller
looks every ``SURGE_POLL`` seconds, and once the service has the extra healthy task it stops the
hot task and sets the desired count back. Healthy is not RUNNING: a task counts once ECS can
vouch for it (:mod:`scaler.ecs.health`: ``healthStatus`` HEALTHY, or without container health
checks RUNNING for the service's grace period; behind a load balancer, long enough for its
target's health checks too), as the live model's ``Task.healthy`` tells. It sets the count back
only if it is still its own (an autoscaler or an operator may have changed it meanwhile); a
surge whose task is gone, or that waited ``GIVE_UP_AFTER`` seconds, is undone the same way.

A replacement never goes where the capacity side is giving capacity back: while idle scale-in
(``SCALER_SCALE_IN_AFTER``) or consolidation is on, the planner plans no move ECS could place on
an instance running no service task (their candidates), nor on one tagged retiring
(:mod:`scaler.aws.retiring`; read from EC2 only while some instance is hot, and passed to the
planner as ``leaving``).

In dry-run the moves are logged and counted, and nothing is stopped or scaled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from scaler.aws import retiring
from scaler.aws import surges as surge_marks
from scaler.aws.clients import AwsClients, error_code
from scaler.aws.lease import Always, Leadership
from scaler.aws.live import LiveCluster, live_cluster, with_measured_cpu
from scaler.aws.services import Definitions
from scaler.clock import Clock, SystemClock
from scaler.ecs.cluster import ACTIVE, Task
from scaler.metrics import Metrics
from scaler.plan.cooldown import MoveHistory
from scaler.plan.rebalance import Move, RebalancePlan, RebalancePolicy, hot_instances, plan_moves
from scaler.settings import LoadSource, Settings

log = logging.getLogger(__name__)
GIVE_UP_AFTER = 600.0  # seconds to wait for a replacement before calling it not replaced
SURGE_POLL = 30.0  # seconds between checks while a surge move waits for its extra task


def policy_from(settings: Settings) -> RebalancePolicy:
    return RebalancePolicy(
        hot_threshold=settings.hot_threshold,
        deviation=settings.hot_deviation,
        max_moves=settings.max_moves,
        max_moves_per_hour=settings.max_moves_per_hour,
        task_cooldown=settings.task_cooldown,
        min_task_age=settings.task_min_age,
        # idle instances are worth sparing only if the capacity side gives them back
        spare_idle=settings.scale_in_after > 0 or settings.consolidate,
    )


@dataclass(frozen=True)
class Pending:
    move: Move
    stopped_at: float
    known: frozenset[str]  # the service's task ARNs when the move was made


@dataclass(frozen=True)
class Surge:
    move: Move
    arn: str
    desired: int  # the service's desired count before the surge
    started: float
    known: frozenset[str]  # the service's tasks before it (empty: adopted from a mark)
    service_arn: str


class RebalanceController:
    def __init__(
        self, aws: AwsClients, settings: Settings, metrics: Metrics, clock: Clock | None = None
    ) -> None:
        self._aws = aws
        self._settings = settings
        self._metrics = metrics
        self._clock = clock or SystemClock()
        self._policy = policy_from(settings)
        self.history = MoveHistory()
        self.pending: list[Pending] = []
        self.surges: dict[str, Surge] = {}
        self.leader: Leadership = Always()  # with two replicas, only the leader moves tasks
        self._definitions = Definitions()

    async def run_forever(self, stop: asyncio.Event) -> None:
        clock = self._clock
        next_plan = clock.monotonic()
        while not stop.is_set():
            wait = SURGE_POLL
            try:
                if not self.leader.holds():
                    # the marks on the services are the truth: whoever leads next adopts them
                    self.surges.clear()
                    self.pending.clear()
                elif clock.monotonic() >= next_plan:
                    next_plan = clock.monotonic() + self._settings.rebalance_interval
                    await self.cycle(clock.now().timestamp())
                    wait = self._settings.rebalance_interval
                else:
                    await self.finish_surges(clock.now().timestamp())
                    wait = next_plan - clock.monotonic()
            except Exception:
                log.exception("rebalancing cycle failed")  # tried again at the next plan
            if self.surges:
                wait = min(wait, SURGE_POLL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(1.0, wait))

    async def _live(self) -> LiveCluster:
        live = await live_cluster(self._aws, self._settings.cluster, self._definitions)
        if self._settings.load_source is LoadSource.MEASURED:
            live = await with_measured_cpu(self._aws, live, self._clock.now())
        return live

    async def finish_surges(self, now: float) -> None:
        if self.surges:
            await self._finish_surges(await self._live(), now)

    async def cycle(self, now: float) -> RebalancePlan:
        live = await self._live()
        self._verify(live, now)
        settled: set[str] = set()
        if not self._settings.dry_run:  # dry-run writes nothing, not even to finish a surge
            self._adopt(live)
            settled = await self._finish_surges(live, now)
        self.history.forget(now, self._policy.task_cooldown)
        plan = plan_moves(
            live.model.instances,
            live.model.services,
            now,
            self._policy,
            moves_last_hour=self.history.last_hour(now),
            seed=int(now),
            cooling=self.history.cooling(now, self._policy.task_cooldown).renamed(
                {arn: task for task, arn in live.task_arns.items()}
            ),
            leaving=await self._leaving(live),
        )
        self._metrics.hot_instances.set(len(plan.hot))
        self._metrics.imbalance.set(plan.imbalance)
        for move, why in zip(plan.moves, plan.reasons, strict=True):
            if move.service in self.surges or move.service in settled:
                continue  # its state in ``live`` is from before the surge was settled
            known = frozenset(_arns(live, move.service))
            arn = live.task_arns.get(move.task)
            desired = live.model.services[move.service].spec.desired
            service_arn = live.service_tags.get(move.service, ("", {}))[0]
            await self._move(move, arn, why, now, known, desired, service_arn)
        return plan

    async def _leaving(self, live: LiveCluster) -> frozenset[str]:
        """The ACTIVE instances tagged retiring (about to be drained), read only while some
        instance is hot (otherwise nothing moves); none if EC2 cannot say."""
        instances = live.model.instances.values()
        if not hot_instances(instances, self._policy):
            return frozenset()
        ids = sorted(i.id for i in instances if i.status == ACTIVE)
        try:
            return retiring.retiring(await retiring.describe(self._aws, ids))
        except Exception as exc:
            if error_code(exc) is None:
                raise
            log.warning("retiring tags not read", extra={"error": error_code(exc)})
            return frozenset()

    async def _finish_surges(self, live: LiveCluster, now: float) -> set[str]:
        """Finish or undo the surges that are due; the services settled."""
        settled: set[str] = set()
        for name, surge in sorted(self.surges.items()):
            if not self.leader.holds():
                break  # lost the lease: the marks stay for the next leader
            state = live.model.services.get(name)
            tasks = list(state.tasks.values()) if state else []
            hot = next((t for t in tasks if live.task_arns.get(t.id) == surge.arn), None)
            healthy = sum(t.healthy(now) for t in tasks)
            adopted = not surge.known
            if hot is not None and healthy >= surge.desired + 1:
                await self._stop_surged(surge, now)
                new = [t for t in tasks if live.task_arns.get(t.id) not in surge.known]
                if not adopted:  # an adopted surge cannot tell its extra task from the others
                    self._metrics.task_moves.labels(_landed(new, surge.move)).inc()
                    if new:
                        self._replaced(live, name, new)
            elif hot is not None and now - surge.started < GIVE_UP_AFTER:
                continue
            elif not adopted:
                self._metrics.task_moves.labels("not_replaced").inc()
                log.warning("surge move given up", extra={"service": name, "task": surge.arn})
            await self._settle(name, surge, state.spec.desired if state else None)
            del self.surges[name]
            settled.add(name)
        return settled

    async def _settle(self, name: str, surge: Surge, current: int | None) -> None:
        """Set the desired count back if it is still the surge's, and remove the mark."""
        if current == surge.desired + 1:
            try:
                await self._set_desired(name, surge.desired)
            except Exception as exc:  # e.g. the service was deleted meanwhile
                if error_code(exc) is None:
                    raise
                log.warning(
                    "surge count not set back", extra={"service": name, "error": error_code(exc)}
                )
                return
        elif current is not None and current != surge.desired:
            log.warning(
                "desired count changed during a surge move: left as it is",
                extra={"service": name, "desired": current},
            )
        if current is not None and surge.service_arn:
            try:
                await surge_marks.remove(self._aws.ecs, surge.service_arn)
            except Exception as exc:  # adopted again next cycle, and settled then
                log.warning("surge mark not removed", extra={"service": name, "error": repr(exc)})

    def _adopt(self, live: LiveCluster) -> None:
        """Take on the surges marked on services that this replica did not start (it crashed
        mid-surge and restarted, or another replica led then)."""
        marked = surge_marks.marks({name: tags for name, (_, tags) in live.service_tags.items()})
        for name, mark in marked.items():
            if name in self.surges:
                continue
            move = Move(mark.task_arn, name, mark.source, mark.destination, 0.0, surge=True)
            service_arn = live.service_tags[name][0]
            self.surges[name] = Surge(
                move, mark.task_arn, mark.desired, mark.started, frozenset(), service_arn
            )
            self.history.record(name, mark.started)  # its replacement is cooling down too
            log.info("surge move adopted", extra={"service": name, "task": mark.task_arn})

    async def _stop_surged(self, surge: Surge, now: float) -> None:
        why = f"scaler: rebalance off CPU-hot {surge.move.source} (replacement healthy)"
        await self._stop_task(surge.arn, why)
        self._metrics.task_moves.labels("stopped").inc()

    async def _stop_task(self, arn: str, reason: str) -> None:
        await self._aws.ecs.stop_task(cluster=self._settings.cluster, task=arn, reason=reason)

    async def _set_desired(self, service: str, desired: int) -> None:
        await self._aws.ecs.update_service(
            cluster=self._settings.cluster, service=service, desiredCount=desired
        )

    async def _move(
        self,
        move: Move,
        arn: str | None,
        why: str,
        now: float,
        known: frozenset[str],
        desired: int,
        service_arn: str,
    ) -> None:
        context = {
            "service": move.service,
            "source": move.source,
            "destination": move.destination,
            "task": arn,
        }
        if arn is None or not self.leader.holds():
            return  # lost the lease during the cycle: the next leader plans again
        if self._settings.dry_run:
            log.info(f"dry run: would {why}", extra=context)
            self._metrics.task_moves.labels("dry_run").inc()
            return
        try:
            if move.surge:
                mark = surge_marks.Mark(desired, arn, now, move.source, move.destination)
                await surge_marks.put(self._aws.ecs, service_arn, mark)  # first: a crash leaves it
                await self._set_desired(move.service, desired + 1)
            else:
                await self._stop_task(arn, f"scaler: rebalance off CPU-hot {move.source}")
        except Exception as exc:
            self._metrics.task_moves.labels("failed").inc()
            log.error("task move failed", extra={**context, "error": repr(exc)})
            return
        self.history.record(move.service, now)
        if move.surge:
            self._metrics.task_moves.labels("surged").inc()
            self.surges[move.service] = Surge(move, arn, desired, now, known, service_arn)
            log.info(f"{why}: desired count {desired} -> {desired + 1} first", extra=context)
        else:
            self._metrics.task_moves.labels("stopped").inc()
            self.pending.append(Pending(move, now, known))
            log.info(why, extra=context)

    def _verify(self, live: LiveCluster, now: float) -> None:
        """Did each earlier move's replacement land where the model predicted?"""
        still: list[Pending] = []
        for p in self.pending:
            state = live.model.services.get(p.move.service)
            tasks = state.tasks.values() if state else ()
            new = [t for t in tasks if live.task_arns.get(t.id) not in p.known]
            if new:
                outcome = _landed(new, p.move)
                self._replaced(live, p.move.service, new)
            elif now - p.stopped_at > GIVE_UP_AFTER:
                outcome = "not_replaced"
            else:
                still.append(p)
                continue
            self._metrics.task_moves.labels(outcome).inc()
            log.info("task move checked", extra={"service": p.move.service, "outcome": outcome})
        self.pending = still

    def _replaced(self, live: LiveCluster, service: str, new: list[Task]) -> None:
        """The first task started since the move is its replacement: it cools down."""
        first = min(new, key=lambda t: (t.created_at, t.id))
        self.history.replaced(service, live.task_arns.get(first.id, first.id))


def _landed(new: list[Task], move: Move) -> str:
    hit = any(t.instance is not None and t.instance.id == move.destination for t in new)
    return "as_predicted" if hit else "elsewhere"


def _arns(live: LiveCluster, service: str) -> list[str]:
    state = live.model.services.get(service)
    return [
        live.task_arns[t.id]
        for t in (state.tasks.values() if state else ())
        if t.id in live.task_arns
    ]
