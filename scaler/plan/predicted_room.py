"""The free room a rebalance plan predicts, and where ECS may start a task on it.

The rebalance planner (:mod:`scaler.plan.rebalance`) predicts each move's replacement with the
placement model on the cluster as the plan's earlier moves leave it. :meth:`PredictedRoom.likely`
gives exactly what :func:`scaler.ecs.placement.likely` gives on the instances with that
predicted room (every instance tied for first place, in the cluster's order), without writing the
room onto the instances and without a ranking key per instance. What makes it fast:

- the predicted room is two lists by instance position, and an index by free memory finds the
  instances with room for a task without reading the others;
- the strategies rank one at a time: each keeps only the instances tied for its best value (the
  least key, compared field by field, is the least first field, then the least second field
  among those, and so on), a pass over plain numbers; once one instance is left it is the answer;
- the attribute values spread strategies count by are read once per plan; constraints and
  capacity providers are checked only for the services that have them.
"""

from __future__ import annotations

import bisect
from collections import Counter

from scaler.ecs.cluster import STOPPED, Instance, ServiceState, Task
from scaler.ecs.placement import satisfies


class PredictedRoom:
    """Free CPU and memory of the ACTIVE instances as a plan's moves leave them."""

    def __init__(self, active: list[Instance]) -> None:
        self.active = active
        self.position = {i.id: n for n, i in enumerate(active)}
        self.free_cpu = [i.free_cpu for i in active]  # by position
        self.free_mem = [i.free_mem for i in active]
        self.by_memory = sorted((m, n) for n, m in enumerate(self.free_mem))
        self._attributes: dict[str, list[str]] = {}  # attribute name -> values by position
        self._fitting: dict[tuple[int, int], list[int]] = {}  # task size -> with_room, until take

    def take(self, inst: Instance, cpu: int, memory: int) -> None:
        """A replacement of ``cpu`` and ``memory`` is predicted to start on ``inst``."""
        self._fitting.clear()
        n = self.position[inst.id]
        del self.by_memory[bisect.bisect_left(self.by_memory, (self.free_mem[n], n))]
        self.free_cpu[n] -= cpu
        self.free_mem[n] -= memory
        bisect.insort(self.by_memory, (self.free_mem[n], n))

    def likely(
        self, task: Task, source: Instance, service: ServiceState, surge: bool
    ) -> list[Instance]:
        """Where ECS may start the replacement of ``task`` (every instance tied for first place):
        once ``task`` stopped, with its room back on the source; for a surge, beside it."""
        spec = task.service
        room = self.with_room(spec.cpu, spec.memory, source)
        here = self.position[source.id]
        if surge:
            return self._rank(room, here, service, (spec.cpu, spec.memory))
        stopped_state = task.state
        task.state = STOPPED  # not counted by spread or distinctInstance
        self.free_cpu[here] += spec.cpu
        self.free_mem[here] += spec.memory
        try:
            return self._rank(room, here, service, (spec.cpu, spec.memory))
        finally:
            task.state = stopped_state
            self.free_cpu[here] -= spec.cpu
            self.free_mem[here] -= spec.memory

    def with_room(self, cpu: int, memory: int, source: Instance) -> list[int]:
        """The positions of the instances with predicted room for a task of ``cpu`` and
        ``memory`` (and the source's), in the cluster's order: the only ones placement may pick."""
        fitting = self._fitting.get((cpu, memory))
        if fitting is None:
            fitting = self._fitting[cpu, memory] = self._fit(cpu, memory)
        picked = list(fitting)
        here = self.position[source.id]
        spot = bisect.bisect_left(picked, here)
        if spot == len(picked) or picked[spot] != here:
            picked.insert(spot, here)
        return picked

    def _fit(self, cpu: int, memory: int) -> list[int]:
        """The positions of the instances with predicted room for a task of ``cpu`` and
        ``memory``, in order."""
        at = bisect.bisect_left(self.by_memory, (memory, -1))
        fc, fm = self.free_cpu, self.free_mem
        if 2 * at < len(self.by_memory):  # most have room: a pass in order is cheaper
            return [n for n in range(len(fc)) if fm[n] >= memory and fc[n] >= cpu]
        return sorted(n for _, n in self.by_memory[at:] if fc[n] >= cpu)

    def _rank(
        self, room: list[int], here: int, service: ServiceState, size: tuple[int, int]
    ) -> list[Instance]:
        """:func:`scaler.ecs.placement.likely` on the instances at ``room`` (its own list; those
        but the source at ``here`` have room for a task of ``size``), with their predicted free
        room."""
        spec = service.spec
        fc, fm = self.free_cpu, self.free_mem
        if (spec.cpu, spec.memory) != size:  # the service's tasks changed size since this one
            picked = [n for n in room if fc[n] >= spec.cpu and fm[n] >= spec.memory]
        else:
            picked = room
            if fc[here] < spec.cpu or fm[here] < spec.memory:
                picked.remove(here)
        if spec.constraints or spec.capacity_providers:
            active = self.active
            picked = [n for n in picked if satisfies(active[n], spec.constraints, service)]
        for strategy in spec.strategies:
            if len(picked) <= 1:
                break  # no tie left to break
            values: list[float] | list[int]
            if strategy.type == "binpack":
                free, asked = (fm, spec.memory) if strategy.field == "memory" else (fc, spec.cpu)
                values = [free[n] - asked for n in picked]
            elif strategy.type == "spread":
                values = self._spread(service, strategy.field, picked)
            else:
                continue  # random: ECS ranks them all alike, then picks one at random
            best = min(values)
            picked = [n for n, v in zip(picked, values, strict=True) if v == best]
        return [self.active[n] for n in picked]

    def _spread(self, service: ServiceState, field: str, picked: list[int]) -> list[int]:
        """For each instance at ``picked``, how many of the service's live tasks share its value
        of the attribute ``field`` (:class:`scaler.ecs.placement.Spread`)."""
        counts = Counter(
            t.instance.attribute(field)
            for t in service.tasks.values()
            if t.state != STOPPED and t.instance is not None
        )
        values = self._attributes.get(field)
        if values is None:
            values = self._attributes[field] = [i.attribute(field) for i in self.active]
        count = counts.get
        return [count(values[n], 0) for n in picked]
