"""What a simulated run cost and how available it was, integrated over virtual time.

Every figure is an integral of a piecewise-constant rate, advanced at each event:

- ``availability``: task-seconds running *and healthy* (at most the desired count, per service,
  a Fargate overflow companion counting toward its service) / task-seconds desired.
- ``worst_5m_availability``: the same ratio in the worst 5-minute window.
- ``cost_usd``: instance-hours at their price (spot or on-demand, from launch to termination) plus
  Fargate task-hours at Fargate prices.
- ``on_demand_equivalent_cost_usd``: the same instance-hours at on-demand prices (Fargate as is).
- ``on_demand_share``: on-demand vCPU-hours (EC2 on-demand and Fargate) / all vCPU-hours.
- ``hot_instance_share``: instance-seconds above the hot threshold of modelled CPU / registered
  instance-seconds.
- ``interrupted_tasks``: tasks (pending or running) lost with their instance.
- ``task_moves``: tasks stopped to move them: off a draining instance, by ECS's AZ rebalancing,
  or by the scaler's rebalancer.
- ``min_healthy_violations``: tasks the rebalancer stopped that left their service with fewer
  healthy tasks than ``minimumHealthyPercent`` of its desired count.
- ``peak_disrupted_share``: the most instances ever draining at once without a spot notice (a
  policy's own choice: a roll, a consolidation, a return to spot) / ACTIVE and DRAINING
  instances then; the figure disruption budgets are checked against.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from scaler.ecs.cluster import ACTIVE, DRAINING, Instance, ServiceSpec, Task

WINDOW = 300.0
MOVES = frozenset(
    {"drained", "rebalance", "az-rebalance", "evacuated"}
)  # stop reasons that move a task
FARGATE_VCPU_HOUR = 0.04048
FARGATE_GB_HOUR = 0.004445


def fargate_price(spec: ServiceSpec) -> float:
    """USD per hour of one Fargate task (us-east-1, x86)."""
    return spec.cpu / 1024 * FARGATE_VCPU_HOUR + spec.memory / 1024 * FARGATE_GB_HOUR


class Accountant:
    def __init__(self, hot_threshold: float) -> None:
        self.hot_threshold = hot_threshold
        self.t = 0.0
        self.desired: dict[str, int] = {}
        self.healthy: dict[str, int] = defaultdict(int)
        self.healthy_tasks: set[str] = set()
        self.avail_rate = 0  # sum over groups of min(healthy, desired)
        self.desired_rate = 0
        self.cost_rate = 0.0
        self.od_equiv_rate = 0.0
        self.vcpu_rate = 0.0
        self.od_vcpu_rate = 0.0
        self.hot: set[str] = set()
        self.registered = 0
        # integrals
        self.avail = self.want = self.cost = self.od_equiv = self.vcpu = self.od_vcpu = 0.0
        self.hot_time = self.registered_time = 0.0
        self.windows: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])
        self.interrupted = 0
        self.interrupted_by_group: dict[str, int] = defaultdict(int)
        self.moves = 0
        self.min_healthy_violations = 0
        self.peak_disrupted = 0.0

    # -- time -------------------------------------------------------------------------------

    def advance(self, to: float) -> None:
        while self.t < to:
            end = min(to, (int(self.t // WINDOW) + 1) * WINDOW)
            self._integrate(end - self.t)
            self.t = end

    def _integrate(self, dt: float) -> None:
        if dt <= 0:
            return
        hours = dt / 3600
        self.avail += self.avail_rate * dt
        self.want += self.desired_rate * dt
        window = self.windows[int(self.t // WINDOW)]
        window[0] += self.avail_rate * dt
        window[1] += self.desired_rate * dt
        self.cost += self.cost_rate * hours
        self.od_equiv += self.od_equiv_rate * hours
        self.vcpu += self.vcpu_rate * hours
        self.od_vcpu += self.od_vcpu_rate * hours
        self.hot_time += len(self.hot) * dt
        self.registered_time += self.registered * dt

    # -- availability -------------------------------------------------------------------------

    def set_desired(self, group: str, desired: int) -> None:
        self._regroup(group, lambda: self.desired.__setitem__(group, desired))

    def task_healthy(self, task: Task) -> None:
        if task.id not in self.healthy_tasks:
            self.healthy_tasks.add(task.id)
            self._regroup(task.service.group, lambda: self._bump(task.service.group, 1))

    def task_gone(self, task: Task, reason: str) -> None:
        if reason == "instance-terminated":
            self.interrupted += 1
            self.interrupted_by_group[task.service.group] += 1
        elif reason in MOVES:
            self.moves += 1
        if task.id in self.healthy_tasks:
            self.healthy_tasks.discard(task.id)
            self._regroup(task.service.group, lambda: self._bump(task.service.group, -1))
        if reason == "rebalance":  # the scaler's own choice: never below minimum health
            group = task.service.group
            floor = math.ceil(self.desired.get(group, 0) * task.service.min_healthy_percent / 100)
            self.min_healthy_violations += self.healthy[group] < floor
        if task.instance is None:
            self._fargate(task.service, -1)

    def _bump(self, group: str, delta: int) -> None:
        self.healthy[group] += delta

    def _regroup(self, group: str, change: Any) -> None:
        desired = self.desired.get(group, 0)
        self.avail_rate -= min(self.healthy[group], desired)
        self.desired_rate -= desired
        change()
        desired = self.desired.get(group, 0)
        self.avail_rate += min(self.healthy[group], desired)
        self.desired_rate += desired

    # -- cost and capacity --------------------------------------------------------------------

    def instance_up(self, inst: Instance) -> None:
        self._instance(inst, 1)

    def instance_down(self, inst: Instance) -> None:
        self._instance(inst, -1)
        if inst.registered_at is not None:
            self.registered -= 1
        self.hot.discard(inst.id)

    def _instance(self, inst: Instance, sign: int) -> None:
        self.cost_rate += sign * inst.price
        self.od_equiv_rate += sign * inst.type.on_demand_price
        self.vcpu_rate += sign * inst.type.vcpu
        if inst.capacity == "on-demand":
            self.od_vcpu_rate += sign * inst.type.vcpu

    def instance_registered(self, inst: Instance) -> None:
        self.registered += 1

    def task_started(self, task: Task) -> None:
        if task.instance is None:
            self._fargate(task.service, 1)

    def _fargate(self, spec: ServiceSpec, sign: int) -> None:
        price = fargate_price(spec)
        self.cost_rate += sign * price
        self.od_equiv_rate += sign * price
        self.vcpu_rate += sign * spec.cpu / 1024
        self.od_vcpu_rate += sign * spec.cpu / 1024

    def load_changed(self, inst: Instance) -> None:
        if inst.status in (ACTIVE, DRAINING) and inst.load > self.hot_threshold:
            self.hot.add(inst.id)
        else:
            self.hot.discard(inst.id)

    def disrupted(self, draining: int, live: int) -> None:
        """``draining`` of ``live`` instances are draining without a spot notice."""
        if live:
            self.peak_disrupted = max(self.peak_disrupted, draining / live)

    # -- results ------------------------------------------------------------------------------

    def result(self) -> dict[str, float | int]:
        worst = min((a / w for a, w in self.windows.values() if w > 0), default=1.0)
        return {
            "availability": round(self.avail / self.want, 6) if self.want else 1.0,
            "worst_5m_availability": round(worst, 6),
            "interrupted_tasks": self.interrupted,
            "cost_usd": round(self.cost, 2),
            "on_demand_equivalent_cost_usd": round(self.od_equiv, 2),
            "on_demand_share": round(self.od_vcpu / self.vcpu, 4) if self.vcpu else 0.0,
            "hot_instance_share": round(self.hot_time / self.registered_time, 4)
            if self.registered_time
            else 0.0,
            "task_moves": self.moves,
            "min_healthy_violations": self.min_healthy_violations,
            "peak_disrupted_share": round(self.peak_disrupted, 4),
        }
