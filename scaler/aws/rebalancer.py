"""Carry out task rebalancing: plan on the live cluster, stop the chosen tasks, check the result.

Every ``SCALER_REBALANCE_INTERVAL`` seconds (with ``SCALER_TASK_REBALANCE=true``) the controller
builds the model of the live cluster (:mod:`scaler.aws.live`), asks
:func:`scaler.plan.rebalance.plan_moves` for moves, and stops each chosen task with a reason that
says why (``StopTask``; the service scheduler starts the replacement). At the next cycle it looks
for each move's replacement and records whether it landed where the placement model predicted.
In dry-run the moves are logged and counted, and nothing is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from scaler.aws.clients import AwsClients
from scaler.aws.live import LiveCluster, live_cluster, with_measured_cpu
from scaler.aws.retry import Backoff
from scaler.metrics import Metrics
from scaler.plan.rebalance import Move, RebalancePlan, RebalancePolicy, plan_moves
from scaler.settings import LoadSource, Settings

log = logging.getLogger(__name__)
GIVE_UP_AFTER = 600.0  # seconds to wait for a replacement before calling it not replaced


def policy_from(settings: Settings) -> RebalancePolicy:
    return RebalancePolicy(
        hot_threshold=settings.hot_threshold,
        deviation=settings.hot_deviation,
        max_moves=settings.max_moves,
        max_moves_per_hour=settings.max_moves_per_hour,
        task_cooldown=settings.task_cooldown,
    )


@dataclass(frozen=True)
class Pending:
    move: Move
    stopped_at: float
    known: frozenset[str]  # the service's task ARNs when the move was made


class RebalanceController:
    def __init__(self, aws: AwsClients, settings: Settings, metrics: Metrics) -> None:
        self._aws = aws
        self._settings = settings
        self._metrics = metrics
        self._policy = policy_from(settings)
        self._backoff = Backoff()
        self.moved_at: list[float] = []
        self.pending: list[Pending] = []

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.cycle(time.time())
            except Exception:
                log.exception("rebalancing cycle failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._settings.rebalance_interval)

    async def cycle(self, now: float) -> RebalancePlan:
        live = await live_cluster(self._aws, self._settings.cluster)
        if self._settings.load_source is LoadSource.MEASURED:
            live = await with_measured_cpu(self._aws, live)
        self._verify(live, now)
        self.moved_at = [t for t in self.moved_at if now - t < 3600]
        plan = plan_moves(
            live.model.instances,
            live.model.services,
            now,
            self._policy,
            moves_last_hour=len(self.moved_at),
            seed=int(now),
        )
        self._metrics.hot_instances.set(len(plan.hot))
        self._metrics.imbalance.set(plan.imbalance)
        for move, why in zip(plan.moves, plan.reasons, strict=True):
            known = frozenset(_arns(live, move.service))
            await self._stop(move, live.task_arns.get(move.task), why, now, known)
        return plan

    async def _stop(
        self, move: Move, arn: str | None, why: str, now: float, known: frozenset[str]
    ) -> None:
        context = {
            "service": move.service,
            "source": move.source,
            "destination": move.destination,
            "task": arn,
        }
        if arn is None:
            return
        if self._settings.dry_run:
            log.info(f"dry run: would {why}", extra=context)
            self._metrics.task_moves.labels("dry_run").inc()
            return
        try:
            await self._backoff.call(
                "StopTask",
                lambda: self._aws.ecs.stop_task(
                    cluster=self._settings.cluster,
                    task=arn,
                    reason=f"scaler: rebalance off CPU-hot {move.source}",
                ),
            )
        except Exception as exc:
            self._metrics.task_moves.labels("failed").inc()
            log.error("task move failed", extra={**context, "error": repr(exc)})
            return
        self._metrics.task_moves.labels("stopped").inc()
        self.moved_at.append(now)
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
                hit = any(
                    t.instance is not None and t.instance.id == p.move.destination for t in new
                )
                outcome = "as_predicted" if hit else "elsewhere"
            elif now - p.stopped_at > GIVE_UP_AFTER:
                outcome = "not_replaced"
            else:
                still.append(p)
                continue
            self._metrics.task_moves.labels(outcome).inc()
            log.info("task move checked", extra={"service": p.move.service, "outcome": outcome})
        self.pending = still


def _arns(live: LiveCluster, service: str) -> list[str]:
    state = live.model.services.get(service)
    return [
        live.task_arns[t.id]
        for t in (state.tasks.values() if state else ())
        if t.id in live.task_arns
    ]
