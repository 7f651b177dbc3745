"""What the capacity reader keeps from one cycle to the next, and when it must read afresh.

Reading where every task runs costs a ListTasks page per 100 running tasks (and a DescribeTasks
call per 100 listed for the first time: :class:`~scaler.aws.capacity_reader.CapacityReader`
keeps what it described), every cycle: most of the capacity controller's calls in a quiet
cluster. Yet what it would show cannot have changed unless something the cycle reads anyway has
changed too. A task that starts, stops or moves changes, at once:

- the container instances it leaves or lands on: their ``runningTasksCount`` or
  ``pendingTasksCount``, their remaining CPU and memory, and ECS's ``version`` of them (which
  rises with every change ECS reports of an instance);
- its service's running or pending count, or its deployments (a new task definition rolling
  out).

:func:`fingerprint` gathers those from the cycle's DescribeContainerInstances and
DescribeServices answers. :class:`ReadMemory` lets the reader reuse the last placement while the
fingerprint is the one it was read under, and says when a full read is due regardless
(:meth:`ReadMemory.due`):

- the first cycle, and after ``every`` cycles or ``every`` capacity intervals since the last
  full read (whichever comes first; 30 minutes at the default interval), so nothing the
  fingerprint could miss outlives half an hour;
- after a pause of more than two capacity intervals since the last read: a replica that
  leads again after another led (and acted) meanwhile, or cycles that failed, read everything;
- after the scaler itself acted (the actuator's count of changes moved): its own launches,
  drains, task stops, terminations and overflow changes are read back before anything else is
  decided on them;
- while any spot notice is on the board, if services may overflow to Fargate
  (``SCALER_OVERFLOW_SERVICES``): their tasks on an instance whose notice is ending are
  evacuated by their ARNs, which must be current (nothing else stops a task by the ARNs read).

The service names (ListServices) and the cluster's capacity providers (DescribeClusters,
DescribeCapacityProviders) are kept between full reads too. Existing services are described
every cycle, so a change of desired count is seen at once; a service created meanwhile is seen
at the next full read, or as soon as its first tasks land on an instance (a changed fingerprint
lists the services again).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from scaler.aws.services import Providers
from scaler.model import ContainerInstance

# cycles (30 minutes at the default 30 s interval) between full reads: the safety net for what the
# fingerprint could miss (it misses nothing known); a full read lists every task
FULL_READ_CYCLES = 60


def fingerprint(
    instances: Iterable[ContainerInstance], services: Mapping[str, dict[str, Any]]
) -> Hashable:
    """What changes whenever a task starts, stops or moves (see the module docstring)."""
    nodes = sorted(
        (
            ci.arn,
            ci.status,
            ci.version,
            ci.running_tasks,
            ci.pending_tasks,
            ci.free_cpu,
            ci.free_memory,
        )
        for ci in instances
    )
    return (tuple(nodes), service_marks(services))


def service_marks(services: Mapping[str, dict[str, Any]]) -> Hashable:
    """The services' part of the fingerprint: counts, task definitions and deployments."""
    return tuple(
        sorted(
            (
                name,
                str(svc.get("taskDefinition", "")),
                int(svc.get("desiredCount", 0)),
                int(svc.get("runningCount", 0)),
                int(svc.get("pendingCount", 0)),
                _deployments(svc),
            )
            for name, svc in services.items()
        )
    )


def group_marks(groups: Iterable[dict[str, Any]]) -> Hashable:
    """What an Auto Scaling group's description shows of its sizes and instances."""
    return tuple(
        sorted(
            (
                str(g["AutoScalingGroupName"]),
                int(g.get("DesiredCapacity", 0)),
                int(g.get("MinSize", 0)),
                int(g.get("MaxSize", 0)),
                tuple(
                    sorted(
                        (str(i["InstanceId"]), str(i.get("LifecycleState", "")))
                        for i in g.get("Instances", [])
                    )
                ),
            )
            for g in groups
        )
    )


def _deployments(svc: dict[str, Any]) -> tuple[tuple[str, ...], ...]:
    keys = ("id", "status", "taskDefinition", "rolloutState", "updatedAt")
    counts = ("desiredCount", "pendingCount", "runningCount", "failedTasks")
    return tuple(
        tuple(str(d.get(k, "")) for k in (*keys, *counts)) for d in svc.get("deployments") or ()
    )


@dataclass
class Placement:
    """Where the services' tasks run: service -> instance -> tasks, and (service, instance) ->
    the tasks' ARNs."""

    placed: dict[str, Counter[str]] = field(default_factory=dict)
    tasks: dict[tuple[str, str], list[str]] = field(default_factory=dict)


@dataclass
class ReadMemory:
    """The last full read's placement, service names and providers, and when it was made."""

    every: int = FULL_READ_CYCLES  # cycles between full reads, at most
    longest: float = 300.0  # seconds between full reads, at most
    names: list[str] | None = None  # the cluster's services, as ListServices last said
    providers: Providers | None = None  # as the last full read found them (None: unreadable)
    placement: Placement | None = None
    seen: Hashable = None  # the fingerprint the placement was read under
    full_at: float = float("-inf")  # the time of the last full read
    read_at: float = float("-inf")  # the time of the last read, full or not
    since: int = 0  # cycles since the last full read
    acted: int = 0  # the actuator's count of changes at the last read
    full_reads: int = 0
    reused: int = 0

    def due(self, now: float, acted: int, evacuating: bool) -> bool:
        """Whether this cycle must read everything whatever the fingerprint says."""
        return (
            self.placement is None
            or self.since + 1 >= self.every
            or now - self.full_at >= self.longest
            or now - self.read_at > 2 * self.longest / self.every
            or acted != self.acted
            or evacuating
        )

    def reuse(self, now: float, seen: Hashable, acted: int) -> Placement | None:
        """The last placement if ``seen`` is the one it was read under (counted), else None."""
        if self.placement is None or seen != self.seen:
            return None
        self.since += 1
        self.reused += 1
        self.acted, self.read_at = acted, now
        return self.placement

    def remember(self, now: float, seen: Hashable, placement: Placement, acted: int) -> None:
        """A full read made at ``now``."""
        self.placement, self.seen, self.acted = placement, seen, acted
        self.full_at = self.read_at = now
        self.since = 0
        self.full_reads += 1
