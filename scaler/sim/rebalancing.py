"""The scaler's task rebalancing inside the simulator, as the production controller runs it.

Every ``REBALANCE_PERIOD`` seconds :func:`scaler.plan.rebalance.plan_moves` plans on the simulated
cluster. A *stop* move stops the task at once. A *surge* move raises the service's desired count
by one; every ``SURGE_CHECK`` seconds the pending surges are checked: once the service has its
extra healthy task the hot task is stopped and the desired count set back; a surge whose task
is gone, or that waited ``GIVE_UP_AFTER`` seconds, just sets the desired count back.
"""

from __future__ import annotations

from dataclasses import dataclass

from scaler.ecs.cluster import RUNNING
from scaler.plan.cooldown import MoveHistory
from scaler.plan.rebalance import Move, RebalancePolicy, plan_moves
from scaler.sim.engine import Sim

REBALANCE_PERIOD = 60.0
SURGE_CHECK = 30.0  # as the production controller polls (SURGE_POLL)
GIVE_UP_AFTER = 600.0
REPLAN = 300.0


@dataclass(frozen=True)
class Surge:
    move: Move
    started: float


class SimRebalancer:
    def __init__(self, policy: RebalancePolicy) -> None:
        self.policy = policy
        self.history = MoveHistory()
        self.surges: dict[str, Surge] = {}
        self.known: dict[str, frozenset[str]] = {}  # service -> its tasks when a move began
        self._planned = (-1, -1.0)

    def start(self, sim: Sim) -> None:
        sim.at(REBALANCE_PERIOD, self._rebalance, sim)

    def _rebalance(self, sim: Sim) -> None:
        sim.at(sim.now + REBALANCE_PERIOD, self._rebalance, sim)
        self.history.forget(sim.now, self.policy.task_cooldown)
        self._identify(sim)
        if (sim.version, sim.now // REPLAN) == self._planned:
            return  # nothing changed since the last plan (tasks age, so plan anyway at times)
        self._planned = (sim.version, sim.now // REPLAN)
        plan = plan_moves(
            sim.cluster.instances,
            sim.cluster.services,
            sim.now,
            self.policy,
            moves_last_hour=self.history.last_hour(sim.now),
            seed=int(sim.now),
            cooling=self.history.cooling(sim.now, self.policy.task_cooldown),
        )
        for move in plan.moves:
            if move.service not in self.surges:
                self._start(sim, move)

    def _identify(self, sim: Sim) -> None:
        """Name each move's replacement: the first task the service started since the move."""
        for name, known in list(self.known.items()):
            state = sim.cluster.services.get(name)
            new = [t for t in state.tasks.values() if t.id not in known] if state else []
            if new:
                first = min(new, key=lambda t: (t.created_at, t.id))
                self.history.replaced(name, first.id)
            if new or name not in self.history.unmatched:
                del self.known[name]

    def _start(self, sim: Sim, move: Move) -> None:
        self.history.record(move.service, sim.now)
        self.known[move.service] = frozenset(sim.cluster.services[move.service].tasks)
        if not move.surge:
            task = sim.cluster.services[move.service].tasks.get(move.task)
            if task is not None:
                sim.stop_task(task, "rebalance")
            return
        if not self.surges:
            sim.at(sim.now + SURGE_CHECK, self._check, sim)
        self.surges[move.service] = Surge(move, sim.now)
        sim.surge(move.service, +1)

    def _check(self, sim: Sim) -> None:
        for name, surge in sorted(self.surges.items()):
            state = sim.cluster.services[name]
            task = state.tasks.get(surge.move.task)
            healthy = sum(t.healthy(sim.now) for t in state.tasks.values())
            if task is not None and task.state == RUNNING and healthy >= state.spec.desired:
                sim.stop_task(task, "rebalance")  # the extra task is up: now the hot one goes
            elif task is not None and sim.now - surge.started < GIVE_UP_AFTER:
                continue
            del self.surges[name]
            sim.surge(name, -1)
        if self.surges:
            sim.at(sim.now + SURGE_CHECK, self._check, sim)
